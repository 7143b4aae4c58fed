"""Fence devices: what stage 4 renders as stonith resources, and the credentials they need on each node.

One device per node: the node's BMC, driven by Debian's `fence_ipmilan`, as
the site's inventory (`hakit.inventory`) names it: on real hosts from
`pacemaker.fencing` in the params, in the lab its virtual BMCs.

How the password travels, and where it never goes:

- `fence_ipmilan` always hands the password to ipmitool as `-P <password>` on
  the command line (fence-agents 4.12, `create_command`), also when it comes
  from `password_script`; any local user can read it there with `ps` (the
  control in tests/lab/test_fencing.py catches it every time). So the CIB carries
  no `password` and no `password_script`: it names `ipmitool_path` =
  `WRAPPER`, a small script that drops the agent's (empty) `-P` and runs
  `ipmitool -f <file>`, a root-only file named after the BMC's address and port.
- Stage 4 plans each BMC's password onto every node as a `WriteSecret`
  (`credential_ops`): the plan carries where it comes from, never its bytes;
  it travels over SFTP (the file is created 0600 before a byte is written) and
  is never on a command line, in the CIB, in a log, a plan or an outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .errors import HakitError
from .inventory import CRED_DIR, FenceDevice
from .site import inventory as resolve
from .ops import Command, Op, SecretRef, WriteFile, WriteSecret
from .params import IPMI_PASSWORD_MAX, Params
from .runner import Runner


WRAPPER = "/usr/local/sbin/hakit-ipmitool"
IPMITOOL = "/usr/bin/ipmitool"
# In a two-node cluster both nodes may try to fence each other at the same moment;
# delaying the device that fences the preferred node lets that node win the race.
TWO_NODE_DELAY = 5  # seconds, the default of pacemaker.fencing.delay_s
MONITOR_INTERVAL = "60s"


class FencingError(HakitError, RuntimeError):
    """Fencing cannot be set up as asked; the message says what to fix (never the secret)."""


Device = FenceDevice  # one node's BMC, as the site's inventory names it


def devices(params: Params) -> list[Device]:
    """Every node's fence device, in node order, from the site's inventory. Empty without fencing."""
    if params.pacemaker.fencing is None:
        return []
    return list(resolve(params).fence)


def read_password(dev: Device) -> bytes:
    """The device's password, from the params or its file on this machine (first line)."""
    if dev.password is not None:
        data = dev.password.get_secret_value().encode()
    elif dev.password_file is not None:
        path = dev.password_file.expanduser()
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            raise FencingError(f"password file {path} for {dev.node}'s BMC does not exist; create it (mode 0600)") from None
        except OSError as e:
            raise FencingError(f"password file {path} for {dev.node}'s BMC cannot be read: {e.strerror}") from None
        data = lines[0].strip() if lines else b""
    else:
        raise FencingError(f"no password configured for {dev.node}'s BMC")
    if not 1 <= len(data) <= IPMI_PASSWORD_MAX:
        raise FencingError(
            f"the password for {dev.node}'s BMC has {len(data)} bytes; IPMI v2 accepts 1 to {IPMI_PASSWORD_MAX}"
        )
    return data


# ----------------------------------------------------------------- stonith resources


@dataclass(frozen=True)
class StonithResource:
    """One `stonith:` primitive as stage 4 should create it, with no secret in it."""

    id: str
    agent: str  # e.g. fence_ipmilan -> class stonith, type fence_ipmilan
    target: str  # the node this device fences
    attributes: dict[str, str]  # instance attributes, in a stable order
    avoid_node: str  # location -INFINITY: a node never runs the device that kills it
    monitor_interval: str = MONITOR_INTERVAL


def stonith_resources(params: Params) -> list[StonithResource]:
    """The stonith primitives for these params (empty if no fencing is configured). Pure."""
    devs = devices(params)
    out = []
    for d in devs:
        attrs = {
            "ip": d.address,
            "ipport": str(d.port),
            "username": d.username,
            "lanplus": "1" if d.lanplus else "0",
        }
        if d.cipher is not None:
            attrs["cipher"] = str(d.cipher)
        attrs["ipmitool_path"] = WRAPPER  # the password comes from CRED_DIR, never from the CIB
        attrs["method"] = "onoff"  # off, confirm off, then on: never reports success before the node is off
        attrs["pcmk_host_list"] = d.node
        wait = params.pacemaker.fencing.power_wait_s if params.pacemaker.fencing else None
        if wait is not None:
            attrs["power_wait"] = str(wait)
        delay = params.pacemaker.fencing.delay_s if params.pacemaker.fencing else TWO_NODE_DELAY
        # With a quorum device there is no race: the node that loses qnetd's vote loses quorum and
        # does not fence (no-quorum-policy stop), so the delay would only slow every real failover.
        if len(devs) == 2 and d.node == params.preferred_node and delay and params.quorum_device is None:
            attrs["pcmk_delay_base"] = f"{delay}s"
        out.append(StonithResource(id=f"fence-{d.node}", agent=d.agent, target=d.node, attributes=attrs, avoid_node=d.node))
    return out


def fence_wait_s(params: Params) -> float:
    """The fence agent's fixed sleep after the power-off before it asks for the state (power_wait); 0
    without fencing. The agent's own default where the params leave it out."""
    fen = params.pacemaker.fencing
    if not params.pacemaker.stonith_enabled or fen is None:
        return 0.0
    if fen.power_wait_s is not None:
        return float(fen.power_wait_s)
    return 4.0 if fen.agent == "fence_ilo3" else 2.0  # fence_ipmilan's defaults (fence-agents 4.16)


# ----------------------------------------------------------------- credentials on the nodes


