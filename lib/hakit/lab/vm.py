"""One VM lab node: qemu (TCG) booting the VM image from its own qcow2 overlay.

The VM has its own kernel, so bonding works there. Its four NICs are virtio
devices on tap devices that sit on the lab's bridges; nothing else connects it
(no user-mode networking, `-nodefaults`). A cable is pulled through the QMP
monitor (`set_link`), so the guest sees a real carrier loss. The qemu process
is found exactly: the recorded PID checked against its command line
(`-name guest=<machine>`), or by that name alone after a lost state file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..localcmd import run
from . import node
from .net import Link, link_exists
from .vmimage import FW_CFG_NAME, NET_FILE, VmImage

QEMU = "qemu-system-x86_64"
PCI_SLOT0 = 0x10  # NICs at fixed PCI slots, in order, so the guest names them eth0..eth3


@dataclass(frozen=True)
class VmPaths:
    """Where one VM node keeps its disk, monitor socket, identity and logs (under the lab's nodes/<name>/)."""

    base: Path

    @property
    def disk(self) -> Path:
        return self.base / "disk.qcow2"

    @property
    def qmp(self) -> Path:
        return self.base / "qmp.sock"

    @property
    def identity(self) -> Path:
        return self.base / "identity.tar"

    @property
    def console(self) -> Path:
        return self.base / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.base / "qemu.log"

    @property
    def staging(self) -> node.NodePaths:
        """A scratch root that `node.personalise` writes into, packed into identity.tar."""
        return node.NodePaths(self.base / "identity")


def mac_address(lab_id: str, node_name: str, iface: str) -> str:
    """A stable, locally administered MAC per lab, node and NIC (QEMU's 52:54:00 prefix)."""
    h = hashlib.sha256(f"{lab_id}/{node_name}/{iface}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def guest_net_lines(links: tuple[Link, ...], gateway: str | None) -> str:
    """Pure: the guest unit's first-address file: `up DEV`, `addr DEV CIDR`, `route DEV GATEWAY`."""
    lines = [f"addr {ln.node_end} {ln.address}" if ln.address else f"up {ln.node_end}" for ln in links]
    pub = next((ln.node_end for ln in links if ln.network == "public" and ln.address), None)
    if gateway and pub:
        lines.append(f"route {pub} {gateway}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- disk and identity


def make_disk(image: VmImage, p: VmPaths) -> None:
    """A copy-on-write overlay over the read-only base disk; kept across power cuts."""
    p.base.mkdir(parents=True, exist_ok=True)
    if not p.disk.exists():
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.disk), str(p.disk)])


