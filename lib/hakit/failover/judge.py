"""Judging a failover trial: pure functions of what was observed (no I/O, unit-tested).

`runner.observe` collects an `Observation` (the client's probes, the ARP watch, the
crm_mon watch, the fence history, the failcount, the trial's times); `judge` names
every correctness rule it breaks; `trial_row` makes the typed row of the CSV.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..facts.pacemaker import ClusterStatus, FailedAction, FenceEvent
from ..params import FailurePolicy
from . import timeline
from .load import LoadSummary
from .scenarios import Scenario, controller_respawned, corosync_restarted, loop_kills, loop_moves, service_stopped
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
    wall_offset: float = 0.0  # wall clock minus the monotonic clock of the samples (aligns them with journals)
    t_restore: float = 0.0
    t_heal: float | None = None
    # The incident's second phase: after the restore, until the cluster is in its normal placement again.
    home: str = ""  # where the service must end the incident: the preferred node, or the survivor (stickiness)
    t_back: float | None = None  # when the cluster was settled there (None: it never was)
    policy: FailurePolicy | None = None  # the cluster's failure policy (None: pacemaker's defaults)
    httpd_cloned: bool = False  # the cloned-apache layout: httpd runs on every node, only the VIP moves
    marks: list[float] = field(default_factory=list)  # when each step of a repeated fault was made
    notes: dict[str, Any] = field(default_factory=dict)  # what the scenario read on the nodes (its evidence)
    load: LoadSummary | None = None  # what the client load saw from the fault to the restore (None: no load)
    load_hz: float = math.nan


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
    evidence: str  # what the scenario's own rules were judged on, in words ("" when it has none)
    ok: bool
    problems: str
    logs: str = ""  # the trial's corosync/pacemaker journals in the record (a folder of <node>.log)
    # The client load during the fault (failover.load; nan/0 when the trial ran without one)
    load_hz: float = math.nan  # asked for
    load_requests: int = 0
    load_errors: int = 0
    load_p50_ms: float = math.nan
    load_p99_ms: float = math.nan

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
                   expected: str, recover_from: float | None = None,
                   httpd_cloned: bool = False) -> tuple[float, float]:
    """When the cluster's view first changed after the fault, and when vip+httpd had started on the expected
    node again (their starts finished, not still ``Starting``; not before ``recover_from``: a two-step fault
    is over only after its second step). With Apache cloned: the VIP started there beside an httpd instance."""
    base_sig = _signature(baseline)
    detect = math.nan
    recover = math.nan
    for s in cluster:
        if s.t < t_inject or s.t >= t_end or s.status is None:
            continue
        if math.isnan(detect) and _signature(s.status) != base_sig:
            detect = s.t - t_inject
        if recover_from is not None and s.t < recover_from:
            continue
        if not math.isnan(detect) and s.status.service_node(httpd_cloned) == expected and math.isnan(recover):
            recover = s.t - t_inject
    return detect, recover


def last_arrival(cluster: list[ClusterSample], t_inject: float, t_end: float, node: str,
                 httpd_cloned: bool = False) -> float | None:
    """When the service last came (back) to ``node`` between the fault and ``t_end``, after crm_mon had shown
    it elsewhere or not started; None if it never left (s after the fault)."""
    seen_away, arrived = False, None
    for s in cluster:
        if s.t < t_inject or s.t >= t_end or s.status is None:
            continue
        here = s.status.service_node(httpd_cloned) == node
        if not here:
            seen_away, arrived = True, None
        elif seen_away and arrived is None:
            arrived = s.t - t_inject
    return arrived


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
    blip = scn.max_blip_s and dt.recovered and dt.outages == 1 and dt.seconds <= scn.max_blip_s
    if not scn.outage_expected and dt.failed_probes and not sb and not blip:
        problems.append(f"{dt.failed_probes} failed probe(s) where no outage was expected"
                        + (f" (one gap of at most {scn.max_blip_s:.1f} s is accepted; seen {dt.seconds:.2f} s in "
                           f"{dt.outages} gap(s))" if scn.max_blip_s else "")
                        + f": {timeline.what_failed(o.probes, o.t_inject, o.t_restore)}")
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
    want_failcount = scn.expected_failcount(o.policy)
    if want_failcount and o.httpd_failcount != want_failcount and not monitor_recounted(o):
        problems.append(f"httpd failcount on {o.active} is {o.httpd_failcount}, expected {want_failcount}")
    if not sb:  # CTS's first rule: a primitive runs on one node at most, as the cluster itself reports
        for rsc in ("vip",) if o.httpd_cloned else ("vip", "httpd"):  # a clone runs everywhere by design
            twice = [c for c in o.cluster if o.t_inject <= c.t and c.status is not None
                     and len(c.status.running_on(rsc)) > 1]
            if twice:
                problems.append(f"crm_mon showed {rsc} active on {', '.join(twice[0].status.running_on(rsc))} at "
                                f"once, {twice[0].t - o.t_inject:.1f} s after the fault")
    fenced_ok = [e for e in o.fences if e.ok]
    fenced_failed = [e for e in o.fences if e.status == "failed"]
    if o.fenced_target and not fenced_ok:
        problems.append(f"{o.fenced_target} was never fenced during the fault (no successful fence action in its history)")
    wrong = sorted({e.target for e in fenced_ok if e.target != o.fenced_target})
    if o.fencing and wrong:
        problems.append(f"fenced {', '.join(wrong)}, which this fault should have spared")
    if o.t_heal is not None and scn.needs_fencing:
        early = [p for p in o.probes if o.t_inject + 0.5 <= p.t < o.t_heal and p.ok]
        if early:
            problems.append(f"served by {early[0].node} {early[0].t - o.t_inject:.1f} s after the fault, before the "
                            "second step (recovery must wait for fencing to succeed)")
        started = [c for c in o.cluster if o.t_inject <= c.t < o.t_heal and c.status is not None
                   and o.other in c.status.running_on("vip")]
        if started:
            problems.append(f"{o.other} started the VIP {started[0].t - o.t_inject:.1f} s after the fault, "
                            "before fencing succeeded")
        if not fenced_failed:
            problems.append("no failed fencing attempt was recorded while the BMC was gone")
    rules = RULES.get(scn.name)
    if rules is not None:
        problems += rules(o)
    return problems


# -- the extended scenarios' own rules: each reads the evidence its fault left -------------------------------


def _pacemakerd_respawned(o: Observation) -> list[str]:
    before, after = o.notes.get("before"), o.notes.get("after")
    if not before or "pacemakerd" not in before["pids"]:
        return [f"pacemakerd was not running on {o.active} before the kill"]
    if not after or "pacemakerd" not in after["pids"]:
        return [f"no pacemakerd ran on {o.active} after the fault (systemd did not restart it)"]
    problems = []
    if after["pids"]["pacemakerd"] == before["pids"]["pacemakerd"]:
        problems.append(f"pacemakerd on {o.active} kept PID {before['pids']['pacemakerd']}: the kill did not take")
    if before["restarts"] is not None and (after["restarts"] or 0) <= before["restarts"]:
        problems.append(f"systemd's restart counter of pacemaker.service stayed at {before['restarts']}")
    subs = {n: p for n, p in before["pids"].items() if n != "pacemakerd"}
    changed = sorted(n for n, p in subs.items() if after["pids"].get(n) != p)
    if not subs:
        problems.append(f"no pacemaker subdaemon was running on {o.active} before the kill")
    elif changed:
        problems.append(f"subdaemons restarted instead of adopted: {', '.join(changed)}")
    return problems


def _kills_then_move(o: Observation) -> list[str]:
    n, moves, k = loop_kills(o.policy), loop_moves(o.policy), len(o.marks)
    problems = []
    if k != n:
        problems.append(f"Apache was killed {k} time(s), expected {n} "
                        + ("(the move came early, or a restart in place never came)" if k < n else ""))
    ends = list(o.marks[1:]) + [o.t_restore]
    for i, (a, b) in enumerate(zip(o.marks, ends), start=1):
        if moves and i >= n:
            continue  # the Nth kill: the move (the served_after rule checks where it went)
        nodes = timeline.served(o.probes, a, b)
        if o.other in nodes:
            problems.append(f"served by {o.other} after kill {i} of {n}: moved before migration_threshold was reached")
        if o.active not in nodes:
            problems.append(f"no client was served by {o.active} between kill {i} and the "
                            f"{'next' if i < len(o.marks) else 'end of the fault'}: no restart in place")
    return problems


def _httpd_failures(o: Observation) -> list[tuple[float, FailedAction]]:
    """Failed httpd actions on the active node that crm_mon listed after the fault, with when it first did."""
    seen: dict[str, tuple[float, FailedAction]] = {}
    for c in o.cluster:
        if c.t >= o.t_inject and c.status is not None:
            for f in c.status.failures:
                if f.resource == "httpd" and f.node == o.active:
                    seen.setdefault(f.op_key + f.last_rc_change, (c.t, f))
    return sorted(seen.values(), key=lambda x: x[0])


def monitor_recounted(o: Observation) -> bool:
    """A single failure counted more than once, by pacemaker's own rule: every change in a recurring monitor's
    result is a new failure, so on a node slower than httpd's monitor interval (TCG VMs) the failed instance's
    monitor can report again before the recovery stops it ('Error occurred', then 'not running': failcount 2).
    True when the failcount is above the expected one, the fault is not a repeated one, and every failure counted
    is a distinct recurring-monitor result on the active node that crm_mon listed during the fault."""
    want = o.scenario.expected_failcount(o.policy)
    if o.scenario.repeats or not want or o.httpd_failcount <= want:
        return False
    seen = [f for _, f in _httpd_failures(o)]
    return len(seen) == o.httpd_failcount and all(f.task == "monitor" and not f.op_key.endswith("_0") for f in seen)


def _failure_recorded(o: Observation) -> list[str]:
    seen = [c for c in o.cluster if c.t >= o.t_inject and c.status is not None]
    problems = []
    if not _httpd_failures(o):
        problems.append(f"crm_mon never listed a failed httpd action on {o.active} after `crm_resource --fail`")
    if not any(any(r.failed for r in c.status.instances("httpd")) or o.active not in c.status.running_on("httpd")
               for c in seen):
        problems.append("crm_mon never showed httpd failed or stopped: no recovery was seen")
    if not timeline.downtime(o.probes, o.t_inject, o.t_restore).failed_probes:
        problems.append("no client saw Apache stop: the recovery did not restart it")
    return problems


def _standby_lost(o: Observation) -> list[str]:
    seen = [c for c in o.cluster if o.t_inject <= c.t < o.t_restore and c.status is not None]
    if not any(o.other in c.status.nodes and c.status.nodes[o.other].state != "online" for c in seen):
        return [f"the cluster never saw {o.other} leave (crm_mon through {o.active})"]
    return []


def _stopped_at(o: Observation) -> float | None:
    """When the cluster first showed the service stopped on every node, between the fault and its second step."""
    until = o.t_heal if o.t_heal is not None else o.t_restore
    for c in o.cluster:
        if o.t_inject <= c.t < until and c.status is not None and service_stopped(c.status):
            return c.t
    return None


def _stops_until_a_node_regains(o: Observation) -> list[str]:
    t_stop = _stopped_at(o)
    problems = []
    if t_stop is None:
        problems.append("the cluster never stopped the service although no node reached the gateway")
    if o.t_heal is None:
        problems.append(f"the second step (the gateway back for {o.other}) never came")
    if t_stop is not None and o.t_heal is not None:
        served = [p for p in o.probes if t_stop <= p.t < o.t_heal and p.ok]
        if served:
            problems.append(f"served by {served[0].node} {served[0].t - o.t_inject:.1f} s after the fault, while no "
                            "node reached the gateway")
        started = [c for c in o.cluster if t_stop <= c.t < o.t_heal and c.status is not None
                   and c.status.running_on("vip")]
        if started:
            problems.append(f"vip ran on {', '.join(started[0].status.running_on('vip'))} "
                            f"{started[0].t - o.t_inject:.1f} s after the fault, while no node reached the gateway")
    if not timeline.downtime(o.probes, o.t_inject, o.t_restore).failed_probes:
        problems.append("no client saw the service stop")
    return problems


def _quorum_without_device(o: Observation) -> list[str]:
    """qnetd-loss: the nodes saw the device's vote go, kept quorum meanwhile, and had it back after the restore."""
    problems = []
    if o.notes.get("device_lost_after_s") is None:
        problems.append(f"{o.active} still counted the quorum device's vote while its host was off: the fault "
                        "never reached the nodes")
    elif o.notes.get("quorate_without_device") is not True:
        problems.append(f"{o.active} lost quorum without the quorum device (its own votes should keep it)")
    if o.notes.get("device_back_after_s") is None:
        problems.append("the quorum device's vote did not come back after its host was powered on")
    return problems


