"""The lab as an inventory provider: its key, its pinned known_hosts, one virtual BMC per node.

Pure (derived from the params' lab section), so plans and golden files need no running lab;
`Lab.up` also writes it to ``<lab dir>/inventory.yaml`` for anyone who wants to read it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..inventory import FenceDevice, Inventory
from ..params import Params
from . import bmc

INVENTORY_FILE = "inventory.yaml"


def lab_inventory(params: Params) -> Inventory:
    lab = params.lab
    assert lab is not None
    f = params.pacemaker.fencing
    fence: tuple[FenceDevice, ...] = ()
    if f is not None:
        pw = bmc.password_file(lab.dir)
        fence = tuple(
            FenceDevice(node=ep.node, agent=f.agent, address=ep.address, port=ep.port, username=bmc.USERNAME,
                        lanplus=True, cipher=bmc.CIPHER_SUITE, password_file=pw)
            for ep in bmc.endpoints(params))
    return Inventory(
        source=f"the local lab {lab.id} ({lab.dir / INVENTORY_FILE})",
        key_file=params.ssh.key_file.expanduser() if params.ssh.key_file else lab.key_file,
        known_hosts=params.ssh.known_hosts.expanduser() if params.ssh.known_hosts else lab.known_hosts,
        addresses={n.name: str(params.ssh_address(n)) for n in params.nodes},
        fence=fence,
        missing_hint="is the lab up? `python -m hakit lab up`",
        check_before_run=False,  # made by `lab up`; a run against a lab that is down says so on connect
    )


def write(params: Params) -> Path:
    """Write the lab's inventory (no secret in it) beside its key; return the file."""
    assert params.lab is not None
    path = params.lab.dir / INVENTORY_FILE
    path.write_text(yaml.safe_dump(lab_inventory(params).to_dict(), sort_keys=False))
    return path
