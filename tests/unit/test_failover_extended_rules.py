"""The extended scenarios' rules are pure: synthetic observations (captured crm_mon and ps output from a
Debian 13 lab node, probe streams made here) in, broken rules out."""

from __future__ import annotations

import dataclasses

import pytest

from hakit.facts.pacemaker import ClusterStatus, FenceEvent, parse_crm_mon
from hakit.failover import scenarios
from hakit.failover.context import parse_daemons, parse_failcount
from hakit.failover.judge import Observation, judge, trial_row
from hakit.failover.timeline import ProbeSample
from hakit.failover.watch import ClusterSample
from hakit.params import FailurePolicy

A, B = "vm-node1", "vm-node2"
SHIPPED, LOOP3, IN_PLACE = FailurePolicy(), FailurePolicy(migration_threshold=3), FailurePolicy(migration_threshold=None)


@pytest.fixture(scope="module")
def cap(load_fixture):
    """The Debian 13 captures this module reads (tests/unit/fixtures/captured/README.md)."""
    crm = {k: parse_crm_mon(load_fixture(f"captured/trixie/{name}")) for k, name in (
        ("resources", "crm_mon-2node-resources.xml"), ("simulated-failure", "crm_mon-2node-simulated-failure.xml"),
        ("service-stopped", "crm_mon-2node-service-stopped.xml"), ("peer-fenced", "crm_mon-2node-peer-fenced.xml"))}
    ps = {k: parse_daemons(load_fixture(f"captured/trixie/{name}")) for k, name in (
        ("before", "pacemaker-daemons-before.txt"), ("after-kill", "pacemaker-daemons-after-kill.txt"))}
    return {"crm": crm, "ps": ps, "failcount": load_fixture("captured/trixie/crm_failcount-httpd.txt")}


def on(base: ClusterStatus, rsc: str, *nodes: str) -> ClusterStatus:
    """``base`` with primitive ``rsc`` running on ``nodes`` (none: stopped everywhere)."""
    keep = [r for r in base.resources if r.id != rsc]
    proto = next(r for r in base.resources if r.id == rsc)
    new = [dataclasses.replace(proto, nodes=(n,), active=True, failed=False, role="Started") for n in nodes] or [
        dataclasses.replace(proto, nodes=(), active=False, failed=False, role="Stopped")]
    return dataclasses.replace(base, resources=tuple(keep + new))


def stream(segments: list[tuple[float, float, str | None]], step: float = 0.04) -> list[ProbeSample]:
    """25 Hz probes: each (start, end, node) segment served by that node, or failing (None)."""
    out = []
    for t0, t1, node in segments:
        for i in range(round((t1 - t0) / step)):
            out.append(ProbeSample(round(t0 + i * step, 3), node is not None, node, error="" if node else "timed out"))
    return out


def obs(name: str, policy: FailurePolicy | None, base: ClusterStatus, fencing: bool = True, **kw) -> Observation:
    (scn,) = scenarios.select(name)
    o = Observation(scn, fencing, A, B, scn.expected_node(A, B, policy), scn.fenced_node(fencing, A, B), base,
                    t_inject=10.0, t_restore=30.0, policy=policy)
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def fence(target: str) -> FenceEvent:
    return FenceEvent(target, "off", "success", A, A, 1.0)


# -- what the captures say -----------------------------------------------------------------------------------


def test_the_captures_show_what_each_fault_leaves(cap):
    before, after = cap["ps"]["before"], cap["ps"]["after-kill"]
    assert set(before["pids"]) == {"pacemakerd", "pacemaker-based", "pacemaker-fence", "pacemaker-execd",
                                   "pacemaker-attrd", "pacemaker-sched", "pacemaker-contr"}
    assert after["pids"]["pacemakerd"] != before["pids"]["pacemakerd"]
    assert {n: p for n, p in after["pids"].items() if n != "pacemakerd"} == \
        {n: p for n, p in before["pids"].items() if n != "pacemakerd"}
    assert after["restarts"] == before["restarts"] + 1
    assert parse_failcount(cap["failcount"]) == 1 and parse_failcount("") == 0
    failed = cap["crm"]["simulated-failure"]
    (f,) = [x for x in failed.failures if x.resource == "httpd"]
    assert (f.node, f.exitreason) == (A, "Simulated failure")
    assert scenarios.service_stopped(cap["crm"]["service-stopped"])
    assert not scenarios.service_stopped(cap["crm"]["resources"])