def _no_quorum_until_device_back(o: Observation) -> list[str]:
    """qnetd-then-node-loss: after the second power cut the survivor lost quorum, and neither served nor
    started the VIP nor fenced before the qnetd host was back (the second step)."""
    if not o.marks or o.t_heal is None:
        return ["the second power cut or the qnetd host's return never happened"]
    cut, back = o.marks[0], o.t_heal
    problems = []
    if not any(c.status is not None and not c.status.quorate for c in o.cluster if cut <= c.t < back):
        problems.append(f"{o.other} never showed lost quorum between the node's power cut and qnetd's return")
    served = [p for p in o.probes if cut + 0.5 <= p.t < back and p.ok]
    if served:
        problems.append(f"served by {served[0].node} {served[0].t - cut:.1f} s after the node's power cut, while "
                        "the survivor had no quorum")
    wall_back = o.notes.get("qnetd_back_wall")
    early = [e for e in o.fences if e.ok and e.completed is not None and wall_back is not None and e.completed < wall_back]
    if early:
        problems.append(f"{early[0].target} was fenced before the qnetd host was back (without quorum)")
    return problems


def _active_fenced(o: Observation) -> bool:
    return any(e.ok and e.target == o.active for e in o.fences)


def _fenced_or_back(o: Observation) -> list[str]:
    """corosync-kill where the node may come back (a quorum device): it was fenced, or its corosync was
    restarted by systemd and pacemakerd respawned its controller (the node rejoined unfenced)."""
    if o.scenario.rejoined is None or _active_fenced(o):
        return []  # the catalogue's own case: fencing is judged by the common rules
    problems = []
    if not corosync_restarted(o.notes.get("corosync_after"), o.notes.get("killed_wall")):
        problems.append(f"{o.active} was not fenced, and its corosync did not run again after the kill")
    elif not controller_respawned(o.notes.get("before"), o.notes.get("after")):
        problems.append(f"{o.active}'s corosync came back, but pacemakerd never respawned its controller")
    if o.fencing and o.notes.get("rejoined_after_s") is None:
        problems.append(f"{o.active} was neither fenced nor seen back in the cluster during the fault")
    return problems


