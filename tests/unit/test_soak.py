"""The soak benchmark's figures from synthetic watcher samples (no lab needed)."""

from __future__ import annotations

import json

import pytest

from hakit.facts.pacemaker import ClusterStatus, FailedAction, ResourceState
from hakit.failover.soak import progress_line, report_lines, summarize
from hakit.failover.timeline import ProbeSample
from hakit.failover.watch import ArpSample, ClusterSample

N1, N2 = "vm-node1", "vm-node2"
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def ok(t: float, node: str = N1) -> ProbeSample:
    return ProbeSample(t, True, node, latency=0.005)


def fail(t: float) -> ProbeSample:
    return ProbeSample(t, False, None, error="timed out")


def probes(t0: float, t1: float, node: str = N1, step: float = 0.04) -> list[ProbeSample]:
    n = round((t1 - t0) / step)
    return [ok(t0 + i * step, node) for i in range(n)]


def arp(t: float, *macs: str) -> ArpSample:
    return ArpSample(t, frozenset(macs))


def fa(op_key: str, node: str = N1, when: str = "2026-11-25 01:12:11Z") -> FailedAction:
    return FailedAction(op_key, node, op_key.split("_")[1], "not running", "", 7, when)


def status(vip_on: tuple[str, ...] = (N1,), failures: tuple[FailedAction, ...] = ()) -> ClusterStatus:
    res = (
        ResourceState("vip", "ocf:heartbeat:IPaddr2", "Started" if vip_on else "Stopped", bool(vip_on), False,
                      True, False, vip_on),
        ResourceState("httpd", "ocf:heartbeat:apache", "Started", True, False, True, False, (N1,)),
    )
    return ClusterStatus(N1, True, False, "ignore", {}, res, {}, failures)


def cs(t: float, st: ClusterStatus | None) -> ClusterSample:
    return ClusterSample(t, st, N2)


def steady_cluster(t0: float, t1: float, **kw) -> list[ClusterSample]:
    st = status(**kw)
    return [cs(t0 + i * 0.25, st) for i in range(round((t1 - t0) / 0.25))]


def test_all_quiet() -> None:
    p = probes(0, 60)
    s = summarize(p, [arp(i * 0.2, MAC1) for i in range(300)], steady_cluster(0, 60), 0.0, 60.0)
    assert s["probes"] == 1500 and s["probes_failed"] == 0
    assert s["success_pct"] == 100.0
    assert s["probe_rate_hz"] == pytest.approx(25.0, rel=0.01)
    assert s["outages"] == 0 and s["longest_outage_s"] == 0.0 and s["outage_total_s"] == 0.0
    assert s["spurious_failovers"] == 0
    assert s["vip_moves"] == s["http_node_changes"] == s["service_restarts"] == s["vip_unplaced"] == 0
    assert s["vip_node_first"] == s["vip_node_last"] == N1 and s["http_nodes"] == [N1]
    assert s["dual_vip_arp_samples"] == 0 and s["arp_samples"] == 300 and s["arp_silent_samples"] == 0
    assert s["cluster_readings"] == 240 and s["cluster_unreadable"] == 0
    assert s["window_s"] == 60.0 and s["events"] == []
    json.dumps(s)  # what goes into soak.json


def test_one_outage_on_the_same_node() -> None:
    # 25 failed probes (1 s) at t=10, then node1 answers again: an outage but no failover.
    p = probes(0, 10) + [fail(10 + i * 0.04) for i in range(25)] + probes(11, 20)
    s = summarize(p, [], [], 0.0, 20.0)
    assert s["probes"] == len(p) == 500
    assert s["probes_failed"] == 25
    assert s["success_pct"] == pytest.approx(95.0)
    assert s["outages"] == 1
    assert s["longest_outage_s"] == pytest.approx(1.0)  # first failure at 10.0 -> first success at 11.0
    assert s["http_node_changes"] == 0 and s["spurious_failovers"] == 0
    assert [e["kind"] for e in s["events"]] == ["outage"] and s["events"][0]["t"] == pytest.approx(10.0)