# -- pacemakerd-kill -----------------------------------------------------------------------------------------


def quiet(o: Observation, node: str = A) -> Observation:
    o.probes = stream([(8.0, 30.0, node)])
    return o


def test_pacemakerd_respawned_with_its_subdaemons_adopted_passes(cap):
    o = quiet(obs("pacemakerd-kill", SHIPPED, cap["crm"]["resources"],
                  notes={"before": cap["ps"]["before"], "after": cap["ps"]["after-kill"]}))
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.downtime_s == 0 and row.fenced == "-"
    assert "6 of 6 subdaemons kept their PIDs" in row.evidence


def test_pacemakerd_not_back_or_subdaemons_restarted_or_fenced_are_named(cap):
    before, after = cap["ps"]["before"], cap["ps"]["after-kill"]
    gone = quiet(obs("pacemakerd-kill", SHIPPED, cap["crm"]["resources"], notes={"before": before, "after": None}))
    assert any("no pacemakerd ran on vm-node1 after the fault" in p for p in judge(gone))
    same = quiet(obs("pacemakerd-kill", SHIPPED, cap["crm"]["resources"], notes={"before": before, "after": before}))
    assert any("kept PID" in p for p in judge(same)) and any("restart counter" in p for p in judge(same))
    restarted = {"pids": {n: p + 1000 for n, p in after["pids"].items()}, "restarts": after["restarts"]}
    o = quiet(obs("pacemakerd-kill", SHIPPED, cap["crm"]["resources"], notes={"before": before, "after": restarted}))
    assert any("subdaemons restarted instead of adopted: pacemaker-attrd, pacemaker-based" in p for p in judge(o))
    fenced = quiet(obs("pacemakerd-kill", SHIPPED, cap["crm"]["resources"], fences=[fence(A)],
                       notes={"before": before, "after": after}))
    assert any("fenced vm-node1, which this fault should have spared" in p for p in judge(fenced))


# -- apache-kill-loop ----------------------------------------------------------------------------------------


def kill_loop(policy: FailurePolicy | None, marks: list[float], segments, failcount: int, base) -> Observation:
    o = obs("apache-kill-loop", policy, base, marks=marks, httpd_failcount=failcount)
    o.probes = stream(segments)
    return o


def test_the_loop_follows_the_threshold():
    s = scenarios.SCENARIOS["apache-kill-loop"]
    assert [scenarios.loop_kills(p) for p in (SHIPPED, LOOP3, IN_PLACE)] == [1, 3, 3]
    assert [s.expected_node(A, B, p) for p in (SHIPPED, LOOP3, IN_PLACE)] == [B, B, A]
    assert [s.expected_failcount(p) for p in (SHIPPED, LOOP3, IN_PLACE)] == [1, 3, 3]
    assert s.expected_node(A, B, FailurePolicy(migration_threshold=50)) == A  # beyond LOOP_MAX: in place, 3 kills
    assert "kill 3 brings the failcount to migration_threshold 3" in s.expected_text(LOOP3)
    assert "fails back" in s.expected_text(LOOP3)
    assert "the first kill already bans httpd" in s.expected_text(SHIPPED)
    assert "restarts Apache in place after each of 3 kills" in s.expected_text(IN_PLACE)


def test_three_kills_two_restarts_in_place_then_the_move_passes(cap):
    segs = [(8.0, 10.0, A), (10.0, 11.0, None), (11.0, 12.0, A), (12.0, 13.0, None), (13.0, 14.0, A),
            (14.0, 15.0, None), (15.0, 30.0, B)]
    o = kill_loop(LOOP3, [10.0, 12.0, 14.0], segs, 3, cap["crm"]["resources"])
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.served_after == B and row.httpd_failcount == 3
    assert row.evidence == ("3 kill(s) at +0.0, +2.0, +4.0 s; served after kill 1: vm-node1; after kill 2: vm-node1; "
                            "after kill 3: vm-node2")


