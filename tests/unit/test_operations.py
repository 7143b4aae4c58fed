"""Notebook 08's day-2 operations on FakeRunners that replay what lab nodes answered (both releases).

The transcripts (fixtures/captured/operations/<release>/*.json, made by capture.py there) hold every
command one call sent to the nodes of a lab cluster and what came back. Replayed, they check: the plan
and its crm text; crm_simulate's prediction read from the simulated CIB; that a dry run sends only
reads and commands on a private copy of the CIB; that a real run takes the lock, sends its one
change and verifies against the prediction; the legend of ``crm_mon -1 -Af``; failcounts; and that
bad input stops before any node is touched.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from pathlib import Path

import pytest

from hakit import cib, lock
from hakit.facts import cibstatus
from hakit.operations import Operations, OperationInputError, base, changes, reading
from hakit.facts.pacemaker import parse_crm_mon
from hakit.operations.predict import Layout
from hakit.params import Params
from hakit.runner import FakeRunner, Result

OPS = Path(__file__).parent / "fixtures" / "captured" / "operations"
RELEASES = ("trixie", "bookworm")
LOCK_TAKE = r"^mkdir -p -m 0755 /run/hakit && .*set -C"
LOCK_RELEASE = r"^grep -qF .* /run/hakit/lock"
# What a dry run may send: reads, and commands confined to the private copy of the CIB.
TEMP = r"/run/hakit-cib\.[A-Za-z0-9]+"
JOURNAL = (r"^journalctl -u corosync -u pacemaker (?P<w>--since=@\d+ --until=@\d+ --no-pager -o short-iso-precise) && "
           r"\{ k=\$\(journalctl -k -q (?P=w) 2>/dev/null\); \[ -z \"\$k\" \] \|\| printf '%s\\n' '-- kernel --' \"\$k\"; \}$")
READ_ONLY = [JOURNAL,
             r"^cibadmin --query$", r"^crm_mon -1 --output-as=xml$", r"^crm_mon -1 -Af$", r"^true$",
             r"^mktemp -d /run/hakit-cib\.XXXXXX$", rf"^CIB_file={TEMP}/step\d+(-input)?\.xml ",
             rf"^crm_simulate --xml-file {TEMP}/step\d+(-input)?\.xml --simulate --save-output {TEMP}/step\d+\.xml",
             rf"^rm -rf -- {TEMP}$"]


def transcript(release: str, name: str) -> list[dict]:
    text = (OPS / release / name).read_text()
    head, sep, body = text.partition("# ---\n")
    assert sep and all(line.startswith("#") for line in head.splitlines())
    log = json.loads(body)
    for e in log:
        if isinstance(e.get("stdout"), dict):
            e["stdout"] = log[e["stdout"]["same_as"]]["stdout"]
    return log


def replay(log: list[dict], names: list[str]) -> dict[str, FakeRunner]:
    """One FakeRunner per node answering each command with what that node answered on the lab, in order
    (the last answer repeats); a command the lab never got fails the test. The lock is free."""
    answers: dict[tuple[str, str], deque] = defaultdict(deque)
    for e in log:
        if e["kind"] == "run" and not re.search(LOCK_TAKE, e["cmd"]) and not re.search(LOCK_RELEASE, e["cmd"]):
            answers[(e["node"], e["cmd"])].append(Result(e["stdout"], e["stderr"], e["exit"]))

    def host(name: str) -> FakeRunner:
        def answer(cmd: str) -> Result:
            q = answers.get((name, cmd))
            if not q:
                raise AssertionError(f"{name}: the lab never got {cmd!r}")
            return q.popleft() if len(q) > 1 else q[0]

        return FakeRunner(name, script=[(r"^(?!mkdir -p -m 0755 /run/hakit && )(?!grep -qF .* /run/hakit/lock)",
                                         answer)])

    return {n: host(n) for n in names}


def lab_commands(log: list[dict], node: str) -> list[str]:
    return [e["cmd"] for e in log if e["kind"] == "run" and e["node"] == node]


def changing(fake: FakeRunner) -> list[str]:
    bad = [s.what for s in fake.changing(READ_ONLY) if s.kind == "run"]
    bad += [s.what for s in fake.writes if not re.fullmatch(rf"{TEMP}/step\d+(-input)?\.xml", s.what)]
    return bad


@pytest.fixture
def fast(monkeypatch):
    """Verification needs no real seconds on a replay."""
    monkeypatch.setattr(base, "STABLE_S", 0.0)
    monkeypatch.setattr(base.time, "sleep", lambda _s: None)


def names(params: Params) -> list[str]:
    return [n.name for n in params.nodes]


# ---------------------------------------------------------------------- crm_mon -1 -Af and its legend


def af(release: str, name: str) -> str:
    text = (OPS / release / name).read_text()
    return text.partition("# ---\n")[2]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", ["crm_mon-Af-healthy.txt", "crm_mon-Af-moved.txt", "crm_mon-Af-failed.txt",
                                  "crm_mon-Af-standby-maintenance.txt"])
def test_the_legend_explains_every_section_this_output_shows(release, name):
    raw = af(release, name)
    leg = reading.legend(raw)
    headers = [ln.strip() for ln in raw.splitlines() if ln and not ln.startswith(" ") and ln.rstrip().endswith(":")]
    parts = list(leg["part"])
    for h in headers:
        assert any(p.startswith(h.rstrip(":")) for p in parts), (h, parts)
    for quoted in leg["seen here"]:  # every row quotes a line of this very output
        assert any(quoted in ln.replace("\t", " ") for ln in raw.splitlines()), quoted
    assert {"Current DC", "Online", "Started", "pingd"} - set(parts) <= {"pingd"}
    assert ("pacemakerd state (pacemaker 2.1)" in parts) == (release == "bookworm")


def test_the_legend_names_failures_standby_and_maintenance_where_they_show():
    failed = set(reading.legend(af("trixie", "crm_mon-Af-failed.txt"))["part"])
    assert {"Migration Summary (-f)", "Failed Resource Actions", "fail-count", "migration-threshold"} <= failed
    calm = set(reading.legend(af("trixie", "crm_mon-Af-standby-maintenance.txt"))["part"])
    assert {"standby", "Resource management is DISABLED", "maintenance"} <= calm
    assert "Failed Resource Actions" not in calm
    healthy = set(reading.legend(af("bookworm", "crm_mon-Af-healthy.txt"))["part"])
    assert not {"standby", "FAILED", "Failed Resource Actions", "Resource management is DISABLED"} & healthy


# ---------------------------------------------------------------------- what the CIB says


def cib_of(log: list[dict], node: str = "vm-node1", which: int = 0) -> str:
    return [e["stdout"] for e in log if e["kind"] == "run" and e["node"] == node and e["cmd"] == "cibadmin --query"][which]


def test_a_move_leaves_cli_prefer_and_a_lifetime_an_end_date():
    after = cib_of(transcript("trixie", "real-move.json"), which=-1)
    assert cibstatus.move_constraints(after) == [cibstatus.MoveConstraint("cli-prefer-vip", "vip", "vm-node2", "INFINITY")]
    # crm_resource --move --resource vip --node vm-node2 --lifetime PT5M, as pacemaker 3.0.0 and 2.1.5 wrote it
    timed = after.replace(
        '<rsc_location id="cli-prefer-vip" rsc="vip" role="Started" node="vm-node2" score="INFINITY"/>',
        '<rsc_location id="cli-prefer-vip" rsc="vip" role="Started"><rule id="cli-prefer-rule-vip" score="INFINITY" '
        'boolean-op="and"><expression id="cli-prefer-expr-vip" attribute="#uname" operation="eq" value="vm-node2" '
        'type="string"/><date_expression id="cli-prefer-lifetime-end-vip" operation="lt" end="2026-12-01 12:10:42Z"/>'
        '</rule></rsc_location>')
    assert timed != after
    (m,) = cibstatus.move_constraints(timed)
    assert (m.node, m.score, m.expires, m.kind) == ("vm-node2", "INFINITY", "2026-12-01 12:10:42Z", "prefer")


@pytest.mark.parametrize("release", RELEASES)
def test_failcounts_after_an_apache_crash(release):
    log = transcript(release, "dry-cleanup.json")
    cib_xml = cib_of(log)
    (fc,) = cibstatus.failcounts(cib_xml)
    assert (fc.node, fc.resource, fc.operation, fc.count) == ("vm-node1", "httpd", "monitor_1000", 1)
    assert fc.last_failure and fc.last_failure > 1_700_000_000
    frame = reading.failcount_frame(cib_xml, ())
    row = frame.iloc[0]
    assert row["migration-threshold"] == "1"
    assert row["what it does"] == "banned from vm-node1 until the failcount expires (60s after the failure) or a cleanup"


@pytest.mark.parametrize("release", RELEASES)
def test_clear_failures_removes_exactly_the_failure_records(release):
    cib_xml = cib_of(transcript(release, "dry-cleanup.json"))
    assert "httpd_last_failure_0" in cib_xml and "fail-count-httpd#monitor_1000" in cib_xml
    out = changes.clear_failures(cib_xml, ["httpd"])
    assert "httpd_last_failure_0" not in out and "fail-count-httpd" not in out and "last-failure-httpd" not in out
    assert cibstatus.failcounts(out) == []
    assert out.count("<lrm_rsc_op ") == cib_xml.count("<lrm_rsc_op ") - 1  # nothing else went
    assert cibstatus.failcounts(changes.clear_failures(cib_xml, ["vip"])) == cibstatus.failcounts(cib_xml)


# ---------------------------------------------------------------------- dry runs, replayed


@pytest.mark.parametrize("release", RELEASES)
def test_dry_run_of_standby_predicts_and_sends_nothing_that_changes(release, lab, tmp_path, fast):
    log = transcript(release, "dry-standby.json")
    hosts = replay(log, names(lab))
    day2 = Operations(lab, hosts, dry_run=True, record_dir=str(tmp_path))
    got = day2.standby("vm-node2")
    assert got.run.plan.program() == [
        "cluster  crm_attribute --node vm-node2 --name standby --update on  (through vm-node1; crm shell: "
        "crm node standby vm-node2)"]
    assert list(got.commands["crm shell"]) == ["crm node standby vm-node2"]
    after = got.op.prediction.layout
    assert dict(after.nodes) == {"vm-node1": "online", "vm-node2": "standby"}
    assert after.where("vip") == ("vm-node1",) and after.where("fence-vm-node1") == ()
    assert got.run.result.outcome("cluster").outcome == "not applied"
    assert got.run.verification.before_apply  # a dry run checks the nodes as they are, which is not yet standby
    shown = got._repr_html_()
    assert "crm node standby vm-node2" in shown and "crm_simulate: what pacemaker will do" in shown
    assert "(dry run)" in shown and "saved to" in shown
    for h in hosts.values():
        assert changing(h) == [], changing(h)
        # exactly what the lab got, in order (the record's journal read is newer than the capture)
        assert [c for c in h.commands if not c.startswith("journalctl ")] == lab_commands(log, h.name)
    rec = json.loads((tmp_path / "01-standby-vm-node2" / "record.json").read_text())
    assert rec["dry_run"] and rec["executed"] == [] and rec["program"] == got.run.plan.program()
    assert "step 1: `crm_attribute --node vm-node2 --name standby --update on` on the copy" in (
        tmp_path / "01-standby-vm-node2" / "prediction.txt").read_text()


@pytest.mark.parametrize("release", RELEASES)
def test_cleanup_after_a_crash_predicts_the_failback(release, lab, fast):
    log = transcript(release, "dry-cleanup.json")
    hosts = replay(log, names(lab))
    got = Operations(lab, hosts, dry_run=True).cleanup("httpd")
    (op,) = got.run.plan.ops
    assert op.argv == ("crm_resource", "--cleanup", "--resource", "httpd") and op.crm == "crm resource cleanup httpd"
    assert "failcount 1 of httpd (monitor_1000) on vm-node1" in op.reason
    pred = got.op.prediction
    assert pred.before.where("vip") == "vm-node2"
    assert pred.layout.where("vip") == ("vm-node1",) and pred.layout.where("httpd") == ("vm-node1",)
    assert "Move       httpd" in pred.steps[0].transition
    for h in hosts.values():
        assert changing(h) == [], changing(h)
    # the cleaned-up copy went to the node, crm_resource --cleanup never touched it (it crashes on a copy)
    assert not any("CIB_file" in c and "--cleanup" in c for h in hosts.values() for c in h.commands)


def test_fence_test_not_confirmed_is_a_dry_run_with_the_failback_predicted(lab, fast):
    log = transcript("trixie", "dry-fence.json")
    hosts = replay(log, names(lab))
    got = Operations(lab, hosts, dry_run=False).fence_test("vm-node1")  # dry_run False, but no confirm
    assert got.run.dry_run and "not confirmed" in got.op.forced_dry_run
    assert [o.describe() for o in got.run.plan.ops] == [
        "stonith_admin --fence vm-node1 --timeout 120  (through vm-node2; crm shell: crm node fence vm-node1)",
        "stonith_admin --unfence vm-node1 --timeout 120  (through vm-node2; crm shell: (none: crmsh has no power-on))",
        "wait (up to 240 s) until crm_mon through vm-node2 shows vm-node1 online again"]
    steps = got.op.prediction.steps
    assert [Layout.of(s.status).where("vip") for s in steps] == [("vm-node2",), ("vm-node2",), ("vm-node1",)]
    assert steps[0].transition.startswith("* Fence (off) vm-node1")
    assert "pingd=1000 appears there" in steps[2].change.label  # the ping agent's attribute, which no agent set
    assert any("runs vip, httpd" in n for n in got.run.plan.notes)
    for h in hosts.values():
        assert changing(h) == [], changing(h)
    assert hosts["vm-node1"].commands == []  # the node to be fenced is not even read


# ---------------------------------------------------------------------- a real run, replayed


def test_a_real_move_takes_the_lock_sends_one_change_and_warns_of_cli_prefer(lab, tmp_path, fast):
    log = transcript("trixie", "real-move.json")
    hosts = replay(log, names(lab))
    got = Operations(lab, hosts, dry_run=False, record_dir=str(tmp_path)).move("vip", "vm-node2")
    sent = hosts["vm-node1"].commands
    move = "crm_resource --move --resource vip --node vm-node2"
    assert [c for c in sent if c == move] == [move]
    took = next(i for i, c in enumerate(sent) if re.search(LOCK_TAKE, c))
    assert took < sent.index(move) and any(re.search(LOCK_RELEASE, c) for c in sent[sent.index(move):])
    assert [c for h in hosts.values() for c in changing(h) if not re.search(f"{LOCK_TAKE}|{LOCK_RELEASE}", c)] == [move]
    assert got.run.result.executed == got.run.plan.program()
    assert got.run.verification.ok, got.run.verification
    (w,) = got.op.warnings
    assert w.startswith("move constraint cli-prefer-vip: vip pinned to vm-node2") and "day2.clear('vip')" in w
    rec = json.loads((tmp_path / "01-move-vip-to-vm-node2" / "record.json").read_text())
    assert rec["executed"] == rec["program"] and rec["verification"]["ok"]


def test_a_second_move_names_the_constraint_the_first_left(lab):
    log = transcript("trixie", "real-move.json")
    mon = [e["stdout"] for e in log if e["node"] == "vm-node1" and e.get("cmd") == "crm_mon -1 --output-as=xml"][-1]
    facts = base.OpFacts("vm-node1", cib.CibSnapshot.parse(cib_of(log, which=-1)), parse_crm_mon(mon))
    plan = changes.Move(lab, "vip", "vm-node1").plan(facts)
    assert [o.argv for o in plan.ops] == [("crm_resource", "--move", "--resource", "vip", "--node", "vm-node1")]
    (note,) = plan.notes
    assert note.startswith("before this move: move constraint cli-prefer-vip: vip pinned to vm-node2")
    assert changes.Move(lab, "vip", "vm-node2").plan(facts).no_change == {"cluster": "vip already runs on vm-node2"}
    clear = changes.Clear(lab, "vip").plan(facts)
    assert [o.crm for o in clear.ops] == ["crm resource clear vip"]


def test_a_held_lock_refuses_the_change(lab, fast):
    log = transcript("trixie", "real-move.json")
    hosts = replay(log, names(lab))
    other = lock.Holder("run-someone-else", "admin@elsewhere", 4242, "2026-12-01T12:00:00+00:00").to_json()
    hosts["vm-node1"].script.insert(0, (LOCK_TAKE, other))
    with pytest.raises(lock.LockHeld, match="admin@elsewhere"):
        Operations(lab, hosts, dry_run=False).move("vip", "vm-node2")
    assert "crm_resource --move --resource vip --node vm-node2" not in hosts["vm-node1"].commands


# ---------------------------------------------------------------------- bad input


def test_bad_names_stop_before_any_node_is_touched(lab):
    hosts = {n: FakeRunner(n, strict=True) for n in names(lab)}
    day2 = Operations(lab, hosts, dry_run=False)
    with pytest.raises(OperationInputError, match=r"node='vm-node9' is not a node of this cluster; use one of: "
                                                   r"vm-node1, vm-node2"):
        day2.standby("vm-node9")
    with pytest.raises(OperationInputError, match=r"lifetime='10m' is not an ISO 8601 duration; use e.g. PT10M"):
        day2.move("vip", "vm-node2", lifetime="10m")
    with pytest.raises(OperationInputError, match=r"confirm='vm-node1' does not repeat the node to fence \('vm-node2'\)"):
        day2.fence_test("vm-node2", confirm="vm-node1")
    with pytest.raises(OperationInputError, match="maintenance"):
        day2.maintenance("yes")  # type: ignore[arg-type]
    assert all(h.sent == [] for h in hosts.values())


def test_no_fence_test_without_fencing(article):
    hosts = {n: FakeRunner(n, strict=True) for n in names(article)}
    with pytest.raises(OperationInputError, match="no fencing to test"):
        Operations(article, hosts).fence_test("vm-node2", confirm="vm-node2")
    assert all(h.sent == [] for h in hosts.values())


def test_an_unknown_resource_is_named_after_reading_only(lab, fast):
    hosts = replay(transcript("trixie", "dry-standby.json"), names(lab))
    with pytest.raises(OperationInputError, match=r"resource='vipp' is not a resource of this cluster; use one of: "
                                                   r"fence-vm-node1, fence-vm-node2, vip, httpd, cloned-ping-gateway"):
        Operations(lab, hosts, dry_run=False).move("vipp", "vm-node2")
    assert all(changing(h) == [] for h in hosts.values())


# ---------------------------------------------------------------------- reading and logs


def test_read_shows_crm_mon_as_printed_and_offers_to_clear_a_leftover(lab):
    moved = cib_of(transcript("trixie", "real-move.json"), which=-1)
    raw = af("trixie", "crm_mon-Af-moved.txt")
    hosts = {n: FakeRunner(n, script=[(r"^crm_mon -1 -Af$", raw), (r"^cibadmin --query$", moved)]) for n in names(lab)}
    got = Operations(lab, hosts).read()
    assert got.raw == raw and got.via == "vm-node1"
    (w,) = got.warnings
    assert "cli-prefer-vip" in w and "crm resource clear vip" in w and "day2.clear('vip')" in w
    assert "<h4>What each part means</h4>" in got._repr_html_()


def test_logs_say_where_each_log_is_on_every_node(lab):
    log = transcript("trixie", "logs.json")
    got = Operations(lab, replay(log, names(lab))).logs(lines=5)
    by = got.frame.set_index("log")
    assert by.loc["pacemaker", "file"] == "/var/log/pacemaker/pacemaker.log"
    assert re.fullmatch(r"\d+ KiB, written 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", by.loc["corosync", "vm-node1"])
    assert by.loc["fencing", "read with"] == "stonith_admin --history '*' --verbose"
    assert set(got.tails) == {"vm-node1", "vm-node2"} and all(len(t.splitlines()) == 5 for t in got.tails.values())


def test_a_cluster_that_does_not_land_as_predicted_fails_verification_naming_the_difference(lab, fast):
    from hakit.stages.base import VerificationFailed

    hosts = replay(transcript("trixie", "real-move.json"), names(lab))
    day2 = Operations(lab, hosts, dry_run=False, wait_s=0)  # judge the first reading after the move
    with pytest.raises(VerificationFailed, match=r"the cluster is where crm_simulate predicted: httpd on vm-node1 \(predicted vm-node2\)"):
        day2.move("vip", "vm-node2")
    (done,) = day2.done  # the record was saved before the failure was raised
    assert done.run.result.executed == done.run.plan.program() and not done.verified
