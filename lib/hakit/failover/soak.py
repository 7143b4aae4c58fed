"""Pure arithmetic for the soak benchmark: what the watchers saw while nothing was injected.

``summarize`` takes the samples of ``HttpProbe``, ``ArpWatch`` and ``ClusterWatch``
(all on one clock) and returns a flat, JSON-ready dict of figures: probes sent
and failed, success ratio, probe rate, the longest outage, dual-VIP ARP samples
and the spurious failovers (VIP moves, HTTP answerer changes, new failed
actions of the service resources). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..facts.pacemaker import FailedAction
from . import timeline
from .timeline import ProbeSample
from .watch import ArpSample, ClusterSample

SERVICE = ("vip", "httpd")  # the resources whose failures count as restarts


def _failure_key(f: FailedAction) -> tuple[str, str, str]:
    # Pacemaker keeps one entry per operation and node, and rewrites last-rc-change when it fails again.
    return (f.op_key, f.node, f.last_rc_change)


def summarize(probes: Sequence[ProbeSample], arp: Sequence[ArpSample], cluster: Sequence[ClusterSample],
              t0: float | None = None, t1: float | None = None,
              resources: Sequence[str] = SERVICE) -> dict[str, Any]:
    """Figures of a soak over [t0, t1) (default: the span of the samples). Event times are relative to t0.

    - success ratio: ``None`` when no probe was sent (nothing measured is not 100 %);
    - longest outage: first failed probe to the next successful one (``timeline.outages``);
      one still failing at the end counts up to ``t1`` (or the last probe sent);
    - VIP moves: changes of ``ClusterStatus.where("vip")`` between readings where it runs on
      exactly one node (vip1 -> nowhere -> vip2 is one move; vip1 -> nowhere -> vip1 is none,
      but is counted in ``vip_unplaced``);
    - HTTP node changes: changes of the node answering successful probes (``timeline.served``);
    - service restarts: failed actions of ``resources`` that were not there at the first reading,
      each (operation, node, last-rc-change) once; a repeat failure of the same monitor counts again.
    """
    all_t = [s.t for s in probes] + [a.t for a in arp] + [c.t for c in cluster]
    lo = t0 if t0 is not None else (min(all_t) if all_t else 0.0)
    hi = t1 if t1 is not None else (max(all_t) + 1e-9 if all_t else lo)  # the last sample is inside
    pr = sorted((s for s in probes if lo <= s.t < hi), key=lambda s: s.t)
    ar = sorted((a for a in arp if lo <= a.t < hi), key=lambda a: a.t)
    cl = sorted((c for c in cluster if lo <= c.t < hi), key=lambda c: c.t)
    events: list[dict[str, Any]] = []

    def event(t: float, kind: str, detail: str) -> None:
        events.append({"t": round(t - lo, 3), "kind": kind, "detail": detail})

    # -- the client: probes, outages, who answered
    failed = sum(1 for s in pr if not s.ok)
    runs = timeline.outages(pr)
    end_of_window = t1 if t1 is not None else (pr[-1].t if pr else lo)
    durations = []
    for o in runs:
        d = o.duration if o.duration is not None else max(0.0, end_of_window - o.start)
        durations.append(d)
        event(o.start, "outage", f"{o.failed} failed probe(s), {d:.3f} s"
              + ("" if o.end is not None else ", still failing at the end"))
    answered = timeline.served(pr)
    http_changes = max(0, len(answered) - 1)
    prev_node = None
    for s in pr:
        if s.ok and s.node:
            if prev_node is not None and s.node != prev_node:
                event(s.t, "http-node", f"{prev_node} -> {s.node}")
            prev_node = s.node

    # -- ARP: two MACs at once is two nodes holding the VIP
    dual = [a for a in ar if len(a.macs) > 1]
    silent = [a for a in ar if not a.macs]
    for a in dual:
        event(a.t, "dual-vip", ", ".join(sorted(a.macs)))

    # -- the cluster's view: VIP placement and new failed actions
    readable = [c for c in cl if c.status is not None]
    vip_moves = 0
    vip_unplaced = 0
    first_vip: str | None = None
    last_vip: str | None = None
    placed = True
    restarts = 0
    restarts_by: dict[str, int] = {r: 0 for r in resources}
    seen: set[tuple[str, str, str]] = set()
    if readable:
        seen = {_failure_key(f) for f in readable[0].status.failures}  # type: ignore[union-attr]
    for c in readable:
        st = c.status
        assert st is not None
        where = st.where("vip")
        if where is None:
            if placed:
                vip_unplaced += 1
                on = st.running_on("vip")
                event(c.t, "vip-unplaced", f"vip on {', '.join(on) if on else 'no node'}")
            placed = False
        else:
            placed = True
            if last_vip is not None and where != last_vip:
                vip_moves += 1
                event(c.t, "vip-move", f"{last_vip} -> {where}")
            last_vip = where
            first_vip = first_vip or where
        for f in st.failures:
            k = _failure_key(f)
            if k in seen:
                continue
            seen.add(k)
            rid = f.resource
            if rid not in restarts_by:
                event(c.t, "failure-other", f"{f.op_key} on {f.node}: {f.exitstatus}")
                continue
            restarts += 1
            restarts_by[rid] += 1
            event(c.t, "restart", f"{f.op_key} on {f.node}: {f.exitstatus}")

    events.sort(key=lambda e: e["t"])
    return {
        "window_s": round(max(0.0, hi - lo), 3),
        "probes": len(pr),
        "probes_failed": failed,
        "success_pct": None if not pr else round(100.0 * (len(pr) - failed) / len(pr), 4),
        "probe_rate_hz": round(timeline.rate(pr), 2),
        "outages": len(runs),
        "longest_outage_s": round(max(durations, default=0.0), 3),
        "outage_total_s": round(sum(durations, 0.0), 3),
        "vip_moves": vip_moves,
        "http_node_changes": http_changes,
        "service_restarts": restarts,
        "service_restarts_by_resource": restarts_by,
        "spurious_failovers": vip_moves + http_changes + restarts,
        "vip_unplaced": vip_unplaced,
        "vip_node_first": first_vip,
        "vip_node_last": last_vip,
        "http_nodes": answered,
        "arp_samples": len(ar),
        "dual_vip_arp_samples": len(dual),
        "arp_silent_samples": len(silent),
        "cluster_readings": len(cl),
        "cluster_unreadable": len(cl) - len(readable),
        "events": events,
    }


def progress_line(elapsed_s: float, s: dict[str, Any]) -> str:
    """One line for the once-a-minute progress report."""
    ratio = "n/a" if s["success_pct"] is None else f"{s['success_pct']:.3f} %"
    return (f"{elapsed_s / 60:5.1f} min: {s['probes']} probes, success {ratio}, "
            f"{s['probes_failed']} failed, spurious failovers so far {s['spurious_failovers']} "
            f"(vip moves {s['vip_moves']}, http node changes {s['http_node_changes']}, "
            f"restarts {s['service_restarts']}), dual-VIP ARP {s['dual_vip_arp_samples']}")


def report_lines(s: dict[str, Any]) -> list[str]:
    """The final figures, one per line (goals in brackets)."""
    ratio = "n/a (no probe sent)" if s["success_pct"] is None else f"{s['success_pct']:.3f} %"
    by = ", ".join(f"{k} {v}" for k, v in s["service_restarts_by_resource"].items())
    return [
        f"soak window:              {s['window_s'] / 60:.2f} min",
        f"probes sent:              {s['probes']} ({s['probe_rate_hz']:.1f} Hz achieved)",
        f"probes failed:            {s['probes_failed']} in {s['outages']} outage(s)",
        f"success ratio:            {ratio} (goal 100 %)",
        f"longest outage:           {s['longest_outage_s']:.3f} s (total {s['outage_total_s']:.3f} s; goal 0)",
        f"spurious failovers:       {s['spurious_failovers']} (goal 0): vip moves {s['vip_moves']}, "
        f"http node changes {s['http_node_changes']}, service restarts {s['service_restarts']} ({by})",
        f"vip placement:            {s['vip_node_first']} -> {s['vip_node_last']}; "
        f"ran on no single node {s['vip_unplaced']} time(s)",
        f"dual-VIP ARP samples:     {s['dual_vip_arp_samples']} of {s['arp_samples']} (goal 0); "
        f"no answer {s['arp_silent_samples']}",
        f"cluster readings:         {s['cluster_readings']} ({s['cluster_unreadable']} unreadable)",
    ] + ([f"client load:              {s['load_requests']} requests at {s['load_hz']:g}/s asked, "
          f"{s['load_errors']} failed (goal 0); latency p50 {s['load_p50_ms']:.1f} ms, p99 {s['load_p99_ms']:.1f} ms"]
         if "load_requests" in s else [])