def test_a_move_before_the_nth_kill_or_a_missing_restart_is_named(cap):
    early = [(8.0, 10.0, A), (10.0, 11.0, None), (11.0, 30.0, B)]
    o = kill_loop(LOOP3, [10.0], early, 1, cap["crm"]["resources"])
    problems = judge(o)
    assert any("killed 1 time(s), expected 3" in p for p in problems)
    assert any("served by vm-node2 after kill 1 of 3: moved before migration_threshold" in p for p in problems)
    assert any("httpd failcount on vm-node1 is 1, expected 3" in p for p in problems)
    no_restart = [(8.0, 10.0, A), (10.0, 12.5, None), (12.5, 13.0, A), (13.0, 14.5, None), (14.5, 30.0, B)]
    o = kill_loop(LOOP3, [10.0, 12.0, 14.0], no_restart, 3, cap["crm"]["resources"])
    assert judge(o) == ["no client was served by vm-node1 between kill 1 and the next: no restart in place"]


def test_without_a_threshold_every_kill_is_restarted_in_place(cap):
    segs = [(8.0, 10.0, A), (10.0, 11.0, None), (11.0, 12.0, A), (12.0, 13.0, None), (13.0, 14.0, A),
            (14.0, 15.0, None), (15.0, 30.0, A)]
    o = kill_loop(IN_PLACE, [10.0, 12.0, 14.0], segs, 3, cap["crm"]["resources"])
    assert o.expected == A and judge(o) == []
    segs[-1] = (15.0, 30.0, B)
    assert any("moved before migration_threshold" in p for p in judge(kill_loop(IN_PLACE, [10.0, 12.0, 14.0], segs, 3,
                                                                             cap["crm"]["resources"])))


# -- resource-fail -------------------------------------------------------------------------------------------


def test_an_injected_failure_recorded_and_recovered_passes(cap):
    o = obs("resource-fail", LOOP3, cap["crm"]["resources"], httpd_failcount=1,
            cluster=[ClusterSample(9.5, cap["crm"]["resources"], B), ClusterSample(10.3, cap["crm"]["simulated-failure"], B),
                     ClusterSample(12.0, cap["crm"]["resources"], B)])
    o.probes = stream([(8.0, 10.2, A), (10.2, 11.5, None), (11.5, 30.0, A)])
    assert o.expected == A and judge(o) == []
    assert trial_row(o, [], "fast", 1).evidence == "crm_mon listed httpd asyncmon on vm-node1: 'Simulated failure' at +0.3 s"
    # the shipped threshold 1 moves it, as an Apache crash does
    assert scenarios.SCENARIOS["resource-fail"].expected_node(A, B, SHIPPED) == B
    assert "records the injected failure at once" in scenarios.SCENARIOS["resource-fail"].expected_text(SHIPPED)


def test_a_failure_the_cluster_never_recorded_or_no_restart_is_named(cap):
    o = obs("resource-fail", LOOP3, cap["crm"]["resources"], httpd_failcount=0,
            cluster=[ClusterSample(11.0, cap["crm"]["resources"], B)])
    o.probes = stream([(8.0, 30.0, A)])
    problems = judge(o)
    assert any("never listed a failed httpd action on vm-node1" in p for p in problems)
    assert any("never showed httpd failed or stopped" in p for p in problems)
    assert any("no client saw Apache stop" in p for p in problems)
    assert any("httpd failcount on vm-node1 is 0, expected 1" in p for p in problems)


def test_a_primitive_active_on_two_nodes_breaks_every_trial_but_an_expected_split_brain(cap):
    twice = on(cap["crm"]["resources"], "httpd", A, B)
    o = obs("resource-fail", LOOP3, cap["crm"]["resources"], httpd_failcount=1,
            cluster=[ClusterSample(10.3, cap["crm"]["simulated-failure"], B), ClusterSample(11.0, twice, B)])
    o.probes = stream([(8.0, 10.2, A), (10.2, 11.5, None), (11.5, 30.0, A)])
    assert judge(o) == ["crm_mon showed httpd active on vm-node1, vm-node2 at once, 1.0 s after the fault"]
    unfenced = obs("corosync-kill", None, cap["crm"]["resources"], fencing=False,
                   cluster=[ClusterSample(13.0, on(twice, "vip", A, B), A)])
    assert not any("at once" in p for p in judge(unfenced))  # the lesson of corosync-kill without fencing


