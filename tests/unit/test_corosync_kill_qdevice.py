"""corosync-kill on a cluster with a quorum device: the catalogue's variant and its judging are pure.

Captured on Debian 13 lab nodes (params/lab-qdevice.yaml): after `kill -9` of corosync, systemd restarts
corosync-qdevice.service, whose Requires= starts corosync again (0.3-0.8 s later), and pacemakerd respawns
its daemons; the node either rejoins unfenced or its peer fences it first. Both are passes; anything else is not.
"""

from __future__ import annotations

import dataclasses

import pytest

from hakit.facts.pacemaker import FenceEvent, parse_crm_mon
from hakit.failover import scenarios
from hakit.failover.context import parse_daemons
from hakit.failover.judge import Observation, judge, trial_row
from hakit.failover.timeline import ProbeSample
from hakit.failover.watch import ClusterSample
from hakit.params import FailurePolicy

A, B = "vm-node1", "vm-node2"
KILLED = 1796576622.345  # the kill's wall clock in the captures (17:03:42.345 UTC)


@pytest.fixture(scope="module")
def cap(load_fixture):
    unit = {k: scenarios.parse_corosync_unit(load_fixture(f"captured/trixie/{name}")) for k, name in (
        ("before", "corosync-unit-before-kill.txt"), ("after", "corosync-unit-after-kill.txt"))}
    ps = {k: parse_daemons(load_fixture(f"captured/trixie/{name}")) for k, name in (
        ("before", "pacemaker-daemons-before-corosync-kill.txt"),
        ("after", "pacemaker-daemons-after-corosync-kill.txt"))}
    crm = parse_crm_mon(load_fixture("captured/trixie/crm_mon-2node-resources.xml"))
    return {"unit": unit, "ps": ps, "crm": crm}


def test_the_captures_show_corosync_restarted_by_systemd_and_a_new_controller(cap):
    before, after = cap["unit"]["before"], cap["unit"]["after"]
    assert before == {"active": True, "started": pytest.approx(1796576577.070435), "qdevice_restarts": 0}
    assert after["active"] and after["qdevice_restarts"] == 1
    assert 0 < after["started"] - KILLED < 1.0  # 0.77 s after the kill
    assert not scenarios.corosync_restarted(before, KILLED) and scenarios.corosync_restarted(after, KILLED)
    assert not scenarios.corosync_restarted(after, None) and not scenarios.corosync_restarted(None, KILLED)
    ps_before, ps_after = cap["ps"]["before"], cap["ps"]["after"]
    assert ps_after["pids"]["pacemakerd"] == ps_before["pids"]["pacemakerd"]  # pacemakerd lives on ...
    assert scenarios.controller_respawned(ps_before, ps_after)  # ... and starts a new controller
    assert not scenarios.controller_respawned(ps_before, ps_before)
    assert not scenarios.controller_respawned(None, ps_after)


def test_a_stopped_or_never_started_unit_is_not_back():
    never = scenarios.parse_corosync_unit("ExecMainStartTimestamp=\nActiveState=inactive\nqdevice_restarts=\n")
    assert never == {"active": False, "started": None, "qdevice_restarts": None}
    failed = scenarios.parse_corosync_unit(
        "ExecMainStartTimestamp=Sun 2026-12-06 17:03:43.114941 UTC\nActiveState=failed\nqdevice_restarts=0\n")
    assert not scenarios.corosync_restarted(failed, KILLED)


def test_only_a_cluster_with_a_quorum_device_gets_the_variant():
    plain = scenarios.select("corosync-kill", fencing=True)[0]
    dev = scenarios.select("corosync-kill", fencing=True, qdevice=True)[0]
    assert plain is scenarios.SCENARIOS["corosync-kill"] and plain.rejoined is None
    assert dev.rejoined is not None and "Requires=corosync.service" in dev.expected
    assert dev.fenced_node(True, A, B) == A  # fenced first: judged as without a device
    assert not dev.split_brain(False)  # the node comes back before its peer can start a second copy
    assert all(s.rejoined is None for s in scenarios.select("all", fencing=True, qdevice=True)
               if s.name != "corosync-kill")


