"""Stage 3 on FakeRunners: the plan for fresh / converged / drifted nodes, and that apply
sends exactly the planned operations, in order, and a dry run sends nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hakit.params import Params
from hakit.runner import FakeRunner
from hakit.stages import corosync, driver
from hakit.stages.base import Plan

CONF = corosync.CONF


# pacemaker's CIB directory (the `CIB_FILES` fact) on a lab node before pacemaker's first start, and after.
NEVER_RAN = "dir\n"
HAS_RUN = (Path(__file__).parent / "fixtures/captured/trixie/cib-dir-after-stage3.txt").read_text().partition("# ---\n")[2]
SEED_EMPTY = ('test -z "$(ls -A /var/lib/pacemaker/cib)" && (umask 077 && set -C && cibadmin --empty > '
              '/var/lib/pacemaker/cib/cib.xml) && chown hacluster:haclient /var/lib/pacemaker/cib/cib.xml')
SEED_DEADTIME = "env CIB_file=/var/lib/pacemaker/cib/cib.xml crm_attribute --type crm_config --name dc-deadtime --update 5s"


def node(name: str, conf: bytes | None, active: bool, enabled: bool = True, key: bool = True,
         cib: str | None = None) -> FakeRunner:
    """A fake node: the given corosync.conf, both units in one state, authkey present or not, and
    pacemaker's CIB directory (by default: never ran where inactive, has run where active)."""
    f = FakeRunner(name)
    if conf is not None:
        f.files[CONF] = conf
    state = "active" if active else "inactive"
    en = "enabled" if enabled else "disabled"
    f.answer(r"systemctl is-active", f"corosync {state} {en}\npacemaker {state} {en}\n")
    f.answer(r"test -s /etc/corosync/authkey", "key\n" if key else "nokey\n")
    f.answer(r"^if test -d /var/lib/pacemaker/cib;", cib if cib is not None else (HAS_RUN if active else NEVER_RAN))
    return f


def want(params: Params, profile: str | None = None) -> bytes:
    return corosync.desired_conf(params, corosync.get_profile(profile) if profile else None).encode()


def gather_plan(stage: corosync.CorosyncStage, fakes: dict[str, FakeRunner]) -> Plan:
    return stage.plan(stage.gather(fakes))


def test_fresh_nodes_stage_check_install_then_start_corosync_before_pacemaker(lab: Params) -> None:
    fakes = {n.name: node(n.name, None, active=False, enabled=False) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert p.program() == [
        f"vm-node1  write {CONF}.hakit-new sha256 {hashlib.sha256(want(lab)).hexdigest()[:12]}… root:root 0644",
        f"vm-node1  corosync -t -c {CONF}.hakit-new",
        f"vm-node2  write {CONF}.hakit-new sha256 {hashlib.sha256(want(lab)).hexdigest()[:12]}… root:root 0644",
        f"vm-node2  corosync -t -c {CONF}.hakit-new",
        "--- barrier: `corosync -t` accepted the new file on every node that gets it ---",
        f"vm-node1  {{ [ ! -f {CONF} ] || cp -p {CONF} {CONF}.hakit-prev; }} && mv -f {CONF}.hakit-new {CONF}",
        f"vm-node2  {{ [ ! -f {CONF} ] || cp -p {CONF} {CONF}.hakit-prev; }} && mv -f {CONF}.hakit-new {CONF}",
        f"vm-node1  {SEED_EMPTY}",
        f"vm-node1  {SEED_DEADTIME}",
        f"vm-node2  {SEED_EMPTY}",
        f"vm-node2  {SEED_DEADTIME}",
        "--- barrier: the CIB is seeded on every node where pacemaker never ran ---",
        "vm-node1  systemctl start corosync",
        "vm-node2  systemctl start corosync",
        "--- barrier: corosync started on every node that starts ---",
        "vm-node1  systemctl start pacemaker",
        "vm-node2  systemctl start pacemaker",
        "vm-node1  systemctl enable corosync pacemaker",
        "vm-node2  systemctl enable corosync pacemaker",
    ]
    assert not p.no_change and not p.blocked
    assert any(n.startswith("cold start: pacemaker never ran on vm-node1, vm-node2; each gets a CIB holding only "
                            "dc-deadtime=5s") for n in p.notes), p.notes


def test_the_seed_profile_keeps_pacemakers_default_and_seeds_nothing(lab: Params) -> None:
    fakes = {n.name: node(n.name, None, active=False, enabled=False) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab, profile="seed"), fakes)
    assert not any("cibadmin" in line or "crm_attribute" in line for line in p.program())
    assert any("keeps pacemaker's default dc-deadtime (20 s)" in n for n in p.notes), p.notes


