"""One lab node: an overlay root over the image, booted by systemd-nspawn in its own netns.

Processes are found exactly: the nspawn PID we recorded (checked against its
command line), its child whose PID inside the new PID namespace is 1 (the
node's systemd), and the processes in the node's own network namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..localcmd import run
from . import net

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class NodePaths:
    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def console(self) -> Path:
        return self.base / "console.log"

    @property
    def host_key(self) -> Path:
        return self.base / "ssh_host_ed25519_key"


# ----------------------------------------------------------------- processes


def pid_alive(pid: int | None) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_our_nspawn(pid: int | None, machine: str) -> bool:
    """The recorded PID is still the nspawn we started for this machine (not a reused PID)."""
    if not pid_alive(pid):
        return False
    argv = cmdline(pid)  # type: ignore[arg-type]
    return bool(argv) and argv[0].endswith("systemd-nspawn") and f"--machine={machine}" in argv


def find_leader(nspawn_pid: int) -> int | None:
    """The node's init: the nspawn child whose PID in its own namespace is 1."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    except OSError:
        return None
    for c in children:
        try:
            status = Path(f"/proc/{c}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                return int(c)
    return None


def processes_named(netns: str, name: str) -> list[int]:
    """Host PIDs of processes in a node whose command name is exactly `name`."""
    found = []
    for pid in net.netns_pids(netns):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.append(pid)
        except OSError:
            continue
    return found


def memory_kib(netns: str) -> int:
    """Proportional set size of every process in the node (shared pages split fairly)."""
    total = 0
    for pid in net.netns_pids(netns):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def kill_all_in_netns(netns: str, timeout: float = 10) -> None:
    """SIGKILL every process in the node's netns (only the node's own processes live there)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in net.netns_pids(netns) if pid_alive(p)]
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in netns {netns} survived SIGKILL for {timeout} s")
        time.sleep(0.1)


# ----------------------------------------------------------------- cgroups


def cgroup_dirs(machine: str) -> list[Path]:
    """Where this node's nspawn runs: its own cgroup in each hierarchy nspawn uses."""
    dirs = []
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure cgroup v2
        dirs.append(CGROUP_ROOT / "hakit" / machine)
    else:
        for h in ("systemd", "unified"):
            if (CGROUP_ROOT / h / "cgroup.procs").exists():
                dirs.append(CGROUP_ROOT / h / "hakit" / machine)
    return dirs


def own_cgroup(name: str) -> tuple[list[Path], Callable[[], None]]:
    """Make a cgroup per hierarchy for `name`; returns them and a preexec function that joins them.

    nspawn creates its payload/supervisor cgroups wherever it starts, so every nspawn
    we run starts in a cgroup of its own.
    """
    dirs = cgroup_dirs(name)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)

    def join() -> None:  # runs in the child between fork and exec
        for d in dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write("0")

    return dirs, join


def _populated(d: Path) -> bool:
    """Does a process (a zombie included) still hold this cgroup or one below it?"""
    events = d / "cgroup.events"  # cgroup v2: "populated 0|1" covers the whole subtree
    if events.exists():
        try:
            return "populated 1" in events.read_text()
        except OSError:
            return False
    for dirpath, _, files in os.walk(d):
        if "cgroup.procs" in files:
            try:
                if Path(dirpath, "cgroup.procs").read_text().strip():
                    return True
            except OSError:
                pass
    return False


def remove_cgroup_tree(d: Path, timeout_s: float = 15.0) -> None:
    """Remove a node's cgroup, once the processes that held it are gone: a killed nspawn can stay a zombie
    for a moment on a machine whose PID 1 reaps late, and its cgroup cannot go before it does."""
    if not d.exists():
        return
    deadline = time.monotonic() + timeout_s
    while _populated(d) and time.monotonic() < deadline:
        time.sleep(0.1)
    for dirpath, dirnames, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    parent = d.parent
    if parent.name == "hakit":
        try:
            os.rmdir(parent)  # only succeeds once no other node's cgroup is left
        except OSError:
            pass


# ----------------------------------------------------------------- disk


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def mount_overlay(image_root: Path, p: NodePaths) -> None:
    for d in (p.upper, p.work, p.root):
        d.mkdir(parents=True, exist_ok=True)
    if not is_mounted(p.root):
        run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={image_root},upperdir={p.upper},workdir={p.work}",
                str(p.root),
            ]
        )


def unmount(path: Path) -> None:
    if path.exists() and is_mounted(path):
        r = run(["umount", str(path)], check=False)
        if r.returncode != 0:
            run(["umount", "--lazy", str(path)])


def personalise(
    p: NodePaths, hostname: str, hosts: list[tuple[str, str]], authorized_key: str
) -> str:
    """Give a new node its identity; returns the host's public key line for known_hosts."""
    root = p.root
    (root / "etc/hostname").write_text(f"{hostname}\n")
    mid = root / "etc/machine-id"
    if not mid.read_text().strip():
        mid.write_text(uuid.uuid4().hex + "\n")
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for ip, name in hosts]
    (root / "etc/hosts").write_text("\n".join(lines) + "\n")
    if not p.host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}", "-f", str(p.host_key)])
    key_dst = root / "etc/ssh/ssh_host_ed25519_key"
    key_dst.write_bytes(p.host_key.read_bytes())
    key_dst.chmod(0o600)
    pub = Path(str(p.host_key) + ".pub").read_text().strip()
    (root / "etc/ssh/ssh_host_ed25519_key.pub").write_text(pub + "\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ak = ssh_dir / "authorized_keys"
    ak.write_text(authorized_key.strip() + "\n")
    ak.chmod(0o600)
    return " ".join(pub.split()[:2])


# ----------------------------------------------------------------- boot


def start(machine: str, hostname: str, p: NodePaths, netns: str) -> int:
    """Boot the node in the background; returns the nspawn PID."""
    _dirs, join_cgroups = own_cgroup(machine)
    argv = [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        f"--directory={p.root}",
        f"--machine={machine}",
        f"--hostname={hostname}",
        "--register=no",
        "--keep-unit",
        # --private-network as well: otherwise nspawn bind-mounts the host's /sys, and
        # /sys/class/net inside the node would list the host's interfaces, not its own.
        "--private-network",
        f"--network-namespace-path={net.NETNS_DIR / netns}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
        # IPaddr2 adds addresses and sends gratuitous ARP; ping needs raw sockets.
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
    ]
    log = open(p.console, "ab")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_cgroups,
        )
    finally:
        log.close()
    return proc.pid


def wait_leader(nspawn_pid: int, machine: str, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = find_leader(nspawn_pid)
        if leader:
            return leader
        if not pid_alive(nspawn_pid):
            raise RuntimeError(f"systemd-nspawn for {machine} exited during start; see its console log")
        time.sleep(0.05)
    raise RuntimeError(f"node {machine}: no init process appeared within {timeout} s")


def power_cut(leader: int | None, nspawn_pid: int | None, machine: str, netns: str, timeout: float = 10) -> None:
    """Like pulling the plug: SIGKILL the node's init, which takes its whole PID namespace."""
    if leader and pid_alive(leader):
        try:
            os.kill(leader, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_all_in_netns(netns, timeout)
    deadline = time.monotonic() + timeout
    while is_our_nspawn(nspawn_pid, machine):
        if time.monotonic() > deadline:
            os.kill(nspawn_pid, signal.SIGKILL)  # type: ignore[arg-type]
            break
        time.sleep(0.05)
    _reap(nspawn_pid)


def _reap(pid: int | None) -> None:
    """Collect the exit status if the nspawn is our own child (avoids a zombie)."""
    if not pid:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
