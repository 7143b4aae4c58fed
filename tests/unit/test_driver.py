"""The stage driver and the operations on FakeRunners: order, barriers, failure reports, records."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from hakit.errors import HakitError, load_error
from hakit.ops import Barrier, Command, WriteFile, WriteSecret, SecretRef
from hakit.runner import FakeRunner, RemoteError
from hakit.stages import driver
from hakit.stages.base import Plan, Verification


class ToyStage:
    """A stage with a fixed plan, to drive the driver."""

    name = "99 toy"

    def __init__(self, ops, verify_ok: bool = True):
        self.ops, self.verify_ok = ops, verify_ok

    def gather(self, hosts):
        return {n: h.run("cat /etc/hostname").stdout for n, h in hosts.items()}

    def plan(self, facts) -> Plan:
        return Plan(self.name, ops=list(self.ops), order=sorted(facts))

    def verify(self, hosts, wait: bool = True) -> Verification:
        v = Verification(self.name)
        v.add("a", "toy check", self.verify_ok)
        return v


def fakes(*names: str) -> dict[str, FakeRunner]:
    return {n: FakeRunner(n).answer("cat /etc/hostname", n) for n in names}


def test_fake_runner_records_and_scripts() -> None:
    f = FakeRunner("n", strict=True).answer(r"^echo", "hi\n")
    assert f.run(["echo", "a b"]).stdout == "hi\n" and f.commands == ["echo 'a b'"]
    with pytest.raises(AssertionError, match="unexpected command"):
        f.run("rm -rf /")
    f.write_bytes("/x", b"data", mode=0o600)
    assert f.files["/x"] == b"data" and f.writes[0].mode == 0o600 and f.read_text("/x") == "data"
    assert f.read_text("/missing") is None
    f.fail_on.append("^false")
    with pytest.raises(RemoteError) as e:
        f.run("false")
    assert isinstance(e.value, HakitError) and e.value.exit_code == 1 and e.value.node == "n"


def test_barriers_hold_every_node_until_the_phase_before_is_done() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def log(cmd: str):
        with lock:
            seen.append(cmd)
        return ""

    hosts = {n: FakeRunner(n).answer(".", log) for n in ("a", "b", "c")}
    ops = [Command(node=n, argv=f"one {n}") for n in "abc"] + [Barrier(text="all did one")]
    ops += [Command(node=n, argv=f"two {n}") for n in "abc"]
    res = driver.apply(Plan("t", ops=ops, order=list("abc")), hosts, dry_run=False, parallel=True)
    assert sorted(seen[:3]) == ["one a", "one b", "one c"] and sorted(seen[3:]) == ["two a", "two b", "two c"]
    assert res.executed == ["a  one a", "b  one b", "c  one c", "a  two a", "b  two b", "c  two c"]


def test_a_failure_stops_the_next_phase_and_names_what_changed() -> None:
    hosts = fakes("a", "b")
    hosts["b"].fail_on.append("^step1")
    ops = [Command(node="a", argv="step1 a"), Command(node="b", argv="step1 b"), Barrier(text="x"),
           Command(node="a", argv="step2 a")]
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(Plan("t", ops=ops), hosts, dry_run=False, parallel=False)
    assert e.value.changed == ["a: step1 a"] and e.value.node == "b" and e.value.exit_code == 1
    assert "step2 a" not in hosts["a"].commands


def test_read_only_ops_are_not_counted_as_changes() -> None:
    hosts = fakes("a")
    hosts["a"].fail_on.append("^apply")
    ops = [Command(node="a", argv="check", read_only=True), Command(node="a", argv="apply")]
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(Plan("t", ops=ops), hosts, dry_run=False)
    assert e.value.changed == [] and "nothing was changed" in str(e.value)


def test_a_dry_run_executes_nothing_and_shows_the_program() -> None:
    hosts = fakes("a")
    secret = SecretRef("password from the vault", lambda: b"s3cret")
    ops = [WriteFile(node="a", path="/etc/x", content=b"x\n"), WriteSecret(node="a", path="/etc/p", secret=secret)]
    res = driver.apply(Plan("t", ops=ops), hosts, dry_run=True)
    assert hosts["a"].sent == [] and res.executed == []
    assert res.program[1] == "a  write /etc/p (password from the vault) root:root 0600"
    assert "s3cret" not in repr(ops) + "".join(res.program)


def test_stage_run_records_program_and_executed_and_fails_loudly(tmp_path: Path) -> None:
    hosts = fakes("a", "b")
    ops = [Command(node="a", argv="touch /x"), Command(node="b", argv="touch /x")]
    run = driver.StageRun(ToyStage(ops, verify_ok=False), hosts, dry_run=False, record_dir=str(tmp_path))
    for step in (run.gather, run.make_plan, run.apply, run.verify, run.save):
        step()
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["program"] == ["a  touch /x", "b  touch /x"] and rec["executed"] == rec["program"]
    with pytest.raises(AssertionError):
        run.raise_if_failed()


def test_stage_run_writes_error_json_with_the_failed_command(tmp_path: Path) -> None:
    hosts = fakes("a", "b")
    hosts["b"].fail_on.append("^boom")
    ops = [Command(node="a", argv="fine"), Barrier(text="x"), Command(node="b", argv="boom")]
    with pytest.raises(driver.StageFailed):
        driver.run_stage(ToyStage(ops), hosts, dry_run=False, record_dir=str(tmp_path))
    err = load_error(tmp_path)
    assert err is not None
    assert (err["type"], err["stage"], err["node"], err["command"], err["exit_code"]) == (
        "StageFailed", "99 toy", "b", "boom", 1)
    assert err["changed"] == ["a: fine"]


def test_blocked_plan_sends_nothing() -> None:
    hosts = fakes("a")
    p = Plan("t", ops=[Command(node="a", argv="x")], blocked={"a": "no disk"})
    with pytest.raises(driver.StageBlocked, match="a: no disk"):
        driver.apply(p, hosts, dry_run=False)
    assert hosts["a"].sent == []


def test_per_node_reads_run_concurrently_and_keep_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # only passes if all three run at once
    hosts = {n: FakeRunner(n) for n in ("c", "a", "b")}
    got = driver.per_node(hosts, ["c", "a", "b"], lambda h: (barrier.wait(), h.name)[1])
    assert list(got) == ["c", "a", "b"] and list(got.values()) == ["c", "a", "b"]


def test_a_dry_run_of_a_plan_with_changes_marks_failed_checks_expected() -> None:
    hosts = fakes("a")
    run = driver.StageRun(ToyStage([Command(node="a", argv="touch /x")], verify_ok=False), hosts, dry_run=True)
    run.make_plan()
    run.apply()
    v = run.verify()
    assert v.before_apply and not v.ok
    assert list(v.to_frame()["ok"]) == ["expected before apply"] and "expected before apply" in v._repr_html_()
    real = driver.StageRun(ToyStage([Command(node="a", argv="touch /x")], verify_ok=False), hosts, dry_run=False)
    real.make_plan()
    real.apply()
    assert not real.verify().before_apply  # after a real apply a failure is a failure


def test_parallel_copies_read_the_shared_source_once() -> None:
    """Copies to several nodes run side by side but read the source node once: two threads opening SFTP on
    one SSH connection at once hung a three-node copy on the lab."""
    import hashlib

    from hakit.ops import CopySecretFile

    key = b"k" * 256
    src = FakeRunner("a").answer(r"^sha256sum", f"{hashlib.sha256(key).hexdigest()}  /k\n")
    src.files["/k"] = key
    reads = []
    real_read = src.read_bytes

    def counted(path: str) -> bytes:
        reads.append(threading.current_thread().name)
        return real_read(path)

    src.read_bytes = counted  # type: ignore[method-assign]
    dsts = {n: FakeRunner(n).answer(r"^sha256sum", f"{hashlib.sha256(key).hexdigest()}  /k\n") for n in "bcd"}
    hosts = {"a": src, **dsts}
    ops = [CopySecretFile(node=n, src_node="a", path="/k", expect_sha256=hashlib.sha256(key).hexdigest()) for n in "bcd"]
    driver.apply(Plan("t", ops=ops), hosts, dry_run=False, parallel=True)
    assert len(reads) == 1 and all(d.files["/k"] == key for d in dsts.values())