def write_identity(p: VmPaths, hostname: str, hosts: list[tuple[str, str]], authorized_key: str, net_text: str) -> str:
    """Pack the node's identity into identity.tar (0600: it holds the host key); returns the host key line."""
    st = p.staging
    for d in (st.root / "etc/ssh", st.root / "root/.ssh", st.root / "etc/hakit-lab"):
        d.mkdir(parents=True, exist_ok=True)
    (st.root / "etc/machine-id").write_text("")
    hostkey = node.personalise(st, hostname, hosts, authorized_key)
    (st.root / "etc/machine-id").unlink()  # systemd makes and keeps one on the node's first boot
    (st.root / NET_FILE).write_text(net_text)
    fd = os.open(p.identity, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(x for x in st.root.rglob("*") if x.is_file()):
            info = tar.gettarinfo(str(f), arcname=str(f.relative_to(st.root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(f, "rb") as fh:
                tar.addfile(info, fh)
    with os.fdopen(fd, "wb") as out:
        out.write(buf.getvalue())
    return hostkey


# ----------------------------------------------------------------- taps


def ensure_tap(name: str, bridge: str) -> None:
    """A persistent tap on the bridge; qemu attaches to it by name. Deleted by `lab down`."""
    if not link_exists(name):
        run(["ip", "tuntap", "add", "dev", name, "mode", "tap"])
    run(["ip", "link", "set", name, "master", bridge])
    run(["ip", "link", "set", name, "up"])


# ----------------------------------------------------------------- process


def qemu_argv(machine: str, image: VmImage, p: VmPaths, links: tuple[Link, ...], lab_id: str, node_name: str, memory_mib: int) -> list[str]:
    """Pure: the qemu command line (TCG, one vCPU, direct kernel boot, four NICs on taps, QMP on a socket)."""
    argv = [
        QEMU,
        "-name", f"guest={machine}",
        "-accel", "tcg,tb-size=256",
        "-smp", "1",
        "-m", str(memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet panic=10",
        "-drive", f"file={p.disk},if=virtio,format=qcow2",
        "-serial", f"file:{p.console}",
        "-qmp", f"unix:{p.qmp},server=on,wait=off",
        "-fw_cfg", f"name={FW_CFG_NAME},file={p.identity}",
    ]  # fmt: skip
    for k, ln in enumerate(links):
        argv += [
            "-netdev", f"tap,id={ln.node_end},ifname={ln.host_end},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev={ln.node_end},mac={mac_address(lab_id, node_name, ln.node_end)},addr={PCI_SLOT0 + k:#x}",
        ]  # fmt: skip
    return argv


def start(argv: list[str], p: VmPaths) -> int:
    """Start qemu in the background (own session, so a Ctrl-C of the caller does not reach it); returns its PID."""
    if p.qmp.exists():
        p.qmp.unlink()
    log = open(p.qemu_log, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()
    return proc.pid


def is_our_qemu(pid: int | None, machine: str) -> bool:
    """The recorded PID is still the qemu we started for this machine (not a reused PID)."""
    if not node.pid_alive(pid):
        return False
    argv = node.cmdline(pid)  # type: ignore[arg-type]
    return _is_qemu_for(argv, machine)


def _is_qemu_for(argv: list[str], machine: str) -> bool:
    if not argv or not argv[0].endswith(QEMU):
        return False
    return any(a == "-name" and b == f"guest={machine}" for a, b in zip(argv, argv[1:]))


def find_qemus(machine: str) -> list[int]:
    """Every live qemu started for this machine name (teardown after a lost state file)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and node.pid_alive(int(d.name)) and _is_qemu_for(node.cmdline(int(d.name)), machine):
            found.append(int(d.name))
    return found


def wait_monitor(pid: int, p: VmPaths, timeout: float = 30) -> None:
    """Wait until qemu answers on its QMP socket (it then runs the guest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.pid_alive(pid):
            tail = p.qemu_log.read_text(errors="replace")[-600:] if p.qemu_log.exists() else ""
            raise RuntimeError(f"qemu exited during start: {tail.strip() or 'no output'} (log: {p.qemu_log})")
        if p.qmp.exists():
            try:
                qmp(p.qmp, "query-status")
                return
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"qemu (pid {pid}) did not open its monitor {p.qmp} within {timeout} s")


def qmp(sock_path: Path, command: str, arguments: dict[str, object] | None = None, timeout: float = 10) -> object:
    """One QMP command over the node's monitor socket; returns its `return` value."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rwb")
        _qmp_read(f)  # greeting
        for cmd, args in (("qmp_capabilities", None), (command, arguments)):
            msg: dict[str, object] = {"execute": cmd}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            reply = _qmp_read(f)
        if "error" in reply:
            raise RuntimeError(f"qemu monitor: {command} failed: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")


def _qmp_read(f: io.BufferedRWPair) -> dict:  # type: ignore[type-arg]
    """The next reply or greeting, skipping asynchronous events."""
    while True:
        line = f.readline()
        if not line:
            raise OSError("qemu monitor closed the connection")
        msg = json.loads(line)
        if "event" not in msg:
            return msg


def set_link(p: VmPaths, netdev: str, up: bool) -> None:
    """Pull (or plug back) one NIC's cable: the guest's driver sees carrier off (on)."""
    qmp(p.qmp, "set_link", {"name": netdev, "up": up})


def power_cut(pid: int | None, machine: str, timeout: float = 10) -> None:
    """SIGKILL the qemu process(es) of this machine: the guest stops mid-flight, its disk stays."""
    pids = {pid} if is_our_qemu(pid, machine) else set()
    pids |= set(find_qemus(machine))
    for q in pids:
        try:
            os.kill(q, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for q in pids:
        while node.pid_alive(q):
            if time.monotonic() > deadline:
                raise RuntimeError(f"qemu {q} of {machine} survived SIGKILL for {timeout} s")
            time.sleep(0.05)
        node._reap(q)


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of the qemu process in KiB: what the VM costs this machine."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss
