"""Judging a failover trial: pure functions of what was observed (no I/O, unit-tested).

`runner.observe` collects an `Observation` (the client's probes, the ARP watch, the
crm_mon watch, the fence history, the failcount, the trial's times); `judge` names
every correctness rule it breaks; `trial_row` makes the typed row of the CSV.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..facts.pacemaker import ClusterStatus, FenceEvent
from . import timeline
from .scenarios import Scenario
from .watch import ArpSample, ClusterSample


@dataclass
class Observation:
    """Everything one trial saw, on the monotonic clock of this machine."""

    scenario: Scenario
    fencing: bool
    active: str  # where the service ran before the fault
    other: str
    expected: str  # where it must run at the end of the fault
    fenced_target: str | None  # the node the fault must get fenced (None: no fence expected)
    baseline: ClusterStatus
    probes: list[timeline.ProbeSample] = field(default_factory=list)
    arp: list[ArpSample] = field(default_factory=list)
    cluster: list[ClusterSample] = field(default_factory=list)
    fences: list[FenceEvent] = field(default_factory=list)
    httpd_failcount: int = 0
    t_inject: float = 0.0
    t_restore: float = 0.0
    t_heal: float | None = None
    # The incident's second phase: after the restore, until the cluster is in its normal placement again.
    home: str = ""  # where the service must end the incident: the preferred node, or the survivor (stickiness)
    t_back: float | None = None  # when the cluster was settled there (None: it never was)


@dataclass(frozen=True)
class TrialRow:
    """One row of failover.csv."""

    scenario: str
    profile: str
    trial: int
    fencing: bool
    active: str
    downtime_s: float
    detect_s: float
    recover_s: float
    served_before: str | None
    served_after: str | None
    expected_after: str
    outages: int
    failed_probes: int
    probes: int
    probe_rate_hz: float
    dual_vip_samples: int
    httpd_failcount: int
    fenced: str
    fence_failures: int
    heal_s: float
    failback_s: float  # client downtime after the restore, until the normal placement (0: no move back)
    incident_s: float  # downtime_s + failback_s: what the whole incident cost a client
    ended: str  # how the incident ended: "in place", "back on <node>", "stays on <node> (stickiness)"
    ok: bool
    problems: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _signature(st: ClusterStatus) -> tuple:
    return (
        tuple(sorted((n, s.state) for n, s in st.nodes.items())),
        tuple(sorted((r.id, r.role, r.nodes, r.failed) for r in st.resources)),
        len(st.failures),
        tuple(sorted((n, a.get("pingd")) for n, a in st.attributes.items())),
    )


def detect_recover(cluster: list[ClusterSample], t_inject: float, t_end: float, baseline: ClusterStatus,
                   expected: str) -> tuple[float, float]:
    """When the cluster's view first changed after the fault, and when vip+httpd ran on the expected node again."""
    base_sig = _signature(baseline)
    detect = math.nan
    recover = math.nan
    for s in cluster:
        if s.t < t_inject or s.t >= t_end or s.status is None:
            continue
        if math.isnan(detect) and _signature(s.status) != base_sig:
            detect = s.t - t_inject
        if not math.isnan(detect) and s.status.where("vip") == expected and s.status.where("httpd") == expected \
                and math.isnan(recover):
            recover = s.t - t_inject
    return detect, recover


def failback(o: Observation) -> timeline.Downtime:
    """What a client saw after the restore, until the cluster was back in its normal placement."""
    end = o.t_back if o.t_back is not None else max((p.t for p in o.probes), default=o.t_restore)
    return timeline.downtime(o.probes, o.t_restore, end, end_of_window=end)


def ended(o: Observation) -> str:
    """How the incident ended, in words (for the CSV and the report)."""
    if o.t_back is None:
        return f"not back on {o.home or o.active}"
    last = timeline.last_served(o.probes, o.t_restore, o.t_back) or timeline.last_served(o.probes, o.t_inject, o.t_back)
    if o.home != o.active:
        return f"stays on {o.home} (stickiness)"
    moved = o.expected != o.active or any(n != o.active for n in timeline.served(o.probes, o.t_inject, o.t_back))
    return f"back on {last}" if moved else "in place"