def test_only_a_node_where_pacemaker_never_ran_is_seeded(lab: Params) -> None:
    """vm-node1 ran pacemaker before (its CIB directory holds a CIB): its CIB is never touched."""
    fakes = {"vm-node1": node("vm-node1", None, active=False, enabled=False, cib=HAS_RUN),
             "vm-node2": node("vm-node2", None, active=False, enabled=False)}
    facts = corosync.CorosyncStage(lab).gather(fakes)
    assert facts.nodes["vm-node1"].cib_dir is not None and "cib.xml" in facts.nodes["vm-node1"].cib_dir
    assert facts.nodes["vm-node2"].pacemaker_never_ran and not facts.nodes["vm-node1"].pacemaker_never_ran
    prog = corosync.CorosyncStage(lab).plan(facts).program()
    assert [line for line in prog if "cib" in line.lower() and "barrier" not in line] == [
        f"vm-node2  {SEED_EMPTY}", f"vm-node2  {SEED_DEADTIME}"]
    assert list(facts.to_frame()["pacemaker CIB"]) == ["cib.xml", "none yet (pacemaker never ran)"]


@pytest.mark.parametrize("cib_dir", ["nodir\n", "dir\ncib-3.raw\ncib.last\n"])
def test_no_directory_or_a_backup_without_cib_xml_is_not_a_fresh_node(lab: Params, cib_dir: str) -> None:
    fakes = {n.name: node(n.name, None, active=False, enabled=False, cib=cib_dir) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert not any("cibadmin" in line for line in p.program())


def test_a_node_joining_a_running_cluster_is_not_seeded(lab: Params) -> None:
    """Pacemaker runs on vm-node1 (vm-node2 has the file, was re-created): the DC takes vm-node2 in and
    hands it the cluster's CIB."""
    fakes = {"vm-node1": node("vm-node1", want(lab), active=True),
             "vm-node2": node("vm-node2", want(lab), active=False, enabled=False)}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert not any("cibadmin" in line for line in p.program()), p.program()
    assert "vm-node2  systemctl start pacemaker" in p.program()
    assert any("it runs on another node" in n for n in p.notes), p.notes


def test_a_dry_run_on_fresh_nodes_shows_the_seed_and_sends_only_reads(lab: Params) -> None:
    fakes = {n.name: node(n.name, None, active=False, enabled=False) for n in lab.nodes}
    run = driver.StageRun(corosync.CorosyncStage(lab), fakes, dry_run=True)
    run.gather()
    plan = run.make_plan()
    assert f"vm-node2  {SEED_DEADTIME}" in plan.program()
    run.apply()
    for f in fakes.values():
        assert f.writes == []
        assert all(c.startswith(("for u in", "test -s", "if test -d /var/lib/pacemaker/cib;")) for c in f.commands), \
            f.commands


def test_a_seed_refused_on_one_node_starts_nothing_anywhere(lab: Params) -> None:
    """The CIB directory filled between plan and apply (the seed's own check refuses): no node starts."""
    fakes = {n.name: node(n.name, None, active=False, enabled=False) for n in lab.nodes}
    fakes["vm-node2"].fail_on.append(r"^test -z .*cibadmin --empty")
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, fakes, dry_run=False, parallel=False)
    assert e.value.node == "vm-node2" and "plan again" in str(e.value)
    assert f"vm-node1: {SEED_DEADTIME}" in e.value.changed
    assert not any(c.startswith("systemctl start") for f in fakes.values() for c in f.commands)