# -- passive-crash -------------------------------------------------------------------------------------------


def test_the_standby_lost_and_fenced_without_a_client_noticing_passes(cap):
    fenced = cap["crm"]["peer-fenced"]
    assert fenced.nodes[B].state != "online" and fenced.where("vip") == A
    o = quiet(obs("passive-crash", SHIPPED, cap["crm"]["resources"], fences=[fence(B)],
                  cluster=[ClusterSample(12.3, fenced, A)]))
    assert o.fenced_target == B and o.expected == A and judge(o) == []
    assert trial_row(o, [], "fast", 1).evidence == f"crm_mon through {A}: {B} {fenced.nodes[B].state} at +2.3 s"
    assert scenarios.SCENARIOS["passive-crash"].watch_from == "active"


def test_a_standby_crash_the_clients_or_the_cluster_saw_wrongly_is_named(cap):
    o = obs("passive-crash", SHIPPED, cap["crm"]["resources"], fences=[fence(B)],
            cluster=[ClusterSample(12.0, cap["crm"]["resources"], A)])
    o.probes = stream([(8.0, 11.0, A), (11.0, 11.4, None), (11.4, 30.0, A)])
    problems = judge(o)
    assert any("the cluster never saw vm-node2 leave" in p for p in problems)
    assert any("failed probe(s) where no outage was expected" in p for p in problems)
    unfenced = quiet(obs("passive-crash", SHIPPED, cap["crm"]["resources"], fences=[],
                         cluster=[ClusterSample(12.3, cap["crm"]["peer-fenced"], A)]))
    assert any("vm-node2 was never fenced" in p for p in judge(unfenced))


# -- gateway-loss-both ---------------------------------------------------------------------------------------


def gateway_both(cap, stopped: tuple[float, float] = (14.0, 20.0), heal: float | None = 19.5,
                 probes=None, started_early: bool = False) -> Observation:
    run_a, stop, run_b = cap["crm"]["resources"], cap["crm"]["service-stopped"], on(on(cap["crm"]["resources"],
                                                                                      "vip", B), "httpd", B)
    samples = [ClusterSample(t / 4, run_a if t / 4 < stopped[0] else stop if t / 4 < stopped[1] else run_b, B)
               for t in range(40, 120)]
    if started_early:
        samples.append(ClusterSample(16.0, on(stop, "vip", A), B))
        samples.sort(key=lambda c: c.t)
    o = obs("gateway-loss-both", SHIPPED, run_a, cluster=samples, t_heal=heal)
    o.probes = probes or stream([(8.0, 13.5, A), (13.5, 21.0, None), (21.0, 30.0, B)])
    return o


def test_the_service_stops_everywhere_then_starts_where_the_gateway_came_back(cap):
    o = gateway_both(cap)
    assert o.expected == B and judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.served_after == B and row.downtime_s == pytest.approx(7.5, abs=0.05)
    assert row.recover_s == pytest.approx(10.0, abs=0.01)  # counted from the second step on, not a transient move
    assert row.evidence == ("served by vm-node1, then stopped on every node at +4.0 s; vm-node2 regained the gateway "
                            "at +9.5 s, served by vm-node2 from +11.0 s")
    s = scenarios.SCENARIOS["gateway-loss-both"]
    assert s.heal_when is scenarios.service_stopped and s.heal_hold_s > 0


def test_a_service_that_never_stops_or_serves_while_no_node_has_the_gateway_is_named(cap):
    never = gateway_both(cap, stopped=(99.0, 99.0), probes=stream([(8.0, 30.0, A)]))
    problems = judge(never)
    assert any("never stopped the service" in p for p in problems)
    assert any("no client saw the service stop" in p for p in problems)
    served = gateway_both(cap, probes=stream([(8.0, 13.5, A), (13.5, 16.0, None), (16.0, 16.5, A), (16.5, 21.0, None),
                                              (21.0, 30.0, B)]))
    assert any("served by vm-node1 6.0 s after the fault, while no node reached the gateway" in p for p in judge(served))
    early = gateway_both(cap, started_early=True)
    assert any("vip ran on vm-node1 6.0 s after the fault, while no node reached the gateway" in p for p in judge(early))
    no_heal = gateway_both(cap, heal=None)
    assert any("the second step (the gateway back for vm-node2) never came" in p for p in judge(no_heal))