def judge(o: Observation) -> list[str]:
    """Every correctness rule the trial broke, in words (empty: the trial passed)."""
    scn = o.scenario
    dt = timeline.downtime(o.probes, o.t_inject, o.t_restore, end_of_window=o.t_restore)
    dual = [a for a in o.arp if len(a.macs) > 1]
    served_after = timeline.last_served(o.probes, o.t_inject, o.t_restore)
    sb = scn.split_brain(o.fencing)
    problems = []
    if dual and not sb:
        problems.append(f"VIP answered by {len(max(dual, key=lambda a: len(a.macs)).macs)} MACs at once "
                        f"({len(dual)} ARP sample(s)): split brain")
    if sb and not dual:
        problems.append("expected the unfenced split brain (two MACs for the VIP) but never saw it")
    if served_after != o.expected and not sb:
        problems.append(f"served by {served_after} at the end of the fault, expected {o.expected}")
    if not dt.recovered:
        problems.append(f"the service had not recovered {o.t_restore - o.t_inject:.1f} s after the fault")
    if not scn.outage_expected and dt.failed_probes and not sb:
        problems.append(f"{dt.failed_probes} failed probe(s) where no outage was expected")
    if o.home:  # the incident was watched to its end
        fb = failback(o)
        if o.t_back is None:
            problems.append(f"the cluster never returned to its normal placement (service on {o.home}) after the restore")
        elif not fb.recovered:
            problems.append("clients were still failing when the cluster reported its normal placement")
        last = timeline.last_served(o.probes, o.t_restore, o.t_back) if o.t_back is not None else None
        if o.t_back is not None and last not in (None, o.home) and not sb:
            problems.append(f"served by {last} at the end of the incident, expected {o.home}")
        if o.home != o.active and fb.failed_probes:
            problems.append(f"{fb.failed_probes} failed probe(s) after the restore although stickiness keeps the "
                            f"service on {o.home}")
    if scn.failcount_httpd and o.httpd_failcount != scn.failcount_httpd:
        problems.append(f"httpd failcount on {o.active} is {o.httpd_failcount}, expected {scn.failcount_httpd}")
    fenced_ok = [e for e in o.fences if e.ok]
    fenced_failed = [e for e in o.fences if e.status == "failed"]
    if o.fenced_target and not fenced_ok:
        problems.append(f"{o.fenced_target} was never fenced during the fault (no successful fence action in its history)")
    wrong = sorted({e.target for e in fenced_ok if e.target != o.fenced_target})
    if o.fencing and wrong:
        problems.append(f"fenced {', '.join(wrong)}, which this fault should have spared")
    if o.t_heal is not None:
        early = [p for p in o.probes if o.t_inject + 0.5 <= p.t < o.t_heal and p.ok]
        if early:
            problems.append(f"served by {early[0].node} {early[0].t - o.t_inject:.1f} s after the fault, before the "
                            "second step (recovery must wait for fencing to succeed)")
        started = [c for c in o.cluster if o.t_inject <= c.t < o.t_heal and c.status is not None
                   and o.other in c.status.running_on("vip")]
        if started:
            problems.append(f"{o.other} started the VIP {started[0].t - o.t_inject:.1f} s after the fault, "
                            "before fencing succeeded")
        if scn.needs_fencing and not fenced_failed:
            problems.append("no failed fencing attempt was recorded while the BMC was gone")
    return problems


def trial_row(o: Observation, problems: list[str], profile: str, trial: int) -> TrialRow:
    """The CSV row of a judged trial."""
    dt = timeline.downtime(o.probes, o.t_inject, o.t_restore, end_of_window=o.t_restore)
    detect, recover = detect_recover(o.cluster, o.t_inject, o.t_restore, o.baseline, o.expected)
    fenced_ok = sorted({e.target for e in o.fences if e.ok})
    fb = failback(o) if o.home else None
    fb_s = round(fb.seconds, 3) if fb is not None else math.nan
    return TrialRow(
        scenario=o.scenario.name,
        profile=profile,
        trial=trial,
        fencing=o.fencing,
        active=o.active,
        downtime_s=round(dt.seconds, 3),
        detect_s=round(detect, 3),
        recover_s=round(recover, 3),
        served_before=timeline.last_served(o.probes, o.t_inject - 1.5, o.t_inject),
        served_after=timeline.last_served(o.probes, o.t_inject, o.t_restore),
        expected_after=o.expected,
        outages=dt.outages,
        failed_probes=dt.failed_probes,
        probes=dt.probes,
        probe_rate_hz=round(timeline.rate([p for p in o.probes if o.t_inject <= p.t < o.t_restore]), 1),
        dual_vip_samples=sum(1 for a in o.arp if len(a.macs) > 1),
        httpd_failcount=o.httpd_failcount,
        fenced=", ".join(fenced_ok) or "-",
        fence_failures=sum(1 for e in o.fences if e.status == "failed"),
        heal_s=round(o.t_heal - o.t_inject, 3) if o.t_heal is not None else math.nan,
        failback_s=fb_s,
        incident_s=round(dt.seconds + fb_s, 3),
        ended=ended(o) if o.home else "-",
        ok=not problems,
        problems="; ".join(problems),
    )