def test_converged_nodes_plan_nothing_and_a_real_apply_sends_nothing(lab: Params) -> None:
    fakes = {n.name: node(n.name, want(lab), active=True) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert p.ops == [] and p.empty and set(p.no_change) == {"vm-node1", "vm-node2"}
    sent_before = {n: len(f.sent) for n, f in fakes.items()}
    res = driver.apply(p, fakes, dry_run=False)
    assert {n: len(f.sent) for n, f in fakes.items()} == sent_before
    assert [o.outcome for o in res.outcomes] == ["unchanged", "unchanged"] and res.executed == []


def test_a_timing_change_on_a_running_cluster_is_a_runtime_reload_without_restart(lab: Params) -> None:
    fakes = {n.name: node(n.name, want(lab, "seed"), active=True) for n in lab.nodes}
    for f in fakes.values():
        f.answer(r"corosync-cmapctl -g runtime.config.totem.token", "runtime.config.totem.token (u32) = 1000\n")
        f.answer(r"corosync-cmapctl -g runtime.config.totem.consensus", "runtime.config.totem.consensus (u32) = 1200\n")
    p = gather_plan(corosync.CorosyncStage(lab, profile="fast"), fakes)
    assert any(n.startswith("class: runtime change, no outage (totem.consensus 3600 -> 1200; totem.token 3000 -> 1000)")
               for n in p.notes), p.notes
    prog = p.program()
    assert not any("systemctl" in line for line in prog), prog
    assert prog[-7:] == [
        "--- barrier: the new file is installed on every node ---",
        "vm-node1  corosync-cfgtool -R",
        "--- barrier: every node reloaded ---",
        "vm-node1  check runtime.config.totem.token = 1000", "vm-node1  check runtime.config.totem.consensus = 1200",
        "vm-node2  check runtime.config.totem.token = 1000", "vm-node2  check runtime.config.totem.consensus = 1200"]
    res = driver.apply(p, fakes, dry_run=False)
    assert res.executed[-4:] == [line for line in prog if not line.startswith("---")][-4:]
    assert [o.outcome for o in res.outcomes] == ["changed", "changed"]
    assert fakes["vm-node2"].commands.count("corosync-cfgtool -R") == 0  # one reload reaches every node


def test_a_reload_that_did_not_take_effect_fails_naming_the_installed_files(lab: Params) -> None:
    fakes = {n.name: node(n.name, want(lab, "seed"), active=True) for n in lab.nodes}
    for f in fakes.values():
        f.answer(r"corosync-cmapctl", "runtime.config.totem.token (u32) = 3000\n")
    p = gather_plan(corosync.CorosyncStage(lab, profile="fast"), fakes)
    with pytest.raises(driver.StageFailed, match="runs with totem.token = 3000, not 1000") as e:
        driver.apply(p, fakes, dry_run=False, parallel=False)
    assert "vm-node1: corosync-cfgtool -R" in e.value.changed


RUNTIME_FAST = ("runtime.config.totem.consensus (u32) = 1200\nruntime.config.totem.join (u32) = 60\n"
                "runtime.config.totem.token (u32) = 1000\nruntime.config.totem.token_warning (u32) = 75\n")


def test_an_installed_file_that_corosync_does_not_run_yet_gets_one_reload(lab: Params) -> None:
    """Seen on the lab: a reload that failed after the install left the seed file on both nodes and
    corosync on fast timing; the next run must not call that converged."""
    fakes = {n.name: node(n.name, want(lab, "seed"), active=True) for n in lab.nodes}
    for f in fakes.values():
        f.answer(r"^corosync-cmapctl runtime\.config\.totem\.$", RUNTIME_FAST)
    facts = corosync.CorosyncStage(lab, profile="seed").gather(fakes)
    assert facts.nodes["vm-node2"].runtime == {"consensus": "1200", "join": "60", "token": "1000"}
    p = corosync.CorosyncStage(lab, profile="seed").plan(facts)
    assert p.program() == [
        "vm-node1  corosync-cfgtool -R",
        "--- barrier: every node reloaded ---",
        "vm-node1  check runtime.config.totem.token = 3000", "vm-node1  check runtime.config.totem.consensus = 3600",
        "vm-node2  check runtime.config.totem.token = 3000", "vm-node2  check runtime.config.totem.consensus = 3600"]
    assert any("corosync runs older timing than its file (vm-node1: totem.token 1000 -> 3000" in n for n in p.notes)
    v = corosync.verify(fakes, lab, wait_s=0)
    behind = [c for c in v.checks if c.check == "corosync runs the timing its file sets"]
    assert [c.ok for c in behind] == [False, False] and "totem.token: runs 1000, file 3000" in behind[0].detail
    # Once corosync runs the file's timing, the same files plan nothing and verify agrees.
    for f in fakes.values():
        f.script = [(pat, a) for pat, a in f.script if not pat.startswith("^corosync-cmapctl")]
        f.answer(r"^corosync-cmapctl runtime\.config\.totem\.$", RUNTIME_FAST.replace("1200", "3600").replace("1000", "3000"))
    assert corosync.CorosyncStage(lab, profile="seed").plan(corosync.CorosyncStage(lab).gather(fakes)).ops == []
    checks = [c for c in corosync.verify(fakes, lab, wait_s=0).checks if c.check == "corosync runs the timing its file sets"]
    assert [c.ok for c in checks] == [True, True] and checks[0].detail == "consensus 3600, token 3000"



def test_a_unit_that_will_not_start_says_which_file_is_installed_and_what_to_do(lab: Params) -> None:
    """Seen on the lab (tests/lab/test_stage_failures.py): corosync refusing to start on one node after
    the new file went in; the error ends with what is installed there and where to look."""
    fakes = {"vm-node1": node("vm-node1", None, active=False, enabled=False), "vm-node2": node("vm-node2", b"old\n", active=False)}
    fakes["vm-node2"].fail_on.append(r"^systemctl start corosync$")
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    hints = {(o.node, o.units): o.hint for o in p.ops if isinstance(o, corosync.Systemctl) and o.verb == "start"}
    assert hints[("vm-node1", ("pacemaker",))] == (
        f"pacemaker did not start on vm-node1 with the new {CONF} installed (there was none before): "
        "`journalctl -u pacemaker` on vm-node1 says why. Fix that and run this stage again: it starts what is not running")
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, fakes, dry_run=False, parallel=False)
    err = e.value
    assert (err.node, err.command, err.exit_code) == ("vm-node2", "systemctl start corosync", 1)
    assert (f"corosync did not start on vm-node2 with the new {CONF} installed (the previous one kept as "
            f"{CONF}.hakit-prev): `journalctl -u corosync` on vm-node2 says why") in str(err)
    assert err.changed[-1] == "vm-node1: systemctl start corosync" and not any("start pacemaker" in c for c in err.changed)
    # A node this run installed nothing on: no word about the file.
    assert corosync.start_hint("corosync", "vm-node2", None).startswith("corosync did not start on vm-node2: ")

