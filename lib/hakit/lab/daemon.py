"""The lab's own small daemons on this machine (virtual BMCs, the package mirror): start, find, stop.

A daemon is a `python -m MODULE --lab-dir=DIR ...` process. It writes one line
``ready`` to an inherited pipe once it serves; until then (or if it dies) the
start fails with the tail of its log. Daemons are found exactly: a PID is one of
ours only if its command line names the module and this lab's directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import node as labnode
from .node import _reap


def argv(module: str, lab_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", module, f"--lab-dir={lab_dir}", *args]


def is_ours(pid: int | None, module: str, lab_dir: Path, *args: str) -> bool:
    """The PID is alive and its command line is this module of this lab (with these arguments)."""
    if not labnode.pid_alive(pid):
        return False
    cmd = labnode.cmdline(pid)  # type: ignore[arg-type]
    return module in cmd and f"--lab-dir={lab_dir}" in cmd and all(a in cmd for a in args)


def find(module: str, lab_dir: Path) -> dict[int, list[str]]:
    """Every live daemon of this module and lab (PID -> command line), by exact command line."""
    found: dict[int, list[str]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            cmd = labnode.cmdline(int(p.name))
            if module in cmd and f"--lab-dir={lab_dir}" in cmd and labnode.pid_alive(int(p.name)):
                found[int(p.name)] = cmd
    return found


def start(command: Sequence[str], log_path: Path, what: str, stop: Callable[[int], object],
          timeout: float = 15) -> int:
    """Start a daemon (``command`` gets ``--ready-fd=N`` appended); its PID once it reports ready."""
    read_end, write_end = os.pipe()
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [*command, f"--ready-fd={write_end}"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(write_end,), start_new_session=True, cwd="/",
        )
    finally:
        log.close()
        os.close(write_end)
    deadline = time.monotonic() + timeout
    buf = b""
    with os.fdopen(read_end, "rb", buffering=0) as r:
        os.set_blocking(r.fileno(), False)
        while b"\n" not in buf:
            try:
                chunk = r.read(64)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break  # EOF without "ready": it died
            if chunk:
                buf += chunk
                continue
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    if not buf.startswith(b"ready"):
        stop(proc.pid)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{what} did not start: {' / '.join(tail) or 'no output'}")
    return proc.pid


def stop(pid: int | None, ours: bool, timeout: float = 5) -> bool:
    """SIGTERM (then SIGKILL) a daemon that ``ours`` confirms is ours; True if one was stopped."""
    if not ours:
        _reap(pid)
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while labnode.pid_alive(pid):
        _reap(pid)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += timeout
        time.sleep(0.02)
    _reap(pid)
    return True


def ready(fd: int | None) -> None:
    """Called by a daemon once it serves: tell the starter."""
    if fd is not None:
        os.write(fd, b"ready\n")
        os.close(fd)
