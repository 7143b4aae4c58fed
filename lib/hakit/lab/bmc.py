"""Virtual BMCs: one IPMI-over-LAN power controller per lab node, run on this machine.

Real servers carry a BMC that a fence agent reaches over the network; VM labs
use virtualbmc for the same thing. Here each node gets a small daemon built on
pyghmi's `Bmc` server class (the one virtualbmc builds on), bound to the lab's
host address on the private bridge, one UDP port per node. Its chassis power
off/on/status act on that node's container through the lab's own primitives
(`Lab.power_cut`, `Lab.power_on`, the node's running state), so Debian's
unmodified `fence_ipmilan` + `ipmitool` on a node fence another node for real.

What pyghmi's server really does (read from its code, pyghmi 1.6): RMCP+
(lanplus) only, cipher suite 3 only (HMAC-SHA1, AES-CBC-128); a wrong user or
password gets no answer at all, so a client sees a session timeout, not an
"access denied".

The daemon gets its password from a root-only file in the lab directory, never
from its command line. Daemons are found exactly: the PID recorded in the lab
state, checked against a command line naming this module, the lab directory
and the node.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..params import Params
from . import daemon

MODULE = "hakit.lab.bmcd"  # the daemon (a module of its own, so `-m` runs it cleanly)
PORT_BASE = 6230  # node i (1-based, params order) listens on PORT_BASE + i, as virtualbmc's examples do
USERNAME = "hakit"
CIPHER_SUITE = 3  # the only suite pyghmi's server offers
PASSWORD_LEN = 20  # IPMI v2 passwords are at most 20 bytes


@dataclass(frozen=True)
class Endpoint:
    """Where one node's virtual BMC listens."""

    node: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


def endpoints(params: Params) -> list[Endpoint]:
    """Every node's BMC address and port (pure: derived from the lab section)."""
    assert params.lab is not None
    addr = str(params.lab.host_private_ip)
    return [Endpoint(n.name, addr, PORT_BASE + i) for i, n in enumerate(params.nodes, start=1)]


def bmc_dir(lab_dir: Path) -> Path:
    return lab_dir / "bmc"


def password_file(lab_dir: Path) -> Path:
    """The lab BMCs' password (one per lab, made at `lab up`, root-only)."""
    return bmc_dir(lab_dir) / "password"


def ensure_password(lab_dir: Path) -> Path:
    """Make the lab's BMC password once; later calls keep it."""
    d = bmc_dir(lab_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    f = password_file(lab_dir)
    if not f.exists():
        # Created 0600 before any byte is written.
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(15)[:PASSWORD_LEN])
    return f


# ----------------------------------------------------------------- processes


def daemon_argv(lab_dir: Path, node: str) -> list[str]:
    return daemon.argv(MODULE, lab_dir, f"--node={node}")


def is_our_bmc(pid: int | None, lab_dir: Path, node: str) -> bool:
    """The PID is alive and is this lab's BMC daemon for this node (not a reused PID)."""
    return daemon.is_ours(pid, MODULE, lab_dir, f"--node={node}")


def find_daemons(lab_dir: Path) -> dict[int, str]:
    """Every live BMC daemon of this lab, by exact command line (PID -> node); for teardown checks."""
    found: dict[int, str] = {}
    for pid, argv in daemon.find(MODULE, lab_dir).items():
        nodes = [a.split("=", 1)[1] for a in argv if a.startswith("--node=")]
        found[pid] = nodes[0] if nodes else "?"
    return found


def start(lab_dir: Path, params: Params, node: str, timeout: float = 15) -> int:
    """Start a node's BMC daemon; returns its PID once it is bound and serving."""
    d = bmc_dir(lab_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The daemon reads the params from here (the caller's params file may be temporary).
    spec = d / "params.json"
    tmp = d / f"params.{node}.tmp"  # nodes start in parallel
    tmp.write_text(json.dumps(params.model_dump(mode="json", exclude={"pacemaker", "quorum_device"}), indent=1))
    os.replace(tmp, spec)
    return daemon.start(daemon_argv(lab_dir, node), d / f"{node}.log", f"virtual BMC for {node}",
                        lambda pid: stop(pid, lab_dir, node), timeout)


def stop(pid: int | None, lab_dir: Path, node: str, timeout: float = 5) -> bool:
    """Stop one BMC daemon if the PID is really it; True if one was stopped."""
    return daemon.stop(pid, is_our_bmc(pid, lab_dir, node), timeout)