WRAPPER_SCRIPT = f"""#!/bin/sh
# Installed by hakit: fence_ipmilan's ipmitool (stonith attribute ipmitool_path).
# fence_ipmilan always passes the password as `-P <password>` on ipmitool's command
# line, readable by any user with ps. This drops that argument and has ipmitool read
# the password from a root-only file named after the BMC's address and port.
set -eu
dir={CRED_DIR}
host='' port=623 prev='' skip=0
for a do
    shift
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$prev" in
        -H) host=$a ;;
        -p) port=$a ;;
    esac
    prev=$a
    if [ "$a" = -P ]; then skip=1; prev=''; continue; fi
    set -- "$@" "$a"
done
case "$host$port" in
    '' | */* | .*) echo "hakit-ipmitool: no usable BMC address (-H) among the arguments" >&2; exit 2 ;;
esac
file="$dir/$host-$port.password"
if [ ! -r "$file" ]; then
    echo "hakit-ipmitool: no credential for BMC $host:$port ($file is missing); run stage 4 (04_pacemaker_properties) to install it" >&2
    exit 1
fi
exec {IPMITOOL} -f "$file" "$@"
"""


@dataclass(frozen=True)
class FileState:
    """One credential file on one node, as found: its path and whether it is as wanted (never its bytes)."""

    path: str
    state: str  # "in place", "missing", "content differs", "owner or mode differs: <found>"

    @property
    def in_place(self) -> bool:
        return self.state == "in place"


@dataclass(frozen=True)
class NodeCredentials:
    """What a node holds of the fencing credentials: the root-only folder, the wrapper, each password file."""

    node: str
    folder: FileState
    files: tuple[FileState, ...]

    @property
    def missing(self) -> list[str]:
        return [f.path for f in (self.folder, *self.files) if not f.in_place]


@dataclass(frozen=True, repr=False)
class CredentialFacts:
    """Every node's credential files (names and states only: contents are compared, never kept)."""

    nodes: dict[str, NodeCredentials]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"node": n.node, "file": f.path, "state": f.state} for n in self.nodes.values()
             for f in (n.folder, *n.files)],
            columns=["node", "file", "state"],
        )

    def _repr_html_(self) -> str:
        return "<h4>Fencing credentials (contents never shown)</h4>" + self.to_frame().to_html(index=False, escape=True)

    def __repr__(self) -> str:
        return self.to_frame().to_string(index=False)


def _meta(host: Runner, path: str) -> str | None:
    r = host.run(["stat", "-c", "%U:%G %a %F", path], check=False)
    return r.stdout.strip() if r.exit_code == 0 else None


def _file_state(host: Runner, path: str, data: bytes, mode: int) -> FileState:
    """Compare a node's file with ``data`` in memory (read over SFTP; nothing is kept or shown)."""
    meta = _meta(host, path)
    if meta is None:
        return FileState(path, "missing")
    if host.read_bytes(path) != data:
        return FileState(path, "content differs")
    want = f"root:root {mode:o} regular file"
    return FileState(path, "in place" if meta == want else f"owner or mode differs: {meta}")


def wanted_files(params: Params) -> dict[str, tuple[bytes, int]]:
    """path -> (content, mode) every node needs: the wrapper and each BMC's password.

    Reads the passwords (from the params or their files on this machine): a missing or bad
    one stops here, before any host is touched.
    """
    devs = devices(params)
    if not devs:
        raise FencingError("these params configure no fencing (pacemaker.fencing is not set)")
    out: dict[str, tuple[bytes, int]] = {WRAPPER: (WRAPPER_SCRIPT.encode(), 0o755)}
    for d in devs:
        out[d.credential_path] = (read_password(d), 0o600)
    return out


def node_credentials(host: Runner, wanted: Mapping[str, tuple[bytes, int]]) -> NodeCredentials:
    """Read-only: the state of the credential folder and files on one node."""
    meta = _meta(host, CRED_DIR)
    folder = FileState(CRED_DIR, "in place" if meta == "root:root 700 directory"
                       else "missing" if meta is None else f"owner or mode differs: {meta}")
    return NodeCredentials(host.name, folder, tuple(_file_state(host, p, d, m) for p, (d, m) in wanted.items()))


def password_ref(dev: Device) -> SecretRef:
    """The password as a plan carries it: where it comes from, and a loader (no digest: it is a password)."""
    where = f"from {dev.password_file}" if dev.password is None else "from pacemaker.fencing in the params"
    return SecretRef(label=f"password of {dev.node}'s BMC {dev.address}:{dev.port}, {where}",
                     load=lambda: read_password(dev))


def credential_ops(params: Params, facts: CredentialFacts) -> list[Op]:
    """Pure: per node, the folder, wrapper and password writes that are missing or differ.

    Every node gets every device's password: the fencer may run a device on any node but
    the one it fences, and in a larger cluster that is any of the others.
    """
    refs = {d.credential_path: password_ref(d) for d in devices(params)}
    ops: list[Op] = []
    for n in params.nodes:
        have = facts.nodes[n.name]
        if not have.folder.in_place:
            ops.append(Command(node=n.name, argv=("install", "-d", "-o", "root", "-g", "root", "-m", "0700", CRED_DIR),
                               label=f"install -d {CRED_DIR} (root-only)", reason=f"{CRED_DIR}: {have.folder.state}"))
        for f in have.files:
            if f.in_place:
                continue
            if f.path == WRAPPER:
                ops.append(WriteFile(node=n.name, path=WRAPPER, content=WRAPPER_SCRIPT.encode(), mode=0o755,
                                     reason=f"{f.state}; fence_ipmilan runs it as its ipmitool"))
            else:
                ops.append(WriteSecret(node=n.name, path=f.path, secret=refs[f.path], mode=0o600,
                                       reason=f"{f.state}; ipmitool reads the BMC password from here"))
    return ops