def test_longest_of_several_outages_and_one_still_failing() -> None:
    p = [ok(0), fail(1), ok(1.2), fail(2), fail(2.5), ok(3), ok(4), fail(5)]
    s = summarize(p, [], [], 0.0, 6.0)
    assert s["outages"] == 3 and s["probes_failed"] == 4
    # 0.2 s, 1.0 s, and the last one counted to the window's end (6.0 - 5.0)
    assert s["longest_outage_s"] == pytest.approx(1.0)
    assert s["outage_total_s"] == pytest.approx(2.2)
    assert "still failing" in s["events"][-1]["detail"]


def test_vip_move_counts_in_the_cluster_and_in_the_client_view() -> None:
    p = probes(0, 10, N1) + [fail(10 + i * 0.04) for i in range(50)] + probes(12, 20, N2)
    cluster = (steady_cluster(0, 10, vip_on=(N1,)) + steady_cluster(10, 11, vip_on=())
               + steady_cluster(11, 20, vip_on=(N2,)))
    s = summarize(p, [], cluster, 0.0, 20.0)
    assert s["vip_moves"] == 1  # node1 -> (nowhere) -> node2 is one move
    assert s["vip_unplaced"] == 1
    assert s["http_node_changes"] == 1
    assert s["service_restarts"] == 0
    assert s["spurious_failovers"] == 2
    assert s["vip_node_first"] == N1 and s["vip_node_last"] == N2 and s["http_nodes"] == [N1, N2]
    assert s["longest_outage_s"] == pytest.approx(2.0)
    kinds = [e["kind"] for e in s["events"]]
    assert kinds == ["outage", "vip-unplaced", "vip-move", "http-node"]
    move = next(e for e in s["events"] if e["kind"] == "vip-move")
    assert move["t"] == pytest.approx(11.0) and move["detail"] == f"{N1} -> {N2}"


def test_vip_restart_in_place_is_not_a_move() -> None:
    cluster = steady_cluster(0, 5) + steady_cluster(5, 6, vip_on=()) + steady_cluster(6, 10)
    s = summarize(probes(0, 10), [], cluster, 0.0, 10.0)
    assert s["vip_moves"] == 0 and s["vip_unplaced"] == 1 and s["spurious_failovers"] == 0


def test_flapping_between_nodes() -> None:
    # The answering node flips four times, the cluster sees the VIP go back and forth, dual ARP during a flip.
    nodes = [N1, N2, N1, N2, N1]
    p = [ok(i * 0.5 + j * 0.04, nodes[i]) for i in range(5) for j in range(12)]
    cluster = [cs(i * 0.5 + 0.1, status(vip_on=(nodes[i],))) for i in range(5)]
    a = [arp(0.0, MAC1), arp(0.45, MAC1, MAC2), arp(0.6, MAC2), arp(0.95, MAC1, MAC2), arp(1.1, MAC1), arp(1.3)]
    s = summarize(p, a, cluster, 0.0, 2.5)
    assert s["http_node_changes"] == 4 and s["vip_moves"] == 4
    assert s["spurious_failovers"] == 8
    assert s["http_nodes"] == nodes
    assert s["dual_vip_arp_samples"] == 2 and s["arp_silent_samples"] == 1 and s["arp_samples"] == 6
    assert s["probes_failed"] == 0 and s["success_pct"] == 100.0
    assert sum(e["kind"] == "dual-vip" for e in s["events"]) == 2


def test_split_brain_reading_is_unplaced_not_a_move() -> None:
    cluster = [cs(0, status(vip_on=(N1,))), cs(1, status(vip_on=(N1, N2))), cs(2, status(vip_on=(N1,)))]
    s = summarize([], [], cluster, 0.0, 3.0)
    assert s["vip_moves"] == 0 and s["vip_unplaced"] == 1
    assert s["events"][0]["detail"] == f"vip on {N1}, {N2}"


