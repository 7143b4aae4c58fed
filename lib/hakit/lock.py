"""One change at a time: a cluster-wide lock, taken on every node before the first change.

The lock is a small file, ``/run/hakit/lock``, created atomically (``set -C``) on each node in
params order. It names its owner (a run id), who took it, the process and since when; it
holds nothing secret. ``/run`` is a tmpfs, so a reboot clears it. A lock whose process on
this machine is gone is stale: `hakit unlock` clears it after saying whose it was.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import HakitError
from .runner import Runner

LOCK_DIR = "/run/hakit"
LOCK = f"{LOCK_DIR}/lock"
RUN_ID_ENV = "HAKIT_RUN_ID"  # `hakit run` sets it, so its notebooks share the run's lock


class LockHeld(HakitError, RuntimeError):
    """Another run or operation holds the cluster lock; nothing was changed."""


@dataclass(frozen=True)
class Holder:
    owner: str
    who: str  # user@host that took it
    pid: int
    since: str  # UTC, ISO 8601

    @classmethod
    def mine(cls, owner: str) -> "Holder":
        return cls(owner, f"{getpass.getuser()}@{socket.gethostname()}", os.getpid(),
                   datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        try:
            d = json.loads(text)
            return cls(str(d["owner"]), str(d["who"]), int(d["pid"]), str(d["since"]))
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def stale(self) -> bool:
        """Taken on this machine by a process that no longer exists."""
        if self.who.rpartition("@")[2] != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __str__(self) -> str:
        return f"{self.who} (pid {self.pid}, owner {self.owner}) since {self.since}"


def owner_id() -> str:
    """The run's id when `hakit run` started this process, else a fresh one for this operation."""
    return os.environ.get(RUN_ID_ENV) or f"op-{uuid.uuid4().hex[:12]}"


def _take_script(content: str) -> str:
    q = shlex.quote(content)
    return (f"mkdir -p -m 0755 {LOCK_DIR} && "
            f"if ( set -C; printf '%s\\n' {q} > {LOCK} ) 2>/dev/null; then echo TAKEN; else cat {LOCK}; fi")


def acquire(hosts: Mapping[str, Runner], owner: str) -> list[str]:
    """Take the lock on every node (in order); return the nodes where this call took it.

    Re-entrant for the same owner. If another owner holds it anywhere, the locks this call took
    are released again and `LockHeld` names the holder (and says when it is stale).
    """
    me = Holder.mine(owner)
    taken: list[str] = []
    for node, h in hosts.items():
        try:
            out = h.run(_take_script(me.to_json()), timeout=30).stdout.strip()
        except BaseException:  # a node that cannot be locked: give back what this call took, then say why
            release({n: hosts[n] for n in taken}, owner)
            raise
        if out == "TAKEN":
            taken.append(node)
            continue
        holder = Holder.parse(out)
        if holder is not None and holder.owner == owner:
            continue
        release({n: hosts[n] for n in taken}, owner)
        what = str(holder) if holder else f"an unreadable lock file ({out[:80]!r})"
        hint = (" It is stale (that process is gone): clear it with `python -m hakit unlock --params <file>`."
                if holder is not None and holder.stale else
                " Wait for it to finish, or, if it was interrupted, clear it with "
                "`python -m hakit unlock --params <file>`.")
        raise LockHeld(f"{node}: the cluster is locked by {what}: one change at a time. Nothing was changed.{hint}")
    return taken


def release(hosts: Mapping[str, Runner], owner: str) -> list[str]:
    """Remove the lock where this owner holds it (another owner's lock is left alone); best effort on
    every node. Returns the nodes where it could not be released (unreachable)."""
    q = shlex.quote(f'"owner": {json.dumps(owner)}')
    failed = []
    for node, h in hosts.items():
        try:
            h.run(f"grep -qF {q} {LOCK} 2>/dev/null && rm -f {LOCK}; true", check=False, timeout=30)
        except Exception:  # noqa: BLE001 - the node is down or unreachable: its lock stays, say so
            failed.append(node)
    return failed


def holders(hosts: Mapping[str, Runner]) -> dict[str, Holder | None]:
    """Who holds the lock on each node (None: nobody)."""
    out = {}
    for node, h in hosts.items():
        text = h.run(f"cat {LOCK} 2>/dev/null || true", check=False, timeout=30).stdout.strip()
        out[node] = Holder.parse(text) if text else None
    return out


def clear(hosts: Mapping[str, Runner]) -> dict[str, Holder | None]:
    """Remove the lock on every node whoever holds it; return what was there."""
    found = holders(hosts)
    for h in hosts.values():
        h.run(["rm", "-f", LOCK], check=False, timeout=30)
    return found
