"""Failover arithmetic on synthetic probe series, and the runner's pure helpers (no lab needed)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from hakit.facts.pacemaker import ClusterStatus, parse_crm_mon
from hakit.failover import judge, runner
from hakit.failover.timeline import (
    Downtime,
    Outage,
    ProbeSample,
    downtime,
    first_at_or_after,
    last_served,
    outages,
    rate,
    probe_table,
    served,
    what_failed,
)
from hakit.failover.watch import ClusterSample
from hakit.params import Params

CAP = Path(__file__).parent / "fixtures" / "captured"


def ok(t: float, node: str = "vm-node1") -> ProbeSample:
    return ProbeSample(t, True, node, latency=0.01)


def fail(t: float) -> ProbeSample:
    return ProbeSample(t, False, None, error="timed out")


def _status(name: str) -> ClusterStatus:
    return parse_crm_mon((CAP / name).read_text())


# -- outages / downtime -----------------------------------------------------------------------------


def test_no_outage() -> None:
    samples = [ok(0.0), ok(0.25), ok(0.5), ok(0.75)]
    assert outages(samples) == []
    dt = downtime(samples)
    assert dt == Downtime(0.0, 0, 0, 4, True)
    assert dt.success_ratio == 1.0


def test_empty_window() -> None:
    dt = downtime([])
    assert dt == Downtime(0.0, 0, 0, 0, True)
    assert dt.success_ratio == 1.0
    assert outages([]) == [] and served([]) == [] and last_served([]) is None


def test_single_outage_in_the_middle() -> None:
    samples = [ok(0.0), ok(0.5), fail(1.0), fail(1.5), fail(2.0), ok(2.7, "vm-node2"), ok(3.0, "vm-node2")]
    assert outages(samples) == [Outage(1.0, 2.7, 3)]
    assert outages(samples)[0].duration == pytest.approx(1.7)
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(1.7)  # first failed send -> first successful send
    assert (dt.outages, dt.failed_probes, dt.probes, dt.recovered) == (1, 3, 7, True)
    assert dt.success_ratio == pytest.approx(4 / 7)


def test_outage_at_the_start_of_the_window() -> None:
    samples = [fail(0.0), fail(0.2), ok(0.4, "vm-node2"), ok(0.6, "vm-node2")]
    assert outages(samples) == [Outage(0.0, 0.4, 2)]
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(0.4)
    assert (dt.outages, dt.failed_probes, dt.probes, dt.recovered) == (1, 2, 4, True)
    assert dt.success_ratio == pytest.approx(0.5)


def test_outage_at_the_end_never_recovered_counts_to_the_last_probe() -> None:
    samples = [ok(0.0), ok(0.5), fail(1.0), fail(1.5), fail(2.25)]
    runs = outages(samples)
    assert runs == [Outage(1.0, None, 3)]
    assert runs[0].duration is None
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(1.25)  # 1.0 -> last probe sent at 2.25
    assert (dt.outages, dt.failed_probes, dt.probes, dt.recovered) == (1, 3, 5, False)
    assert dt.success_ratio == pytest.approx(0.4)


def test_outage_at_the_end_counts_to_end_of_window() -> None:
    samples = [ok(0.0), ok(0.5), fail(1.0), fail(1.5), fail(2.25)]
    dt = downtime(samples, end_of_window=4.0)
    assert dt.seconds == pytest.approx(3.0)
    assert dt.recovered is False
    # an end_of_window before the failure start never yields negative downtime
    assert downtime(samples, end_of_window=0.5).seconds == 0.0


def test_end_of_window_is_ignored_when_recovered() -> None:
    samples = [ok(0.0), fail(1.0), ok(2.0)]
    assert downtime(samples, end_of_window=10.0).seconds == pytest.approx(1.0)


def test_flapping_is_one_span_from_first_failure_to_final_recovery() -> None:
    samples = [ok(0.0), fail(1.0), fail(1.2), ok(1.4, "vm-node2"), fail(1.6), ok(2.5, "vm-node2"), ok(3.0, "vm-node2")]
    assert outages(samples) == [Outage(1.0, 1.4, 2), Outage(1.6, 2.5, 1)]
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(1.5)  # 1.0 -> 2.5, not 0.4 + 0.9
    assert (dt.outages, dt.failed_probes, dt.probes, dt.recovered) == (2, 3, 7, True)
    assert dt.success_ratio == pytest.approx(4 / 7)


def test_flapping_that_ends_failing_is_not_recovered() -> None:
    samples = [fail(1.0), ok(1.5), fail(2.0), fail(2.5)]
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(1.5)  # 1.0 -> last probe at 2.5
    assert (dt.outages, dt.failed_probes, dt.recovered) == (2, 3, False)


def test_window_bounds_exclude_samples_outside() -> None:
    # failures before t0 and at/after t1 must not count; t0 is inclusive, t1 exclusive
    samples = [fail(-1.0), ok(-0.5), ok(0.0), fail(1.0), ok(2.0), ok(3.0), fail(5.0), fail(6.0)]
    assert outages(samples, 0.0, 5.0) == [Outage(1.0, 2.0, 1)]
    dt = downtime(samples, 0.0, 5.0)
    assert dt.seconds == pytest.approx(1.0)
    assert (dt.outages, dt.failed_probes, dt.probes, dt.recovered) == (1, 1, 4, True)
    # without bounds every sample is in, and the trailing run is still open
    whole = downtime(samples)
    assert (whole.outages, whole.failed_probes, whole.probes, whole.recovered) == (3, 4, 8, False)
    assert whole.seconds == pytest.approx(7.0)  # -1.0 -> last probe at 6.0


def test_window_starting_inside_an_outage() -> None:
    samples = [ok(0.0), fail(1.0), fail(2.0), fail(3.0), ok(4.0)]
    dt = downtime(samples, t0=2.0)
    assert dt.seconds == pytest.approx(2.0)  # first failure seen in the window is at 2.0
    assert (dt.failed_probes, dt.probes) == (2, 3)


def test_unsorted_input_gives_the_same_answer() -> None:
    ordered = [ok(0.0), fail(1.0), fail(1.5), ok(2.0, "vm-node2"), fail(2.5), ok(3.5, "vm-node2")]
    shuffled = [ordered[i] for i in (5, 2, 0, 4, 1, 3)]
    assert outages(shuffled) == [Outage(1.0, 2.0, 2), Outage(2.5, 3.5, 1)]
    assert downtime(shuffled) == downtime(ordered) == Downtime(2.5, 2, 3, 6, True)
    assert served(shuffled) == ["vm-node1", "vm-node2"]


def test_unsorted_unrecovered_uses_the_latest_probe_not_the_last_listed() -> None:
    samples = [fail(3.0), ok(0.0), fail(1.0), fail(2.0)]
    dt = downtime(samples)
    assert dt.seconds == pytest.approx(2.0)  # 1.0 -> 3.0
    assert dt.recovered is False


# -- who served -------------------------------------------------------------------------------------


def test_what_failed_counts_the_clients_errors_and_says_how_slow_the_answers_were_before() -> None:
    refused = "[Errno 111] Connection refused"
    before = [ProbeSample(t / 10, True, "A", latency=lat) for t, lat in enumerate((0.01, 0.02, 0.25, 0.03))]
    samples = before + [fail(1.0), fail(1.1), ProbeSample(1.2, False, None, error=refused), ok(1.3), fail(9.0)]
    # p50 by nearest rank, as load.percentile (the client load's p50) gives it: of 10, 20, 30 and 250 ms, 20
    assert what_failed(samples, 1.0, 5.0) == (f"2 timed out, 1 {refused}; the 4 answers before took p50 "
                                              "20 ms, the slowest 250 ms")
    assert what_failed(samples, 0.0, 5.0) == f"2 timed out, 1 {refused}"  # no answer before: nothing said of them
    assert what_failed([fail(0.0), ProbeSample(0.1, False, None)], 0.0, 1.0) == "1 failed, 1 timed out"


def test_probe_table_puts_every_probe_on_the_fault_clock_and_the_wall_clock_for_the_record() -> None:
    samples = [fail(12.5), ok(9.5), ProbeSample(10.0, True, "vm-node2", latency=0.0123)]
    df = probe_table(samples, t_inject=10.0, wall_offset=1_765_000_000.0)  # 2025-12-06T05:46:40 UTC at t=0
    assert df.columns.tolist() == ["at_s", "wall", "ok", "node", "latency_ms", "error"]
    assert df["at_s"].tolist() == [-0.5, 0.0, 2.5]  # sorted by send time
    assert df["wall"].tolist()[1] == "2025-12-06T05:46:50.000000+00:00"
    assert df["node"].tolist() == ["vm-node1", "vm-node2", ""] and df["ok"].tolist() == [True, True, False]
    assert df["latency_ms"].tolist()[1] == 12.3 and df["error"].tolist()[2] == "timed out"


def test_served_collapses_runs_and_ignores_failures() -> None:
    samples = [ok(0.0, "A"), ok(0.1, "A"), fail(0.2), ok(0.3, "B"), fail(0.4), ok(0.5, "B"), ok(0.6, "A")]
    assert served(samples) == ["A", "B", "A"]
    assert last_served(samples) == "A"


def test_served_failure_between_same_node_does_not_split_the_run() -> None:
    samples = [ok(0.0, "A"), fail(0.1), fail(0.2), ok(0.3, "A")]
    assert served(samples) == ["A"]


def test_served_ignores_successes_without_a_node() -> None:
    samples = [ok(0.0, "A"), ProbeSample(0.1, True, None), ok(0.2, "A")]
    assert served(samples) == ["A"]


def test_served_window_and_order() -> None:
    samples = [ok(2.0, "B"), ok(0.0, "A"), ok(1.0, "A"), ok(3.0, "A")]
    assert served(samples) == ["A", "B", "A"]
    assert served(samples, 0.5, 3.0) == ["A", "B"]  # t1 exclusive: the A at 3.0 is out
    assert last_served(samples, 0.5, 3.0) == "B"
    assert last_served(samples, 10.0, 20.0) is None


# -- rate / first_at_or_after -----------------------------------------------------------------------


def test_rate() -> None:
    assert rate([ok(0.0), ok(0.25), ok(0.5), ok(0.75), ok(1.0)]) == pytest.approx(4.0)
    assert rate([ok(2.0), fail(0.0), ok(1.0)]) == pytest.approx(1.0)  # span 0..2, 2 intervals
    assert rate([ok(0.0), ok(0.1), ok(0.2), ok(2.2)]) == pytest.approx(3 / 2.2)


def test_rate_degenerate() -> None:
    assert rate([]) == 0.0
    assert rate([ok(1.0)]) == 0.0
    assert rate([ok(1.0), ok(1.0)]) == 0.0  # zero span, no division by zero


def test_first_at_or_after() -> None:
    times = [(3.0, True), (0.5, True), (1.0, False), (2.0, True), (1.5, False)]
    assert first_at_or_after(times, 1.0) == 2.0
    assert first_at_or_after(times, 0.0) == 0.5
    assert first_at_or_after(times, 2.0) == 2.0  # inclusive
    assert first_at_or_after(times, 2.5) == 3.0
    assert first_at_or_after(times, 3.5) is None
    assert first_at_or_after([(1.0, False), (2.0, False)], 0.0) is None
    assert first_at_or_after([], 0.0) is None


# -- runner: medians --------------------------------------------------------------------------------


def test_medians_per_scenario_and_profile() -> None:
    df = pd.DataFrame(
        [
            # scenario,     profile, trial, downtime, failback, detect, recover, ok
            ("node-crash", "fast", 1, 2.0, 2.0, 1.0, 2.5, True),
            ("node-crash", "fast", 2, 4.0, 2.2, 1.4, 4.5, False),
            ("node-crash", "fast", 3, 3.0, 2.4, 1.2, 3.1, True),
            ("node-crash", "seed", 1, 7.0, 2.1, 3.5, 8.0, True),
            ("node-crash", "seed", 2, 9.0, 2.3, 3.9, 10.0, True),
            ("httpd-kill", "fast", 1, 0.5, 0.0, 0.2, 0.6, False),
            ("httpd-kill", "fast", 2, 0.7, math.nan, math.nan, 0.9, False),
        ],
        columns=["scenario", "profile", "trial", "downtime_s", "failback_s", "detect_s", "recover_s", "ok"],
    )
    df["incident_s"] = df["downtime_s"] + df["failback_s"]
    m = runner.medians(df)
    assert list(m.columns) == ["scenario", "profile", "trials", "downtime_s", "failback_s", "incident_s",
                               "detect_s", "recover_s", "not_ok"]
    # first-seen order (sort=False), not alphabetical
    assert list(zip(m["scenario"], m["profile"])) == [
        ("node-crash", "fast"),
        ("node-crash", "seed"),
        ("httpd-kill", "fast"),
    ]
    assert list(m["trials"]) == [3, 2, 2]
    assert list(m["downtime_s"]) == pytest.approx([3.0, 8.0, 0.6])
    assert list(m["failback_s"]) == pytest.approx([2.2, 2.2, 0.0])  # a trial never watched to its end: skipped
    assert list(m["incident_s"]) == pytest.approx([5.4, 10.2, 0.5])  # medians of the sums, not sums of medians
    assert list(m["detect_s"]) == pytest.approx([1.2, 3.7, 0.2])  # NaN detect skipped
    assert list(m["recover_s"]) == pytest.approx([3.1, 9.0, 0.75])
    assert list(m["not_ok"]) == [1, 0, 2]


# -- runner: healthy / detect & recover -------------------------------------------------------------


def test_healthy_on_the_preferred_layout(lab: Params) -> None:
    assert lab.preferred_node == "vm-node1"
    assert runner.healthy(_status("crm_mon-2node-resources.xml"), lab) == (True, "healthy")


def test_not_healthy_with_the_peer_offline(lab: Params) -> None:
    good, msg = runner.healthy(_status("crm_mon-2node-peer-offline.xml"), lab)
    assert good is False
    assert "vm-node2 offline" in msg
    assert "ping on ['vm-node1']" in msg and "pingd not set everywhere" in msg
    assert "vip on" not in msg  # vip and httpd are still on the preferred node


def test_not_healthy_when_unreadable(lab: Params) -> None:
    assert runner.healthy(None, lab) == (False, "crm_mon unreadable")


def test_not_healthy_when_nothing_runs(lab: Params) -> None:
    good, msg = runner.healthy(_status("crm_mon-2node-online.xml"), lab)
    assert good is False
    assert "vip on no node, httpd on no node" in msg


def test_signature_tells_layouts_apart() -> None:
    a = judge._signature(_status("crm_mon-2node-resources.xml"))
    assert a == judge._signature(_status("crm_mon-2node-resources.xml"))
    assert a != judge._signature(_status("crm_mon-2node-peer-offline.xml"))


def test_detect_recover() -> None:
    base = _status("crm_mon-2node-resources.xml")
    offline = _status("crm_mon-2node-peer-offline.xml")
    cluster = [
        ClusterSample(9.0, offline, "vm-node2"),  # before the fault: ignored
        ClusterSample(10.5, base, "vm-node2"),  # unchanged
        ClusterSample(11.0, None, "vm-node2"),  # unreadable: ignored
        ClusterSample(12.25, offline, "vm-node2"),  # first change; vip already on vm-node1
        ClusterSample(13.0, offline, "vm-node2"),
    ]
    detect, recover = judge.detect_recover(cluster, 10.0, 20.0, base, "vm-node1")
    assert detect == pytest.approx(2.25)
    assert recover == pytest.approx(2.25)
    # expected on the other node: detected, never recovered
    detect, recover = judge.detect_recover(cluster, 10.0, 20.0, base, "vm-node2")
    assert detect == pytest.approx(2.25)
    assert math.isnan(recover)
    # window ending before the change: neither
    detect, recover = judge.detect_recover(cluster, 10.0, 12.0, base, "vm-node1")
    assert math.isnan(detect) and math.isnan(recover)


def test_not_healthy_while_httpd_is_still_starting(lab: Params, load_fixture: Callable[[str], str]) -> None:
    good, msg = runner.healthy(parse_crm_mon(load_fixture("captured/trixie/crm_mon-httpd-starting.xml")), lab)
    assert good is False and "httpd on vm-node1 (Starting)" in msg