def test_new_failed_actions_count_as_restarts() -> None:
    old = fa("httpd_monitor_1000", when="2026-11-25 00:00:00Z")  # there before the soak: not counted
    again = fa("httpd_monitor_1000", when="2026-11-25 00:05:00Z")  # the same monitor failing again: counted
    vip = fa("vip_monitor_1000", node=N1)
    ping = fa("ping-gateway_monitor_10000", node=N2)  # not a service resource: an event, not a restart
    cluster = [
        cs(0, status(failures=(old,))),
        cs(1, status(failures=(old,))),
        cs(2, None),  # an unreadable crm_mon in between
        cs(3, status(failures=(again,))),
        cs(4, status(failures=(again,))),  # still there: once only
        cs(5, status(failures=(again, vip, ping))),
    ]
    s = summarize(probes(0, 6), [], cluster, 0.0, 6.0)
    assert s["service_restarts"] == 2
    assert s["service_restarts_by_resource"] == {"vip": 1, "httpd": 1}
    assert s["spurious_failovers"] == 2
    assert s["cluster_readings"] == 6 and s["cluster_unreadable"] == 1
    kinds = [(e["kind"], e["t"]) for e in s["events"]]
    assert kinds == [("restart", 3.0), ("restart", 5.0), ("failure-other", 5.0)]


def test_window_excludes_samples_outside() -> None:
    p = [fail(-1.0), ok(0.0), ok(1.0), fail(5.0)]
    cluster = [cs(-0.5, status(vip_on=(N2,))), cs(0.5, status()), cs(5.5, status(vip_on=(N2,)))]
    s = summarize(p, [arp(-0.1, MAC1, MAC2), arp(0.1, MAC1)], cluster, 0.0, 5.0)
    assert s["probes"] == 2 and s["probes_failed"] == 0
    assert s["vip_moves"] == 0 and s["dual_vip_arp_samples"] == 0 and s["cluster_readings"] == 1


def test_empty_input() -> None:
    s = summarize([], [], [])
    assert s["probes"] == 0 and s["probes_failed"] == 0
    assert s["success_pct"] is None  # nothing measured is not 100 %
    assert s["probe_rate_hz"] == 0.0 and s["longest_outage_s"] == 0.0 and s["outages"] == 0
    assert s["spurious_failovers"] == 0 and s["vip_node_first"] is None and s["vip_node_last"] is None
    assert s["arp_samples"] == 0 and s["cluster_readings"] == 0 and s["window_s"] == 0.0
    assert s["events"] == [] and s["http_nodes"] == []
    assert "n/a" in progress_line(0.0, s)
    assert any("n/a" in line for line in report_lines(s))


def test_lines_show_the_figures() -> None:
    p = probes(0, 10) + [fail(10 + i * 0.04) for i in range(25)] + probes(11, 60)
    s = summarize(p, [arp(1, MAC1, MAC2)], steady_cluster(0, 60), 0.0, 60.0)
    line = progress_line(60.0, s)
    assert "1.0 min" in line and "1500 probes" in line and "98.333 %" in line and "25 failed" in line
    text = "\n".join(report_lines(s))
    assert "probes sent:              1500" in text
    assert "longest outage:           1.000 s" in text
    assert "dual-VIP ARP samples:     1 of 1" in text
    assert "spurious failovers:       0" in text
    assert "client load" not in text  # a soak without a load says nothing of one
    s.update({"load_hz": 200.0, "load_requests": 120000, "load_errors": 0, "load_p50_ms": 4.5, "load_p99_ms": 61.0})
    assert ("client load:              120000 requests at 200/s asked, 0 failed (goal 0); latency p50 4.5 ms, "
            "p99 61.0 ms") in "\n".join(report_lines(s))