def test_a_change_that_needs_a_restart_is_refused_without_allow_restart(lab: Params) -> None:
    old = want(lab).replace(b"cluster_name: hakit-lab", b"cluster_name: other")
    fakes = {n.name: node(n.name, old, active=True) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert p.ops == [] and "totem.cluster_name" in p.blocked["cluster"]
    assert "stops the service for about" in p.blocked["cluster"] and "allow_restart=True" in p.blocked["cluster"]
    with pytest.raises(driver.StageBlocked):
        driver.apply(p, fakes, dry_run=False)
    assert all(f.writes == [] for f in fakes.values())


def test_with_allow_restart_every_node_stops_before_any_starts(lab: Params) -> None:
    old = want(lab).replace(b"cluster_name: hakit-lab", b"cluster_name: other")
    fakes = {n.name: node(n.name, old, active=True) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab, allow_restart=True), fakes)
    stops = [o for o in p.ops if isinstance(o, corosync.Systemctl) and o.verb == "stop"]
    assert [(o.node, o.units) for o in stops] == [
        ("vm-node1", ("pacemaker",)), ("vm-node2", ("pacemaker",)), ("vm-node1", ("corosync",)), ("vm-node2", ("corosync",))]
    assert "--- barrier: pacemaker stopped on every node (its resources too) before any corosync stops ---" in p.program()
    assert any(n.startswith("class: full restart, allowed: this change stops the service") for n in p.notes)
    prog = p.program()
    last_install = max(i for i, line in enumerate(prog) if "mv -f" in line)
    assert all(prog.index(f"{n}  systemctl stop pacemaker") > last_install for n in ("vm-node1", "vm-node2"))
    first_pm = min(i for i, line in enumerate(prog) if line.endswith("systemctl start pacemaker"))
    assert all(i < first_pm for i, line in enumerate(prog) if line.endswith("systemctl start corosync"))