def probes(segments: list[tuple[float, float, str | None]]) -> list[ProbeSample]:
    out = []
    for t0, t1, node in segments:
        for i in range(round((t1 - t0) / 0.04)):
            out.append(ProbeSample(round(t0 + i * 0.04, 3), node is not None, node, error="" if node else "timed out"))
    return out


def trial(cap, fences=(), rejoined_after: float | None = 3.5, after=True, end_on=A) -> Observation:
    (scn,) = scenarios.select("corosync-kill", fencing=True, qdevice=True)
    fenced = fences and fences[0].target == A
    o = Observation(scn, True, A, B, B if fenced else end_on, A if fenced else None, cap["crm"],
                    t_inject=10.0, t_restore=30.0, policy=FailurePolicy(), fences=list(fences))
    # the rejoin as seen here: served on, then a move to the peer and back (pingd lost with attrd)
    o.probes = probes([(8.0, 13.8, A), (13.8, 14.8, None), (14.8, 17.8, B), (17.8, 20.3, None), (20.3, 30.0, end_on)])
    o.cluster = [ClusterSample(11.0 + i * 0.25, cap["crm"], B) for i in range(4)]
    o.notes = {"killed_wall": KILLED, "before": cap["ps"]["before"]}
    if after:
        o.notes |= {"corosync_after": cap["unit"]["after"], "after": cap["ps"]["after"]}
    if rejoined_after is not None:
        o.notes["rejoined_after_s"] = rejoined_after
    return o


def test_a_node_back_unfenced_with_the_evidence_passes(cap):
    o = trial(cap)
    assert judge(o) == []
    row = trial_row(o, [], "fast", 1)
    assert row.fenced == "-" and row.outages == 2 and row.served_after == A
    assert row.evidence == ("corosync started again 0.77 s after the kill (corosync-qdevice restarted 1 time(s) in "
                            "all); vm-node1 back unfenced, controller respawned, at +3.5 s")


def test_recover_is_when_the_service_came_back_to_stay(cap):
    o = trial(cap)
    away = dataclasses.replace(cap["crm"], resources=tuple(
        dataclasses.replace(r, nodes=(B,)) if r.id in ("vip", "httpd") else r for r in cap["crm"].resources))
    assert away.service_node() == B and cap["crm"].service_node() == A
    # crm_mon: still on A when the peer noticed, then on B (the move), then on A again (the failback)
    o.cluster = [ClusterSample(11.0, cap["crm"], B), ClusterSample(15.0, away, B), ClusterSample(20.5, cap["crm"], B)]
    row = trial_row(o, [], "fast", 1)
    assert row.recover_s == 10.5
    # never left (only pingd changed on A): recover stays the first sample on A once the peer noticed
    o.cluster = [ClusterSample(11.0, cap["crm"], B),
                 ClusterSample(12.0, dataclasses.replace(cap["crm"], attributes={B: {"pingd": "1000"}}), B)]
    assert trial_row(o, [], "fast", 1).recover_s == 2.0


def test_a_node_fenced_first_is_judged_as_without_a_device(cap):
    o = trial(cap, fences=[FenceEvent(A, "off", "success", B, B, KILLED + 2.0)], after=False, end_on=B)
    assert judge(o) == []
    assert trial_row(o, [], "fast", 1).evidence == "vm-node1 fenced before it came back"


def test_neither_fenced_nor_back_is_a_failure(cap):
    o = trial(cap, after=False, rejoined_after=None)
    assert judge(o) == ["vm-node1 was not fenced, and its corosync did not run again after the kill",
                        "vm-node1 was neither fenced nor seen back in the cluster during the fault"]
    o = trial(cap)
    o.notes["after"] = cap["ps"]["before"]  # corosync back, but the same controller: pacemaker never rejoined
    assert judge(o) == ["vm-node1's corosync came back, but pacemakerd never respawned its controller"]


def test_fencing_the_survivor_is_still_a_failure(cap):
    o = trial(cap, fences=[FenceEvent(B, "off", "success", A, A, KILLED + 2.0)])
    assert "fenced vm-node2, which this fault should have spared" in judge(o)
