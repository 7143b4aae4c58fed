"""Stages that fail on real nodes: each either leaves every node as it was or names exactly the
nodes and files it changed, and the next run repairs what it left.

Failures are injected where a real one would come from: a tool on one node refuses (a wrapper of
the same name in ``/usr/local/sbin``, which comes first in root's PATH; the daemons, started by
systemd with absolute paths, are untouched), or a unit will not start (a systemd drop-in whose
``ExecStartPre`` exits 1). What a failure left is judged from evidence the
test reads itself from this machine (tests/lab/evidence.py: every inode, digests where stages
write, unit states, the CIB), not from the product's account, and then compared with that account
(`StageFailed.changed`).

Runs on the built two-node cluster and leaves it as the build made it (the fast profile, the
shipped failure policy). Two failures found here, both fixed: stage 3 after a failed
``corosync-cfgtool -R`` left the new file installed and corosync on the old timing, and the next
run called that converged (it now plans the one reload, and its verification checks the runtime
timing); a write that failed after its upload (stage 2's copy of the authkey) left the upload, a
second copy of the key, beside the file. Stage 1 has no test here: on container nodes it only
validates, read-only (tests/lab/test_stage_bonding.py); its safe apply failing and reverting is
proven on the VM node (tests/lab/test_vm_bonding.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import evidence
from hakit import cib as hcib
from hakit import notebook
from hakit.lab import Lab
from hakit.params import load_params
from hakit.profiles import get_profile
from hakit.paths import AUTHKEY, COROSYNC_CONF
from hakit.stages import driver
from hakit.stages.authkey import AuthkeyStage
from hakit.failover.runner import settle
from hakit.stages.constraints import ConstraintsStage
from hakit.stages.corosync import PREV, STAGED, CorosyncStage, desired_conf
from hakit.stages.properties import PropertiesStage
from hakit.stages.resources import INDEX, ResourcesStage, index_page

pytestmark = pytest.mark.lab

# What a real (failed) run may change besides what it reports: its lock comes and goes in /run/hakit.
RUN_EFFECTS = evidence.LOGIN_EFFECTS | {"/run/hakit": "the cluster lock is taken and released there"}


@contextmanager
def refusing(lab: Lab, node: str, tool: str, arg: str) -> Iterator[None]:
    """On ``node``, ``tool <... arg ...>`` fails (exit 1, a message on stderr); any other call runs the real tool."""
    real = evidence.nsrun(lab, node, ["sh", "-c", f"command -v {tool}"]).stdout.strip()
    assert real and not real.startswith("/usr/local/"), real
    script = (f'#!/bin/sh\n# hakit test: {tool} {arg} refused on purpose\nfor a in "$@"; do\n'
              f'  [ "$a" = "{arg}" ] && {{ echo "injected failure: {tool} {arg} refused" >&2; exit 1; }}\ndone\n'
              f'exec {real} "$@"\n')
    path = f"/usr/local/sbin/{tool}"
    evidence.nsrun(lab, node, f"printf '%s' {shlex.quote(script)} > {path} && chmod 0755 {path}")
    try:
        yield
    finally:
        evidence.nsrun(lab, node, ["rm", "-f", path])


@contextmanager
def not_starting(lab: Lab, node: str, unit: str) -> Iterator[None]:
    """On ``node``, ``systemctl start <unit>`` fails: a drop-in adds an ExecStartPre that exits 1 (the
    unit's own commands and files untouched); removed, and systemd told, on exit."""
    folder = f"/etc/systemd/system/{unit}.service.d"
    text = (f"# hakit test: {unit} refuses to start on purpose\n[Service]\n"
            f"ExecStartPre=/bin/sh -c 'echo \"injected failure: {unit} start refused\"; exit 1'\n")
    evidence.nsrun(lab, node, f"mkdir -p {folder} && printf '%s' {shlex.quote(text)} > {folder}/hakit-test-refuse.conf "
                              "&& systemctl daemon-reload")
    try:
        yield
    finally:
        evidence.nsrun(lab, node, f"rm -f {folder}/hakit-test-refuse.conf; rmdir {folder}; systemctl daemon-reload")


def active(lab: Lab, node: str, *units: str) -> list[str]:
    return evidence.nsrun(lab, node, ["systemctl", "is-active", *units], check=False).stdout.split()


def journal_says(lab: Lab, node: str, unit: str, text: str, timeout_s: float = 20) -> bool:
    """Whether the unit's journal on the node shows ``text`` (a unit's output reaches journald through a
    stream, so it may land a moment after the command that failed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = evidence.nsrun(lab, node, ["journalctl", "-u", unit, "-n", "50", "-o", "cat"]).stdout
        if text in out or time.monotonic() > deadline:
            return text in out
        time.sleep(0.2)


def cib_on_disk(lab: Lab, node: str, timeout_s: float = 20) -> None:
    """Wait until the node's pacemaker has written the live configuration version to its CIB file (it
    writes a moment after a change), so a snapshot taken next does not catch that write."""
    deadline = time.monotonic() + timeout_s
    while True:
        live = hcib.CibSnapshot.parse(evidence.cib(lab, node)).version.config
        disk = hcib.CibVersion.of(ET.parse(evidence.root(lab, node) + "/var/lib/pacemaker/cib/cib.xml").getroot()).config
        if disk == live:
            return
        assert time.monotonic() < deadline, f"{node}: CIB {live} live, {disk} on disk after {timeout_s} s"
        time.sleep(0.2)


def stage_run(stage: driver.Stage, hosts, record_dir: Path) -> driver.StageRun:
    run = driver.StageRun(stage, hosts, dry_run=False, record_dir=str(record_dir))
    run.gather()
    run.make_plan()
    return run


def runtime_token(lab: Lab, node: str) -> str:
    out = evidence.nsrun(lab, node, ["corosync-cmapctl", "-g", "runtime.config.totem.token"]).stdout
    return out.rsplit("=", 1)[-1].strip()


def snapshot(lab: Lab) -> dict[str, evidence.NodeState]:
    return {n.name: evidence.node_state(lab, n.name) for n in lab.params.nodes}


def changed_paths(before: dict[str, evidence.NodeState], after: dict[str, evidence.NodeState]) -> dict[str, list[str]]:
    """Per node, the files whose content, owner, mode or identity changed (directories' own times aside)."""
    out = {}
    for n in before:
        lines = evidence.file_changes(before[n].files, after[n].files, allowed=RUN_EFFECTS)
        paths = [ln.split(" ", 2)[1] for ln in lines]
        out[n] = [p for p in paths if not (p in after[n].files and after[n].files[p].mode & 0o040000
                                           and p in before[n].files)]
    return out


def failed_apply(lab: Lab, hosts, stage: driver.Stage, obstacle, tmp: Path, ops: list[str] | None = None,
                 error: type[Exception] = driver.StageFailed):
    """Plan ``stage`` and apply it with ``obstacle`` (a context manager) in place, which must make it fail:
    (the error, the nodes before the apply, after it). ``ops``: the plan's operations as "<node> <type>"."""
    with obstacle:
        run = stage_run(stage, hosts, tmp / "failed")
        if ops is not None:
            assert [f"{o.node} {type(o).__name__}" for o in run.plan.ops] == ops, run.plan.program()
        before = snapshot(lab)
        with pytest.raises(error) as failed:
            run.apply()
        after = snapshot(lab)
    return failed.value, before, after


def failed_stage3(lab: Lab, hosts, obstacle, tmp: Path):
    """Stage 3 to the seed profile with ``obstacle`` in place: (the error, the nodes before, after)."""
    return failed_apply(lab, hosts, CorosyncStage(lab.params, profile="seed"), obstacle, tmp)


def named_in_error(e: driver.StageFailed, changed: dict[str, list[str]]) -> None:
    """Every changed file of each node is named in the error, for that node."""
    for n, paths in changed.items():
        said = [c for c in e.changed if c.startswith(f"{n}: ")]
        assert all(any(p in c for c in said) for p in paths), (n, paths, said)


@pytest.fixture
def built(cluster2):
    lab, _ = cluster2
    hosts = notebook.connect_nodes(lab.params)
    try:
        yield lab, hosts
    finally:
        for h in hosts.values():
            h.close()


def test_a_config_corosync_rejects_on_the_second_node_changes_no_node(built, tmp_path: Path) -> None:
    """`corosync -t` refuses the new file on vm-node2 after vm-node1 accepted it: both staged files go,
    nothing else moved; then the same change goes through."""
    lab, hosts = built
    e, before, after = failed_stage3(lab, hosts, refusing(lab, "vm-node2", "corosync", "-t"), tmp_path)
    assert (e.node, e.command, e.exit_code) == ("vm-node2", f"corosync -t -c {STAGED}", 1)
    assert "injected failure" in e.stderr
    assert [c.split(":", 1)[0] for c in e.changed] == ["vm-node1", "vm-node2"]  # the staged copies...
    assert all(f"write {STAGED} " in c for c in e.changed)
    assert f"vm-node1: rm -f {STAGED}: done" in str(e) and f"vm-node2: rm -f {STAGED}: done" in str(e)  # ...removed
    for n in before:  # by the evidence: every file, unit and the CIB as before; /etc/corosync saw an entry come and go
        left = evidence.file_changes(before[n].files, after[n].files, allowed=RUN_EFFECTS)
        assert left == ["changed /etc/corosync (mtime_ns, ctime_ns)"], (n, left)
        assert (before[n].units, before[n].cib, before[n].packages) == (after[n].units, after[n].cib, after[n].packages)
        assert runtime_token(lab, n) == "1000"
    # The next run, the tool no longer refusing, makes the change; then the cluster goes back to its profile.
    for profile, token in (("seed", "3000"), ("fast", "1000")):
        driver.run_stage(CorosyncStage(lab.params, profile=profile), hosts, dry_run=False, record_dir=str(tmp_path / profile))
        assert {runtime_token(lab, n.name) for n in lab.params.nodes} == {token}


def test_a_reload_refused_after_the_install_is_reported_exactly_and_the_next_run_repairs_it(built, tmp_path: Path) -> None:
    """`corosync-cfgtool -R` fails after the new file is on both nodes: the error names exactly the
    files the evidence shows changed, corosync still runs the old timing, and the next run reloads."""
    lab, hosts = built
    e, before, after = failed_stage3(lab, hosts, refusing(lab, "vm-node1", "corosync-cfgtool", "-R"), tmp_path)
    assert (e.node, e.command, e.exit_code) == ("vm-node1", "corosync-cfgtool -R", 1)
    changed = changed_paths(before, after)
    assert changed == {n: [COROSYNC_CONF, PREV] for n in before}, changed  # the live file, and the old one kept
    named_in_error(e, changed)
    for n in changed:
        assert after[n].files[PREV].sha256 == before[n].files[COROSYNC_CONF].sha256  # the old file, kept
        assert runtime_token(lab, n) == "1000"  # corosync still runs the old timing
        assert (before[n].units, before[n].cib) == (after[n].units, after[n].cib)
    # The next run sees the file in place but the runtime behind it, and reloads (nothing else).
    nxt = stage_run(CorosyncStage(lab.params, profile="seed"), hosts, tmp_path / "next")
    assert [ln for ln in nxt.plan.program() if not ln.startswith("---")][0] == "vm-node1  corosync-cfgtool -R"
    assert not any("write" in ln or "systemctl" in ln for ln in nxt.plan.program()), nxt.plan.program()
    nxt.apply()
    assert nxt.verify().ok
    assert {runtime_token(lab, n.name) for n in lab.params.nodes} == {"3000"}
    driver.run_stage(CorosyncStage(lab.params), hosts, dry_run=False, record_dir=str(tmp_path / "back"))
    assert {runtime_token(lab, n.name) for n in lab.params.nodes} == {"1000"}


def test_corosync_that_will_not_start_on_the_second_node_is_reported_exactly_and_the_next_run_starts_it(
        built, tmp_path: Path) -> None:
    """vm-node2 is down (pacemaker and corosync stopped, as for maintenance) when the timing changes,
    and then its corosync will not start (a systemd drop-in), after vm-node1 already reloaded the new
    file. The error names exactly the files the evidence shows changed and vm-node1's reload, and says
    what is installed; vm-node1 serves on, restarted by nobody, on the new timing; vm-node2 stays down
    with the new file; the next run starts vm-node2 and nothing else."""
    lab, hosts = built
    evidence.nsrun(lab, "vm-node2", ["systemctl", "stop", "pacemaker", "corosync"])
    try:
        e, before, after = failed_stage3(lab, hosts, not_starting(lab, "vm-node2", "corosync"), tmp_path)
        assert (e.node, e.command, e.exit_code) == ("vm-node2", "systemctl start corosync", 1)
        assert (f"corosync did not start on vm-node2 with the new {COROSYNC_CONF} installed (the previous one kept "
                f"as {PREV}): `journalctl -u corosync` on vm-node2 says why") in str(e)
        # vm-node1's pacemaker goes on rewriting its copy of the CIB on disk (same epoch) for a while after
        # vm-node2 left; stage 3 never writes there, and the CIB itself is compared live below.
        changed = {n: [p for p in ps if not p.startswith("/var/lib/pacemaker/cib/")]
                   for n, ps in changed_paths(before, after).items()}
        assert changed == {n: [COROSYNC_CONF, PREV] for n in before}, changed
        seed = hashlib.sha256(desired_conf(lab.params, get_profile("seed")).encode()).hexdigest()
        named_in_error(e, changed)
        for n in changed:
            assert after[n].files[COROSYNC_CONF].sha256 == seed
            assert after[n].files[PREV].sha256 == before[n].files[COROSYNC_CONF].sha256  # the old file, kept
        # What ran where, by the evidence: vm-node1 reloaded (no restart: the same units, the same
        # CIB configuration, the new timing); vm-node2 failed to start and nothing else started there.
        assert [c for c in e.changed if not c.startswith(("vm-node1: write", "vm-node2: write"))
                and COROSYNC_CONF not in c] == ["vm-node1: corosync-cfgtool -R"], e.changed
        assert before["vm-node1"].units == after["vm-node1"].units
        assert configuration(before["vm-node1"].cib) == configuration(after["vm-node1"].cib)
        assert runtime_token(lab, "vm-node1") == "3000"
        assert active(lab, "vm-node2", "corosync", "pacemaker") == ["failed", "inactive"]
        assert journal_says(lab, "vm-node2", "corosync", "injected failure: corosync start refused")  # our failure
        for rsc in ("vip", "httpd"):  # the service where it was
            where = evidence.nsrun(lab, "vm-node1", ["crm_resource", "--locate", "--resource", rsc]).stdout
            assert where.strip() == f"resource {rsc} is running on: vm-node1", where
        # The next run, the obstacle gone: vm-node2 starts (corosync, then pacemaker), nothing else.
        nxt = stage_run(CorosyncStage(lab.params, profile="seed"), hosts, tmp_path / "next")
        assert nxt.plan.program() == ["vm-node2  systemctl start corosync",
                                      "--- barrier: corosync started on every node that starts ---",
                                      "vm-node2  systemctl start pacemaker"], nxt.plan.program()
        nxt.apply()
        assert nxt.verify().ok
        assert {runtime_token(lab, n.name) for n in lab.params.nodes} == {"3000"}
    finally:  # the built cluster as it was: vm-node2 up, the build's timing, the service on vm-node1
        evidence.nsrun(lab, "vm-node2", ["systemctl", "start", "corosync", "pacemaker"], check=False)
        CorosyncStage(lab.params).verify(hosts)  # vm-node2 a member again first, or the reload would miss it
        driver.run_stage(CorosyncStage(lab.params), hosts, dry_run=False, record_dir=str(tmp_path / "back"))
        settle(hosts, lab.params, timeout_s=60)
    assert {runtime_token(lab, n.name) for n in lab.params.nodes} == {"1000"}


def test_an_authkey_copy_refused_on_the_second_node_leaves_no_copy_and_the_next_run_installs_it(built, tmp_path) -> None:
    """vm-node2 has lost its key file (corosync runs on with the key it read at start); the copy from
    vm-node1 fails at its last step, the rename. Nothing may stay behind: before the fix the upload,
    a second copy of the key, stayed in /etc/corosync while the error said "nothing was changed"."""
    lab, hosts = built
    key = Path(evidence.root(lab, "vm-node1") + AUTHKEY).read_bytes()
    evidence.nsrun(lab, "vm-node2", ["mv", AUTHKEY, "/root/authkey.saved"])
    try:
        e, before, after = failed_apply(lab, hosts, AuthkeyStage(lab.params), refusing(lab, "vm-node2", "mv", "-f"),
                                        tmp_path, ops=["vm-node2 CopySecretFile"])
        assert e.node == "vm-node2" and e.command.startswith("mv -f /etc/corosync/.authkey.hakit-")
        assert e.changed == [] and "nothing was changed" in str(e)
        assert evidence.file_changes(before["vm-node1"].files, after["vm-node1"].files, allowed=RUN_EFFECTS) == []
        left = evidence.file_changes(before["vm-node2"].files, after["vm-node2"].files, allowed=RUN_EFFECTS)
        assert left == ["changed /etc/corosync (mtime_ns, ctime_ns)"], left  # an entry came and went, no more
        # The next run installs the key: vm-node1's, byte for byte, root:root 0400.
        driver.run_stage(AuthkeyStage(lab.params), hosts, dry_run=False, record_dir=str(tmp_path / "next"))
        got = Path(evidence.root(lab, "vm-node2") + AUTHKEY)
        assert got.read_bytes() == key and (got.stat().st_mode & 0o777, got.stat().st_uid) == (0o400, 0)
    finally:  # the built cluster as it was, whatever failed above
        evidence.nsrun(lab, "vm-node2", f"[ -e {AUTHKEY} ] || mv /root/authkey.saved {AUTHKEY}; rm -f /root/authkey.saved")


def test_a_key_made_on_the_first_node_whose_copy_fails_stays_there_alone_and_the_next_run_copies_it(
        built, tmp_path: Path) -> None:
    """Stage 2 from scratch: no key on either node (corosync runs on with the key it read at start). The
    key is made on vm-node1, its copy to vm-node2 fails at the rename. The error says exactly that: the
    key made, nothing else; the evidence shows one new file, vm-node1's key, and no temp copy on either
    node or in the record. The next run copies that key (it does not make another one)."""
    lab, hosts = built
    saved = "/root/authkey.saved"
    for n in ("vm-node1", "vm-node2"):
        evidence.nsrun(lab, n, ["mv", AUTHKEY, saved])
    try:
        e, before, after = failed_apply(lab, hosts, AuthkeyStage(lab.params), refusing(lab, "vm-node2", "mv", "-f"),
                                        tmp_path, ops=["vm-node1 GenerateKey", "cluster Barrier", "vm-node2 CopySecretFile"])
        assert e.node == "vm-node2" and e.command.startswith("mv -f /etc/corosync/.authkey.hakit-")
        assert [c.split(" (", 1)[0] for c in e.changed] == [f"vm-node1: generate {AUTHKEY} with corosync-keygen"]
        assert evidence.file_changes(before["vm-node1"].files, after["vm-node1"].files, allowed=RUN_EFFECTS) == [
            "changed /etc/corosync (mtime_ns, ctime_ns)", f"created {AUTHKEY}"]
        assert evidence.file_changes(before["vm-node2"].files, after["vm-node2"].files, allowed=RUN_EFFECTS) == [
            "changed /etc/corosync (mtime_ns, ctime_ns)"]  # an upload came and went, no more
        made = after["vm-node1"].files[AUTHKEY]
        assert (made.mode & 0o7777, made.uid, made.gid, made.size) == (0o400, 0, 0, 256)
        key = Path(evidence.root(lab, "vm-node1") + AUTHKEY).read_bytes()
        # The next run: vm-node1's key (the one the failed run made) to vm-node2; vm-node1 untouched.
        nxt = stage_run(AuthkeyStage(lab.params), hosts, tmp_path / "next")
        assert [f"{o.node} {type(o).__name__}" for o in nxt.plan.ops] == ["vm-node2 CopySecretFile"]
        nxt.apply()
        assert nxt.verify().ok
        st = os.lstat(evidence.root(lab, "vm-node1") + AUTHKEY)
        assert (st.st_ino, st.st_ctime_ns) == (made.ino, made.ctime_ns)
        got = Path(evidence.root(lab, "vm-node2") + AUTHKEY)
        assert got.read_bytes() == key and (got.stat().st_mode & 0o777, got.stat().st_uid) == (0o400, 0)
        search = evidence.SecretSearch({"authkey": key})
        assert search.in_bytes(b"record " + key) and not search.in_tree(tmp_path)  # no copy in the records either
    finally:  # the key corosync runs with back on both nodes, whatever failed above
        for n in ("vm-node1", "vm-node2"):
            evidence.nsrun(lab, n, f"[ ! -e {saved} ] || mv -f {saved} {AUTHKEY}")


def configuration(cib_xml: str) -> str:
    """The CIB's configuration section, canonical (what a patch changes; status and versions aside)."""
    conf = ET.fromstring(cib_xml).find("configuration")
    assert conf is not None
    return ET.canonicalize(ET.tostring(conf, encoding="unicode"), strip_text=True)


def crm_diff_config(lab: Lab, node: str, a: str, b: str) -> int:
    """crm_diff, run by the test on the node, between the configuration sections of two CIBs (0: none)."""
    wrap = "<cib>{}</cib>"
    d = evidence.nsrun(lab, node, "mktemp -d /tmp/hakit-test-diff.XXXXXX").stdout.strip()
    try:
        base = Path(evidence.root(lab, node) + d)
        (base / "a.xml").write_text(wrap.format(configuration(a)))
        (base / "b.xml").write_text(wrap.format(configuration(b)))
        return evidence.nsrun(lab, node, ["crm_diff", "--original", f"{d}/a.xml", "--new", f"{d}/b.xml"],
                              check=False).returncode
    finally:
        evidence.nsrun(lab, node, ["rm", "-rf", "--", d])


def edited(params_file: Path, tmp: Path, change) -> object:
    data = yaml.safe_load(params_file.read_text())
    change(data)
    out = tmp / "edited.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_params(out)


def test_a_refused_cib_patch_changes_nothing_and_a_rollback_is_exact(built, lab2_params: Path, tmp_path: Path) -> None:
    """Stage 5 with a new failure policy: `cibadmin --patch` refused leaves the CIB's configuration and
    epoch as they were; the next run patches; `cib.rollback` to the saved CIB leaves crm_diff empty."""
    lab, hosts = built
    params = edited(lab2_params, tmp_path, lambda d: d["pacemaker"]["resources"].update(migration_threshold=2))
    live = evidence.cib(lab, "vm-node1")
    with refusing(lab, "vm-node1", "cibadmin", "--patch"), refusing(lab, "vm-node2", "cibadmin", "--patch"):
        run = stage_run(ResourcesStage(params), hosts, tmp_path / "failed")
        assert [type(o).__name__ for o in run.plan.ops] == ["CibPatch"], run.plan.program()
        with pytest.raises(driver.StageFailed) as failed:
            run.apply()
    assert failed.value.changed == [] and "nothing was changed" in str(failed.value)
    now = evidence.cib(lab, "vm-node1")
    assert configuration(now) == configuration(live) and hcib.CibSnapshot.parse(now).version.config == \
        hcib.CibSnapshot.parse(live).version.config
    saved = (tmp_path / "failed" / "cib-before.xml").read_text()  # saved before the attempt
    assert crm_diff_config(lab, "vm-node1", saved, now) == 0
    # The next run patches; the rollback to what it saved puts the configuration back exactly.
    ok = driver.run_stage(ResourcesStage(params), hosts, dry_run=False, record_dir=str(tmp_path / "next"))
    assert ok.result is not None and any(o.outcome == "changed" for o in ok.result.outcomes)
    patched = evidence.cib(lab, "vm-node1")
    assert 'name="migration-threshold" value="2"' in patched
    assert crm_diff_config(lab, "vm-node1", live, patched) == 1  # the check sees a difference when there is one
    proof = hcib.rollback(hosts["vm-node1"], tmp_path / "next" / "cib-before.xml")
    back = evidence.cib(lab, "vm-node1")
    assert configuration(back) == configuration(live), proof
    for n in ("vm-node1", "vm-node2"):  # every node's copy
        assert crm_diff_config(lab, n, live, evidence.cib(lab, n)) == 0, n


def test_a_wanted_cib_crm_verify_rejects_stops_the_stage_before_any_operation(built, lab2_params: Path,
                                                                               tmp_path: Path) -> None:
    """Stage 5 with a new failure timeout, on a cluster where vm-node2's index page drifted (so the plan
    writes a file on a node before it patches the CIB): `crm_verify` rejecting the wanted CIB on the node
    the stage reads the CIB through stops the stage before its first operation. The error names the
    check, that node and its exit code; the page is still drifted, the CIB's configuration and epoch as
    they were. The next run writes the page and patches; the rollback puts the configuration back."""
    lab, hosts = built
    params = edited(lab2_params, tmp_path, lambda d: d["pacemaker"]["resources"].update(failure_timeout=30))
    page = Path(evidence.root(lab, "vm-node2") + INDEX)
    page.write_text("<html>not the page stage 5 renders</html>\n")
    try:
        for n in ("vm-node1", "vm-node2"):
            cib_on_disk(lab, n)  # an earlier change's write to disk is not this stage's
        refused = refusing(lab, "vm-node1", "crm_verify", "--xml-file")  # vm-node1: the node the CIB is read through
        e, before, after = failed_apply(lab, hosts, ResourcesStage(params), refused, tmp_path,
                                        ops=["vm-node2 WriteFile", "cluster Barrier", "cluster CibPatch"],
                                        error=hcib.CibError)
        assert str(e).startswith("crm_verify rejected the wanted CIB; nothing was applied (checked on vm-node1, "
                                 "exit 1; fix the params and plan again)"), str(e)
        assert "injected failure: crm_verify --xml-file refused" in str(e)
        assert (e.node, e.exit_code, e.changed) == ("vm-node1", 1, ())
        assert e.command and e.command.startswith("crm_verify --verbose --xml-file /run/hakit-cib.")
        saved = json.loads((tmp_path / "failed" / "error.json").read_text())  # the record says the same
        assert (saved["node"], saved["exit_code"], saved["changed"]) == ("vm-node1", 1, [])
        for n in before:  # by the evidence: every file (the drifted page too), unit and the CIB as before
            assert evidence.file_changes(before[n].files, after[n].files, allowed=RUN_EFFECTS) == [], n
            assert (before[n].units, before[n].cib) == (after[n].units, after[n].cib), n
        assert crm_diff_config(lab, "vm-node1", before["vm-node1"].cib, after["vm-node1"].cib) == 0
        assert not (tmp_path / "failed" / "cib-before.xml").exists()  # the patch never began
        # The next run, crm_verify no longer refusing: the page, then the patch.
        ok = driver.run_stage(ResourcesStage(params), hosts, dry_run=False, record_dir=str(tmp_path / "next"))
        assert ok.result is not None and [o.outcome for o in ok.result.outcomes] == ["unchanged", "changed", "changed"]
        assert page.read_text() == index_page(params, "vm-node2")
        assert 'name="failure-timeout" value="30s"' in evidence.cib(lab, "vm-node1")
    finally:  # the built cluster as it was: the page as stage 5 renders it, the build's configuration
        page.write_text(index_page(lab.params, "vm-node2"))
        if (tmp_path / "next" / "cib-before.xml").exists():
            hcib.rollback(hosts["vm-node1"], tmp_path / "next" / "cib-before.xml")
    assert configuration(evidence.cib(lab, "vm-node1")) == configuration(before["vm-node1"].cib)


@pytest.mark.parametrize("stage, change, expect", [
    (PropertiesStage, lambda d: d["pacemaker"]["fencing"].update(delay_s=3), 'name="pcmk_delay_base" value="3s"'),
    (ConstraintsStage, lambda d: d["pacemaker"].update(preferred_node="vm-node2"), 'id="preferred-node" rsc="vip" score="100" node="vm-node2"'),
], ids=["04-fence-devices", "06-constraints"])
def test_rollback_of_a_cib_stage_is_exact(built, lab2_params: Path, tmp_path: Path, stage, change, expect) -> None:
    """A real change by stage 4 (a fence device's delay) or 6 (the preferred node), then `cib.rollback`
    to the CIB the stage saved: the configuration is the one before, byte for byte and by crm_diff."""
    lab, hosts = built
    live = evidence.cib(lab, "vm-node1")
    params = edited(lab2_params, tmp_path, change)
    try:
        run = driver.run_stage(stage(params), hosts, dry_run=False, record_dir=str(tmp_path / "run"))
        assert run.result is not None and any(o.outcome == "changed" for o in run.result.outcomes)
        assert expect in evidence.cib(lab, "vm-node1") and expect not in live
    finally:
        hcib.rollback(hosts["vm-node1"], tmp_path / "run" / "cib-before.xml")
    for n in ("vm-node1", "vm-node2"):
        now = evidence.cib(lab, n)
        assert configuration(now) == configuration(live), n
        assert crm_diff_config(lab, n, live, now) == 0, n
    settle(hosts, lab.params, timeout_s=60)  # the service back on the preferred node, for whatever comes next