def test_extended_is_its_own_set_beside_default():
    assert [s.name for s in scenarios.select("extended")] == list(scenarios.EXTENDED)
    assert not set(scenarios.EXTENDED) & set(scenarios.DEFAULT)
    assert set(scenarios.EXTENDED) <= {s.name for s in scenarios.select("all", fencing=False)}


def test_bounds_name_the_extended_scenarios_and_the_suite_shows_only_its_own(lab):
    from hakit.failover.suite import FailoverSuite, bounds
    from hakit.profiles import get_profile

    fast = get_profile("fast").resources
    b = bounds(lab, get_profile("fast")).set_index("scenario")
    assert b.loc["gateway-loss-both", "floor_s"] == fast.ping_monitor + fast.ping_dampen
    assert b.loc["apache-kill-loop", "floor_s"] == fast.httpd_monitor  # the shipped threshold: one kill
    assert "migration_threshold 1" in b.loc["apache-kill-loop", "why"]
    suite = FailoverSuite(lab, "extended")
    assert list(suite.bounds()["scenario"]) == list(scenarios.EXTENDED)


# -- a single failure counted twice by a slow node's recurring monitor -----------------------------------------


def recount(cap, results: list[tuple[str, str, str, str]], failcount: int, name: str = "apache-crash") -> Observation:
    """httpd failed once on A and moved to B; crm_mon listed these (op_key, exitstatus, exitreason, last_rc_change) results
    of httpd's failed actions on A during the fault (seen on the all-VM lab under TCG: the 10 s monitor said
    'Failed to access httpd status page.', then 13 s later 'not running', before the stop ran)."""
    proto = cap["crm"]["simulated-failure"]
    (f,) = [x for x in proto.failures if x.resource == "httpd"]
    samples = []
    for i, (key, status, reason, changed) in enumerate(results):
        st = dataclasses.replace(on(proto, "httpd", B), failures=(dataclasses.replace(
            f, op_key=key, task=key.split("_")[1], exitstatus=status, exitreason=reason, last_rc_change=changed),))
        samples.append(ClusterSample(12.0 + i * 5, on(st, "vip", B), B))
    o = obs(name, SHIPPED, cap["crm"]["resources"], httpd_failcount=failcount, cluster=samples)
    o.probes = stream([(8.0, 11.0, A), (11.0, 20.0, None), (20.0, 30.0, B)])
    return o


TCG_RESULTS = [("httpd_monitor_10000", "error", "Failed to access httpd status page.", "Sun Dec  6 17:31:13 2026"),
               ("httpd_monitor_10000", "not running", "", "Sun Dec  6 17:31:26 2026")]


def test_a_failure_recounted_by_the_recurring_monitor_passes_and_says_so(cap):
    o = recount(cap, TCG_RESULTS, failcount=2)
    assert judge(o) == []
    assert trial_row(o, [], "seed", 1).evidence == (
        "failcount 2 for one fault: httpd's recurring monitor on vm-node1 reported 'Failed to access httpd status "
        "page.'; then 'not running' before the recovery stopped it (each changed result counts)")


def test_an_extra_failcount_without_the_monitor_results_to_show_for_it_fails(cap):
    assert "httpd failcount on vm-node1 is 2, expected 1" in judge(recount(cap, TCG_RESULTS[:1], failcount=2))
    probe = [("httpd_monitor_0", "not running", "", "Sun Dec  6 17:31:13 2026"), TCG_RESULTS[1]]  # a probe is not a monitor result
    assert "httpd failcount on vm-node1 is 2, expected 1" in judge(recount(cap, probe, failcount=2))
    assert "httpd failcount on vm-node1 is 3, expected 1" in judge(recount(cap, TCG_RESULTS, failcount=3))
