"""Judging a trial is pure: observations in, broken rules out (what a trial's CSV row says)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit.facts.pacemaker import FenceEvent, parse_crm_mon
from hakit.failover import scenarios
from hakit.failover.judge import Observation, judge, trial_row
from hakit.failover.timeline import ProbeSample
from hakit.failover.watch import ArpSample, ClusterSample

CAP = Path(__file__).parent / "fixtures" / "captured"
BASE = parse_crm_mon((CAP / "crm_mon-2node-resources.xml").read_text())
A, B = "vm-node1", "vm-node2"
MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"


def scenario(name: str) -> scenarios.Scenario:
    (s,) = scenarios.select(name)
    return s


def probes(until_fault_node: str, after_node: str | None, gap: tuple[float, float], end: float = 20.0):
    """A 25 Hz probe stream: served by one node before the fault at t=10, nothing in ``gap``, then the other."""
    out, t = [], 8.0
    while t < end:
        if t < 10.0:
            out.append(ProbeSample(t, True, until_fault_node))
        elif gap[0] <= t < gap[1]:
            out.append(ProbeSample(t, False, None, error="timed out"))
        else:
            out.append(ProbeSample(t, after_node is not None, after_node))
        t += 0.04
    return out


def obs(name: str, fencing: bool, **kw) -> Observation:
    scn = scenario(name)
    expected = scn.expected_node(A, B)
    o = Observation(scn, fencing, A, B, expected, scn.fenced_node(fencing, A, B), BASE,
                    t_inject=10.0, t_restore=20.0)
    o.probes = probes(A, expected, (10.0, 13.0))
    o.arp = [ArpSample(9.0 + i, frozenset({MAC1 if i < 2 else MAC2})) for i in range(10)]
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def fence(target: str, status: str = "success", at: float = 1.0) -> FenceEvent:
    return FenceEvent(target, "off", status, B, B, at)


def test_a_clean_fenced_node_crash_passes_and_its_row_counts_the_outage() -> None:
    o = obs("node-crash", True, fences=[fence(A)])
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.ok and row.fenced == A and row.served_before == A and row.served_after == B
    assert row.downtime_s == pytest.approx(3.0, abs=0.05) and row.failed_probes == 75 and row.outages == 1


def test_two_macs_for_the_vip_is_a_split_brain() -> None:
    o = obs("node-crash", True, fences=[fence(A)])
    o.arp.append(ArpSample(12.0, frozenset({MAC1, MAC2})))
    assert any("split brain" in p for p in judge(o))
    assert trial_row(o, judge(o), "fast", 1).dual_vip_samples == 1


def test_no_fence_and_the_wrong_node_fenced_are_both_named() -> None:
    assert any("never fenced" in p for p in judge(obs("node-crash", True, fences=[])))
    problems = judge(obs("node-crash", True, fences=[fence(A), fence(B)]))
    assert any(f"fenced {B}" in p for p in problems)


def test_served_by_the_wrong_node_at_the_end() -> None:
    o = obs("node-crash", True, fences=[fence(A)])
    o.probes = probes(A, A, (10.0, 13.0))
    assert any(f"served by {A} at the end of the fault, expected {B}" in p for p in judge(o))


def test_an_outage_where_none_is_expected() -> None:
    o = obs("ring0-loss", False)
    o.probes = probes(A, A, (10.0, 10.5))
    assert any("where no outage was expected" in p for p in judge(o))


def test_slave_loss_accepts_one_short_gap_of_a_bond_switch_and_no_more() -> None:
    o = obs("slave-loss", True)
    o.arp = [ArpSample(9.0 + i, frozenset({MAC1})) for i in range(10)]
    o.probes = probes(A, A, (10.0, 10.32))  # 8 failed probes, as on the all-VM lab
    assert judge(o) == []
    o.probes = probes(A, A, (10.0, 10.0 + scenarios.SLAVE_LOSS_BLIP_S + 0.5))
    (p,) = judge(o)
    assert "where no outage was expected (one gap of at most 1.3 s is accepted" in p
    assert p.endswith("s in 1 gap(s)): 45 timed out"), p  # the client's errors, by kind
    o.probes = [s for s in probes(A, A, (10.0, 10.2)) if not 10.6 < s.t < 10.8] + \
        [ProbeSample(10.6 + k * 0.04, False, None) for k in range(5)]
    o.probes.sort(key=lambda s: s.t)
    assert any("in 2 gap(s)" in p for p in judge(o))  # two gaps are not one bond switch


def test_apache_crash_wants_its_failcount() -> None:
    o = obs("apache-crash", True, httpd_failcount=0)
    o.probes = probes(A, o.expected, (10.0, 11.0))
    assert o.scenario.failcount_httpd == 1
    assert any(f"httpd failcount on {A} is 0, expected 1" in p for p in judge(o))
    o.httpd_failcount = 1
    assert not any("failcount" in p for p in judge(o))


def test_fence_failure_must_not_serve_before_the_bmc_returns() -> None:
    o = obs("fence-failure", True, fences=[fence(A, "failed", 0.5), fence(A)], t_heal=15.0)
    o.probes = probes(A, B, (10.0, 16.0))
    assert judge(o) == []
    o.probes = probes(A, B, (10.0, 12.0))  # served at +2 s, before the second step at +5 s
    assert any("before the second step" in p for p in judge(o))
    # the captured status has the VIP on vm-node1: judged from vm-node1's side as "the other node"
    started = parse_crm_mon((CAP / "crm_mon-2node-resources.xml").read_text())
    assert started.running_on("vip") == [A]
    o.probes, o.other = probes(A, B, (10.0, 16.0)), A
    o.cluster = [ClusterSample(12.0, started, B)]
    assert any(f"{A} started the VIP 2.0 s after the fault" in p for p in judge(o))
    o.cluster, o.other, o.fences = [], B, [fence(A)]
    assert any("no failed fencing attempt" in p for p in judge(o))


def test_bounds_follow_profile_and_fence_delay(lab) -> None:
    from hakit.failover.suite import bounds, fence_delay_s
    from hakit.profiles import get_profile

    b = bounds(lab, get_profile("fast")).set_index("scenario")["floor_s"]
    delay = fence_delay_s(lab)
    assert delay == (5.0 if lab.pacemaker.stonith_enabled else 0.0)
    assert b["node-crash"] == pytest.approx(2.2 + delay) and b["ring0-loss"] == 0
    assert b["apache-crash"] == get_profile("fast").resources.httpd_monitor


# -- whole incidents: the failback after the restore, or stickiness keeping the survivor ----------------------


def failback_probes(o: Observation, gap: tuple[float, float], end_node: str, end: float = 90.0) -> None:
    """After the restore at t=20: served by the survivor, nothing in ``gap``, then ``end_node``."""
    t = o.t_restore
    while t < end:
        ok = not gap[0] <= t < gap[1]
        node = (o.expected if t < gap[0] else end_node) if ok else None
        o.probes.append(ProbeSample(t, ok, node, error="" if ok else "timed out"))
        t += 0.04


def test_an_incident_counts_the_failback_and_sums_both_outages() -> None:
    o = obs("node-crash", True, fences=[fence(A)], home=A, t_back=40.0)
    failback_probes(o, (30.0, 32.0), A, end=40.0)
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.downtime_s == pytest.approx(3.0, abs=0.05)
    assert row.failback_s == pytest.approx(2.0, abs=0.05)
    assert row.incident_s == pytest.approx(5.0, abs=0.1) and row.ended == f"back on {A}"


def test_apache_crash_under_the_shipped_policy_moves_and_fails_back() -> None:
    from hakit.params import FailurePolicy

    moving, in_place = FailurePolicy(), FailurePolicy(migration_threshold=None)
    s = scenario("apache-crash")
    assert s.expected_node(A, B, moving) == B and s.expected_node(A, B, in_place) == A
    assert s.expected_node(A, B, FailurePolicy(migration_threshold=3)) == A  # one failure is not three
    assert "the VIP moves with it" in s.expected_text(moving) and "fails back" in s.expected_text(moving)
    assert "restarts Apache on the same node" in s.expected_text(in_place)
    cloned = s.expected_text(moving, httpd_cloned=True)
    assert "colocation vip-with-httpd inf" in cloned and "httpd-with-vip" not in cloned and "fails back" in cloned
    o = obs("apache-crash", True, httpd_failcount=1, home=A, t_back=85.0)
    o.expected = B
    o.probes = probes(A, B, (10.0, 11.0))
    failback_probes(o, (71.0, 73.2), A, end=85.0)
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert (row.served_after, row.ended) == (B, f"back on {A}")
    assert row.downtime_s == pytest.approx(1.0, abs=0.05) and row.failback_s == pytest.approx(2.2, abs=0.05)


def test_restart_in_place_has_no_failback() -> None:
    o = obs("apache-crash", True, httpd_failcount=1, home=A, t_back=30.0)
    o.probes = probes(A, A, (10.0, 11.0))
    failback_probes(o, (99.0, 99.0), A, end=30.0)
    row = trial_row(o, judge(o), "fast", 1)
    assert row.ok and row.failback_s == 0.0 and row.incident_s == row.downtime_s and row.ended == "in place"


def test_stickiness_keeps_the_survivor_and_says_so() -> None:
    o = obs("node-crash", True, fences=[fence(A)], home=B, t_back=40.0)
    failback_probes(o, (99.0, 99.0), B, end=40.0)
    row = trial_row(o, judge(o), "fast", 1)
    assert row.ok and row.failback_s == 0.0 and row.ended == f"stays on {B} (stickiness)"
    moved_back = obs("node-crash", True, fences=[fence(A)], home=B, t_back=40.0)
    failback_probes(moved_back, (30.0, 32.0), A, end=40.0)
    problems = judge(moved_back)
    assert any(f"served by {A} at the end of the incident, expected {B}" in p for p in problems)
    assert any("failed probe(s) after the restore although stickiness keeps the service" in p for p in problems)


def test_a_cluster_that_never_returns_is_named() -> None:
    o = obs("gateway-loss", False, home=A, t_back=None)
    failback_probes(o, (99.0, 99.0), B, end=60.0)
    problems = judge(o)
    assert any("never returned to its normal placement" in p for p in problems)
    assert trial_row(o, problems, "fast", 1).ended == f"not back on {A}"


def test_a_trial_without_the_second_phase_leaves_failback_unknown() -> None:
    row = trial_row(obs("node-crash", True, fences=[fence(A)]), [], "fast", 1)
    assert row.ended == "-" and row.failback_s != row.failback_s  # NaN: not measured


def test_the_failover_record_keeps_each_trials_journals_and_names_them_when_it_fails(tmp_path) -> None:
    from dataclasses import replace

    import pandas as pd

    from hakit.failover import runner
    from hakit.failover.suite import FailoverSuite
    from hakit.params import load_params
    from hakit.stages.base import StageResult

    o = obs("node-crash", True, fences=[])  # no fence seen: a broken rule
    problems = judge(o)
    from hakit.runner import FakeRunner
    from hakit.stages.driver import journal_window

    nodes = {A: FakeRunner(A).answer(r"^journalctl ", "corosync: link down\n"),
             B: FakeRunner(B).answer(r"^journalctl ", "fenced\n")}
    t = runner.Trial(trial_row(o, problems, "fast", 1), probes=o.probes, t_inject=o.t_inject,
                     journals=journal_window(nodes, 0.0, 1.0), wall_offset=1_765_000_000.0)  # as run_suite does
    t.row = replace(t.row, logs=t.log_folder)
    suite = FailoverSuite(load_params(Path(__file__).resolve().parents[2] / "params" / "lab.yaml"), dry_run=False,
                          record_dir=str(tmp_path))
    suite.done, suite.frame = [t], pd.DataFrame([t.row.as_dict()])
    suite.result = StageResult("07 failover", dry_run=False)
    suite.save()
    assert (tmp_path / "journal" / "node-crash-1" / f"{A}.log").read_text() == "corosync: link down\n"
    assert sorted(p.name for p in (tmp_path / "journal" / "node-crash-1").iterdir()) == ["probes.csv", f"{A}.log",
                                                                                         f"{B}.log"]
    # every probe of the trial, on the fault's clock and the wall clock the journals use
    sent = pd.read_csv(tmp_path / "journal" / "node-crash-1" / "probes.csv")
    assert len(sent) == len(o.probes) and (~sent["ok"]).sum() == t.row.failed_probes == 75
    assert sent["at_s"].iloc[0] == -2.0 and sent["wall"].iloc[0] == "2025-12-06T05:46:48.000000+00:00"
    assert pd.read_csv(tmp_path / "failover.csv")["logs"].tolist() == ["journal/node-crash-1"]
    with pytest.raises(runner.TrialFailed, match=r"cluster logs: journal/node-crash-1/"):
        suite.raise_if_failed()
