"""What a site hands the runbooks besides the params: how to reach and fence each node.

An `Inventory` holds the SSH key and pinned known_hosts, each node's SSH address and its
fence device (BMC address, user, where the password file is; never the password itself
unless the params carry it as a secret). A real site's comes from its params file; the
local lab is one more provider (`hakit.lab.inventory`), which `lab up` also writes to its
folder as ``inventory.yaml``. Product code asks `hakit.site.inventory(params)` and never which it was.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .params import Params

# Where every node keeps the BMC passwords (root-only); ipmitool reads them from there.
CRED_DIR = "/etc/hakit/fencing"


@dataclass(frozen=True)
class FenceDevice:
    """One node's BMC: the device that powers that node off."""

    node: str  # the node this device powers off
    agent: str
    address: str
    port: int
    username: str
    lanplus: bool
    cipher: int | None
    password: SecretStr | None = field(default=None, repr=False)
    password_file: Path | None = None

    @property
    def credential_path(self) -> str:
        """Where the password lives on every node (root-only)."""
        return posixpath.join(CRED_DIR, f"{self.address}-{self.port}.password")


@dataclass(frozen=True)
class Inventory:
    source: str  # where it came from, in words
    key_file: Path
    known_hosts: Path
    addresses: dict[str, str]  # node -> the address SSH uses
    fence: tuple[FenceDevice, ...] = ()
    missing_hint: str = ""  # what to do when the key or known_hosts file does not exist yet
    check_before_run: bool = True  # the key and known_hosts must exist before a run starts

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready, with no secret: password files by path only."""
        return {
            "source": self.source,
            "ssh": {"key_file": str(self.key_file), "known_hosts": str(self.known_hosts), "addresses": self.addresses},
            "fence_devices": [
                {"node": d.node, "agent": d.agent, "address": d.address, "port": d.port, "username": d.username,
                 "lanplus": d.lanplus, "cipher": d.cipher,
                 "password_file": str(d.password_file) if d.password_file else None,
                 "password": "(in the params, not shown)" if d.password is not None else None}
                for d in self.fence
            ],
        }


def from_params(params: Params) -> Inventory:
    """A real site's inventory: everything from the params file (validation made sure it is there)."""
    assert params.ssh.key_file is not None and params.ssh.known_hosts is not None
    return Inventory(
        source="the params file (ssh and pacemaker.fencing)",
        key_file=params.ssh.key_file.expanduser(),
        known_hosts=params.ssh.known_hosts.expanduser(),
        addresses={n.name: str(params.ssh_address(n)) for n in params.nodes},
        fence=tuple(_params_fence(params)),
    )


def _params_fence(params: Params) -> list[FenceDevice]:
    f = params.pacemaker.fencing
    if f is None:
        return []
    out = []
    for n in params.nodes:
        d = f.devices[n.name]  # validation guarantees every node has one, with credentials
        own = d.password is not None or d.password_file is not None
        out.append(FenceDevice(
            node=n.name, agent=f.agent, address=d.address, port=d.port,
            username=d.username or f.username or "", lanplus=f.lanplus, cipher=f.cipher,
            password=d.password if own else f.password,
            password_file=(d.password_file if own else f.password_file),
        ))
    return out
