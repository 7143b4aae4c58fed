"""Stage 2 on FakeRunners that keep a tiny file system: the key is made on the first node,
copied by reference (never in the plan), and a failed copy names what was already done."""

from __future__ import annotations

import hashlib
import os
import re
import shlex

import pytest

from hakit.params import Params
from hakit.runner import FakeRunner, Result
from hakit.stages import authkey, driver

KEY = authkey.AUTHKEY


def fs_node(name: str, key: bytes | None = None, mode: int = 0o400) -> FakeRunner:
    """A fake node whose commands act on its ``files``: keygen, mv, chmod, sha256sum, the probe."""
    f = FakeRunner(name)
    modes: dict[str, int] = {}
    if key is not None:
        f.files[KEY], modes[KEY] = key, mode

    def probe(_cmd: str) -> Result:
        out = "keygen yes\ncorosync inactive\n"
        if KEY not in f.files:
            return Result(out + "kind none\n", "", 0)
        data = f.files[KEY]
        return Result(out + f"kind file\nmeta root:root {modes.get(KEY, 0o400):o} {len(data)}\n"
                      f"sha256 {hashlib.sha256(data).hexdigest()}  {KEY}\n", "", 0)

    def keygen(cmd: str) -> Result:
        f.files[shlex.split(cmd)[-1]] = os.urandom(256)
        return Result("", "", 0)

    def mv(cmd: str) -> Result:
        src, dst = shlex.split(cmd)[-2:]
        f.files[dst] = f.files.pop(src)
        return Result("", "", 0)

    def chmod(cmd: str) -> Result:
        m = re.search(r"chmod (\d+) (\S+)", cmd)
        assert m
        modes[m.group(2)] = int(m.group(1), 8)
        return Result("", "", 0)

    def sha(cmd: str) -> Result:
        path = shlex.split(cmd)[-1]
        return Result(f"{hashlib.sha256(f.files[path]).hexdigest()}  {path}\n", "", 0)

    f.answer(r"^f=/etc/corosync/authkey", probe).answer(r"^corosync-keygen", keygen).answer(r"^mv -f", mv)
    f.answer(r"chmod", chmod).answer(r"^sha256sum", sha)
    return f


def run_stage(params: Params, fakes: dict[str, FakeRunner], **kw) -> driver.StageRun:
    run = driver.StageRun(authkey.AuthkeyStage(params, **kw), fakes, dry_run=False)
    run.gather()
    run.make_plan()
    run.apply()
    return run


def test_fresh_cluster_key_made_on_the_first_node_and_copied_to_the_others(lab3: Params) -> None:
    fakes = {n.name: fs_node(n.name) for n in lab3.nodes}
    run = run_stage(lab3, fakes)
    assert run.plan is not None
    prog = run.plan.program()
    assert prog[0].startswith(f"vm-node1  generate {KEY} with corosync-keygen")
    assert prog[1].startswith("--- barrier: the new key exists on vm-node1")
    assert prog[2:] == [f"{n}  copy {KEY} from vm-node1 (the key made above) to {n} root:root 0400"
                        for n in ("vm-node2", "vm-node3")]
    assert run.result is not None and run.result.executed == [p for p in prog if not p.startswith("---")]
    digests = {hashlib.sha256(f.files[KEY]).hexdigest() for f in fakes.values()}
    assert len(digests) == 1
    for name in ("vm-node2", "vm-node3"):
        (w,) = fakes[name].writes
        assert (w.what, w.mode, w.owner) == (KEY, 0o400, "root:root")
    assert run.verify().ok
    # a second run has nothing to do and sends no change
    again = run_stage(lab3, {n: f for n, f in fakes.items()})
    assert again.plan is not None and again.plan.ops == []


def test_the_plan_and_record_never_hold_key_bytes(lab: Params) -> None:
    key = os.urandom(256)
    fakes = {"vm-node1": fs_node("vm-node1", key), "vm-node2": fs_node("vm-node2")}
    run = run_stage(lab, fakes)
    assert run.plan is not None and run.result is not None
    text = repr(run.plan.ops) + "\n".join(run.plan.program()) + str(run.result.to_frame()) + repr(run.result)
    assert key.hex() not in text and repr(key) not in text
    assert fakes["vm-node2"].files[KEY] == key


def test_a_failed_copy_names_what_was_changed(lab3: Params) -> None:
    fakes = {n.name: fs_node(n.name) for n in lab3.nodes}
    fakes["vm-node3"].fail_on.append(f"write {KEY}")
    with pytest.raises(driver.StageFailed) as e:
        run_stage(lab3, fakes)
    changed = e.value.changed
    assert changed[0].startswith(f"vm-node1: generate {KEY}")
    assert f"vm-node2: copy {KEY} from vm-node1 (the key made above) to vm-node2 root:root 0400" in changed
    assert not any(c.startswith("vm-node3") for c in changed) and e.value.node == "vm-node3"
    assert KEY not in fakes["vm-node3"].files


def test_a_source_key_that_changed_since_the_plan_is_not_copied(lab: Params) -> None:
    fakes = {"vm-node1": fs_node("vm-node1", os.urandom(256)), "vm-node2": fs_node("vm-node2")}
    stage = authkey.AuthkeyStage(lab)
    plan = stage.plan(stage.gather(fakes))
    fakes["vm-node1"].files[KEY] = os.urandom(256)  # someone rotated it by hand in between
    with pytest.raises(driver.StageFailed, match="no longer the file the plan saw"):
        driver.apply(plan, fakes, dry_run=False)
    assert KEY not in fakes["vm-node2"].files


def test_a_dry_run_sends_only_the_probe(lab: Params) -> None:
    fakes = {n.name: fs_node(n.name) for n in lab.nodes}
    run = driver.StageRun(authkey.AuthkeyStage(lab), fakes, dry_run=True)
    run.gather()
    run.make_plan()
    res = run.apply()
    assert [o.outcome for o in res.outcomes] == ["not applied", "not applied"]
    for f in fakes.values():
        assert f.writes == [] and all(c.startswith("f=/etc/corosync/authkey") for c in f.commands)
