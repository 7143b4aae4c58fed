"""The cluster lock on fake nodes that keep the lock file: one owner at a time, re-entrant, released,
a stale holder named; and a StageRun refuses to apply a plan the cluster no longer matches."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

from hakit import lock
from hakit.ops import Command
from hakit.runner import FakeRunner, Result
from hakit.stages import driver
from hakit.stages.base import Plan, Verification


def locking_node(name: str) -> FakeRunner:
    """A fake node whose lock commands act on a real 'file' (its files dict)."""
    f = FakeRunner(name, defaults=[])

    def take(cmd: str) -> Result:
        if lock.LOCK in f.files:
            return Result(f.files[lock.LOCK].decode(), "", 0)
        content = re.search(r"printf '%s\\n' '(.*)' > /run/hakit/lock", cmd)
        assert content
        f.files[lock.LOCK] = content.group(1).encode() + b"\n"
        return Result("TAKEN\n", "", 0)

    def release(cmd: str) -> Result:
        owner = re.search(r'"owner": (".*?")', cmd)
        assert owner
        if lock.LOCK in f.files and json.loads(f.files[lock.LOCK])["owner"] == json.loads(owner.group(1)):
            del f.files[lock.LOCK]
        return Result("", "", 0)

    def cat(_cmd: str) -> Result:
        return Result(f.files.get(lock.LOCK, b"").decode(), "", 0)

    def rm(_cmd: str) -> Result:
        f.files.pop(lock.LOCK, None)
        return Result("", "", 0)

    f.answer(r"set -C", take).answer(r"^grep -qF", release).answer(r"^cat /run/hakit/lock", cat)
    f.answer(r"^rm -f /run/hakit/lock", rm)
    return f


def nodes() -> dict[str, FakeRunner]:
    return {n: locking_node(n) for n in ("a", "b", "c")}


def test_one_owner_at_a_time_and_re_entrant() -> None:
    hosts = nodes()
    assert lock.acquire(hosts, "run-1") == ["a", "b", "c"]
    assert lock.acquire(hosts, "run-1") == []  # the run's own notebooks share it
    with pytest.raises(lock.LockHeld, match=r"a: the cluster is locked by .*owner run-1.*Nothing was changed"):
        lock.acquire(hosts, "run-2")
    lock.release(hosts, "run-2")  # not its lock: left alone
    assert all(h.owner == "run-1" for h in lock.holders(hosts).values() if h)
    lock.release(hosts, "run-1")
    assert lock.holders(hosts) == {"a": None, "b": None, "c": None}


def test_a_refused_acquire_gives_back_what_it_took() -> None:
    hosts = nodes()
    lock.acquire({"c": hosts["c"]}, "other")
    with pytest.raises(lock.LockHeld, match="c: "):
        lock.acquire(hosts, "mine")
    assert lock.holders(hosts)["a"] is None and lock.holders(hosts)["b"] is None


def test_a_dead_holder_on_this_machine_is_called_stale() -> None:
    hosts = nodes()
    dead = lock.Holder("old-run", f"root@{socket.gethostname()}", 2**22 + 12345, "2026-01-01T00:00:00+00:00")
    assert dead.stale
    hosts["a"].files[lock.LOCK] = dead.to_json().encode()
    with pytest.raises(lock.LockHeld, match="It is stale .* hakit unlock"):
        lock.acquire(hosts, "mine")
    found = lock.clear(hosts)
    assert found["a"] == dead and lock.holders(hosts)["a"] is None
    assert not lock.Holder("x", f"root@{socket.gethostname()}", os.getpid(), "now").stale
    assert not lock.Holder("x", "root@elsewhere", 2**22 + 12345, "now").stale


class Counter:
    """A stage whose plan follows a counter on the fake node, to change the cluster between plan and apply."""

    name = "98 counter"

    def __init__(self, hosts):
        self.state = {"n": 1}

    def gather(self, hosts):
        return self.state["n"]

    def plan(self, facts) -> Plan:
        return Plan(self.name, ops=[Command(node="a", argv=f"set {facts}")])

    def verify(self, hosts, wait=True) -> Verification:
        return Verification(self.name)


def test_a_plan_the_cluster_no_longer_matches_is_refused_under_the_lock() -> None:
    hosts = nodes()
    stage = Counter(hosts)
    run = driver.StageRun(stage, hosts, dry_run=False)
    run.make_plan()
    stage.state["n"] = 2  # someone changed the cluster after the plan was shown
    with pytest.raises(driver.PlanChanged, match="Now it would be:\n  a  set 2"):
        run.apply()
    assert "set 1" not in hosts["a"].commands and "set 2" not in hosts["a"].commands
    assert lock.holders(hosts) == {"a": None, "b": None, "c": None}  # released on the way out


def test_apply_holds_the_lock_while_it_runs_and_refuses_when_another_holds_it() -> None:
    hosts = nodes()
    seen = []
    hosts["a"].answer(r"^set ", lambda _c: (seen.append(lock.holders(hosts)["b"]), "")[1])
    run = driver.StageRun(Counter(hosts), hosts, dry_run=False)
    run.make_plan()
    run.apply()
    assert seen and seen[0] is not None and seen[0].owner.startswith("op-")
    lock.acquire(hosts, "someone-else")
    run2 = driver.StageRun(Counter(hosts), hosts, dry_run=False)
    run2.make_plan()
    with pytest.raises(lock.LockHeld):
        run2.apply()