RULES: dict[str, Callable[[Observation], list[str]]] = {
    "corosync-kill": _fenced_or_back,
    "pacemakerd-kill": _pacemakerd_respawned,
    "apache-kill-loop": _kills_then_move,
    "resource-fail": _failure_recorded,
    "passive-crash": _standby_lost,
    "gateway-loss-both": _stops_until_a_node_regains,
    "qnetd-loss": _quorum_without_device,
    "qnetd-then-node-loss": _no_quorum_until_device_back,
}


def evidence(o: Observation) -> str:
    """What the scenario's own rules looked at, in words, for the CSV and the report."""
    name = o.scenario.name
    if name == "qnetd-loss":
        lost, back = o.notes.get("device_lost_after_s"), o.notes.get("device_back_after_s")
        return (f"{o.active} saw the device's vote go {lost if lost is not None else '(never)'} s after the power cut "
                f"(quorate meanwhile: {o.notes.get('quorate_without_device')}); vote back "
                f"{back if back is not None else '(never)'} s after power-on")
    if name == "qnetd-then-node-loss" and o.marks and o.t_heal is not None:
        lost = next((c.t for c in o.cluster if c.t >= o.marks[0] and c.status is not None and not c.status.quorate), None)
        up = next((p.t for p in o.probes if p.t >= o.t_heal and p.ok), None)
        return (f"node power-cut {o.marks[0] - o.t_inject:.1f} s after qnetd's; {o.other} without quorum "
                + (f"{lost - o.marks[0]:.1f} s after it" if lost is not None else "(never seen)")
                + f"; qnetd back at +{o.t_heal - o.marks[0]:.1f} s; served again "
                + (f"{up - o.t_heal:.1f} s after that" if up is not None else "(never)"))
    if name == "corosync-kill" and o.scenario.rejoined is not None:
        if _active_fenced(o):
            return f"{o.active} fenced before it came back"
        unit, killed = o.notes.get("corosync_after"), o.notes.get("killed_wall")
        restarted = (f"corosync started again {unit['started'] - killed:.2f} s after the kill (corosync-qdevice "
                     f"restarted {unit['qdevice_restarts']} time(s) in all)"
                     if corosync_restarted(unit, killed) else "corosync not restarted")
        back = o.notes.get("rejoined_after_s")
        return (f"{restarted}; {o.active} back unfenced, controller respawned, at "
                + (f"+{back:.1f} s" if back is not None else "(never seen)"))
    if monitor_recounted(o):
        fails = "; then ".join(f"'{f.exitreason or f.exitstatus}'" for _, f in _httpd_failures(o))
        return (f"failcount {o.httpd_failcount} for one fault: httpd's recurring monitor on {o.active} reported {fails} "
                "before the recovery stopped it (each changed result counts)")
    if name == "pacemakerd-kill":
        before, after = o.notes.get("before") or {}, o.notes.get("after") or {}
        bp, ap = before.get("pids", {}), after.get("pids", {})
        kept = sum(1 for n, p in bp.items() if n != "pacemakerd" and ap.get(n) == p)
        return (f"pacemakerd PID {bp.get('pacemakerd', '-')} -> {ap.get('pacemakerd', '-')}, systemd restarts "
                f"{before.get('restarts', '-')} -> {after.get('restarts', '-')}, "
                f"{kept} of {len(bp) - ('pacemakerd' in bp)} subdaemons kept their PIDs")
    if name == "apache-kill-loop":
        at = ", ".join(f"+{m - o.t_inject:.1f}" for m in o.marks)
        ends = list(o.marks[1:]) + [o.t_restore]
        who = "; ".join(f"after kill {i}: {'/'.join(timeline.served(o.probes, a, b)) or 'nobody'}"
                        for i, (a, b) in enumerate(zip(o.marks, ends), start=1))
        return f"{len(o.marks)} kill(s) at {at} s; served {who}"
    if name == "gateway-loss-both":
        t_stop = _stopped_at(o)
        if t_stop is None:
            return "the cluster never showed the service stopped everywhere"
        heal = f"; {o.other} regained the gateway at +{o.t_heal - o.t_inject:.1f} s" if o.t_heal is not None else ""
        back = next((p for p in o.probes if o.t_heal is not None and p.t >= o.t_heal and p.ok), None)
        served = f", served by {back.node} from +{back.t - o.t_inject:.1f} s" if back is not None else ""
        before = "/".join(timeline.served(o.probes, o.t_inject, t_stop)) or "nobody"
        return f"served by {before}, then stopped on every node at +{t_stop - o.t_inject:.1f} s{heal}{served}"
    if name == "resource-fail":
        fails = _httpd_failures(o)
        if not fails:
            return "no failed httpd action listed"
        t, f = fails[0]
        return f"crm_mon listed httpd {f.task} on {f.node}: '{f.exitreason or f.exitstatus}' at +{t - o.t_inject:.1f} s"
    if name == "passive-crash":
        gone = next((c for c in o.cluster if o.t_inject <= c.t < o.t_restore and c.status is not None
                     and o.other in c.status.nodes and c.status.nodes[o.other].state != "online"), None)
        return (f"crm_mon through {o.active}: {o.other} {gone.status.nodes[o.other].state} at +{gone.t - o.t_inject:.1f} s"
                if gone is not None else f"crm_mon through {o.active}: {o.other} never left")
    return ""


def trial_row(o: Observation, problems: list[str], profile: str, trial: int) -> TrialRow:
    """The CSV row of a judged trial."""
    dt = timeline.downtime(o.probes, o.t_inject, o.t_restore, end_of_window=o.t_restore)
    detect, recover = detect_recover(o.cluster, o.t_inject, o.t_restore, o.baseline, o.expected, o.t_heal,
                                     o.httpd_cloned)
    if o.notes.get("rejoined_after_s") is not None:  # back unfenced: the service may have left and come back
        back = last_arrival(o.cluster, o.t_inject, o.t_restore, o.expected, o.httpd_cloned)
        recover = recover if back is None else back
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
        evidence=evidence(o),
        ok=not problems,
        problems="; ".join(problems),
        **({} if o.load is None else {
            "load_hz": o.load_hz, "load_requests": o.load.requests, "load_errors": o.load.errors,
            "load_p50_ms": o.load.p50_ms, "load_p99_ms": o.load.p99_ms}),
    )