def test_conf_changes_compare_key_by_key() -> None:
    a = "totem {\n token: 1000\n interface {\n linknumber: 0\n knet_link_priority: 2\n }\n}\n"
    b = "# comment\ntotem {\n interface {\n knet_link_priority: 1\n linknumber: 0\n }\n token: 1000 # same\n}\n"
    (c,) = corosync.conf_changes(a, b)
    assert (c.key, c.old, c.new, c.runtime) == ("totem.interface[0].knet_link_priority", "2", "1", False)
    assert corosync.conf_changes(a, a) == []
    (t,) = corosync.conf_changes(a, a.replace("1000", "3000"))
    assert t.runtime and str(t) == "totem.token 1000 -> 3000"


def test_missing_authkey_blocks_before_anything_is_sent(lab: Params) -> None:
    fakes = {"vm-node1": node("vm-node1", None, False), "vm-node2": node("vm-node2", None, False, key=False)}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    assert p.ops == [] and "02_authkey" in p.blocked["vm-node2"]
    sent = {n: list(f.sent) for n, f in fakes.items()}
    with pytest.raises(driver.StageBlocked, match="vm-node2"):
        driver.apply(p, fakes, dry_run=False)
    assert {n: list(f.sent) for n, f in fakes.items()} == sent


@pytest.mark.parametrize("parallel", [False, True])
def test_apply_sends_exactly_the_planned_operations_in_order(lab: Params, parallel: bool) -> None:
    fakes = {n.name: node(n.name, None, active=False, enabled=False) for n in lab.nodes}
    p = gather_plan(corosync.CorosyncStage(lab), fakes)
    for f in fakes.values():
        f.sent.clear()
    res = driver.apply(p, fakes, dry_run=False, parallel=parallel)
    assert res.executed == p.program_ops() if hasattr(p, "program_ops") else res.executed == [
        line for line in p.program() if not line.startswith("---")]
    for name, f in fakes.items():
        sent = [s.what if s.kind == "run" else f"write {s.what}" for s in f.sent]
        assert sent == [
            f"write {CONF}.hakit-new",
            f"corosync -t -c {CONF}.hakit-new",
            f"{{ [ ! -f {CONF} ] || cp -p {CONF} {CONF}.hakit-prev; }} && mv -f {CONF}.hakit-new {CONF}",
            SEED_EMPTY,
            SEED_DEADTIME,
            "systemctl start corosync",
            "systemctl start pacemaker",
            "systemctl enable corosync pacemaker",
        ], name
    assert [o.outcome for o in res.outcomes] == ["changed", "changed"]


def test_a_dry_run_sends_only_reads(lab: Params) -> None:
    fakes = {n.name: node(n.name, b"old\n", active=True) for n in lab.nodes}
    stage = corosync.CorosyncStage(lab, allow_restart=True)
    run = driver.StageRun(stage, fakes, dry_run=True)
    run.gather()
    run.make_plan()
    res = run.apply()
    assert res.dry_run and all(o.outcome == "not applied" for o in res.outcomes)
    for f in fakes.values():
        assert f.writes == []
        assert all(c.startswith(("for u in", "test -s", "corosync-cmapctl runtime.", "if test -d /var/lib/pacemaker/cib;"))
                   for c in f.commands), f.commands


def test_a_rejected_config_stops_before_any_live_file_changes_and_removes_the_staged_ones(lab: Params) -> None:
    fakes = {n.name: node(n.name, b"old\n", active=True) for n in lab.nodes}
    fakes["vm-node2"].fail_on.append(r"^corosync -t")
    p = gather_plan(corosync.CorosyncStage(lab, allow_restart=True), fakes)
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, fakes, dry_run=False, parallel=False)
    err = e.value
    assert err.node == "vm-node2" and err.exit_code == 1
    assert err.changed == [f"vm-node1: write {CONF}.hakit-new sha256 {hashlib.sha256(want(lab)).hexdigest()[:12]}… root:root 0644",
                           f"vm-node2: write {CONF}.hakit-new sha256 {hashlib.sha256(want(lab)).hexdigest()[:12]}… root:root 0644"]
    for f in fakes.values():
        assert not any("mv -f" in c or c.startswith("systemctl") for c in f.commands)
        assert f.commands[-1] == f"rm -f {CONF}.hakit-new"  # the undo step
    assert "clean-up after the failure" in str(err) and err.fields()["changed"] == err.changed
