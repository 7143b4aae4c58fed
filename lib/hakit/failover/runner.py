"""Run failover trials on the lab: settle, inject, observe, restore, settle again, judge.

One trial gives one row of a tidy table (scenario, profile, trial, downtime_s,
detect_s, recover_s, served_before, served_after, ok, ...) plus its raw
samples for the timeline chart. A trial that breaks a correctness rule is
marked ``ok=False`` with the reason; ``run_suite(strict=True)`` then raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..facts.pacemaker import ClusterStatus, FenceEvent, parse_fence_history
from ..lab import Lab
from ..params import Params
from ..remote import Host, connect
from ..stages import cibstage
from . import timeline
from .context import TrialContext
from .scenarios import Scenario
from .watch import ArpSample, ArpWatch, ClusterSample, ClusterWatch, HttpProbe
from ..errors import HakitError

Progress = Callable[[str], None]


class TrialFailed(AssertionError):
    """A trial broke a correctness rule (two nodes answering, wrong final node, ...)."""


class NotSettled(HakitError, RuntimeError):
    """The cluster did not return to its healthy, preferred layout in time."""


@dataclass
class Trial:
    row: dict[str, Any]
    probes: list[timeline.ProbeSample] = field(default_factory=list)
    arp: list[ArpSample] = field(default_factory=list)
    cluster: list[ClusterSample] = field(default_factory=list)
    t_inject: float = 0.0
    t_restore: float = 0.0
    t_heal: float | None = None


def healthy(st: ClusterStatus | None, params: Params) -> tuple[bool, str]:
    """The preferred layout: all online, vip+httpd on the preferred node, ping everywhere with pingd, nothing failed."""
    if st is None:
        return False, "crm_mon unreadable"
    want = params.preferred_node
    names = [n.name for n in params.nodes]
    problems = []
    for n in names:
        s = st.nodes.get(n)
        if s is None or s.state != "online":
            problems.append(f"{n} {s.state if s else 'unknown'}")
    if st.where("vip") != want or st.where("httpd") != want:
        problems.append(f"vip on {st.running_on('vip')}, httpd on {st.running_on('httpd')}")
    if len(st.running_on("ping-gateway")) != len(names):
        problems.append(f"ping on {st.running_on('ping-gateway')}")
    if any(st.attribute(n, "pingd") in (None, "0") for n in names):
        problems.append("pingd not set everywhere")
    if any(r.failed for r in st.resources):
        problems.append("a resource is failed")
    return not problems, "; ".join(problems) or "healthy"


def settle(hosts: dict[str, Host], params: Params, timeout_s: float = 120, stable_s: float = 2.0,
           progress: Progress | None = None) -> ClusterStatus:
    """Wait until the cluster is healthy in the preferred layout for ``stable_s``; clean up old failures first."""
    deadline = time.monotonic() + timeout_s
    since: float | None = None
    last = "not read yet"
    cleaned = False
    while time.monotonic() < deadline:
        via = _any_node(hosts, params)
        try:
            st = cibstage.status(hosts[via])
        except Exception as e:  # a node may still be booting
            last = str(e)
            time.sleep(0.5)
            continue
        if st.failures and not cleaned:
            hosts[via].run("crm_resource --cleanup --quiet", check=False, timeout=60)
            cleaned = True
            continue
        ok, last = healthy(st, params)
        if ok:
            since = since or time.monotonic()
            if time.monotonic() - since >= stable_s:
                return st
        else:
            since = None
        time.sleep(0.25)
    raise NotSettled(f"the cluster did not return to the preferred layout within {timeout_s:.0f} s: {last}")


def _any_node(hosts: dict[str, Host], params: Params) -> str:
    for n in params.nodes:
        try:
            hosts[n.name].run("true", timeout=5)
            return n.name
        except Exception:
            try:
                hosts[n.name].close()
                hosts[n.name] = connect(params, n)
                return n.name
            except Exception:
                continue
    raise NotSettled("no node answers over SSH")


def _detect_recover(scn: Scenario, cluster: list[ClusterSample], t_inject: float, t_end: float,
                    baseline: ClusterStatus, active: str, expected: str) -> tuple[float, float]:
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


def _signature(st: ClusterStatus) -> tuple:
    return (
        tuple(sorted((n, s.state) for n, s in st.nodes.items())),
        tuple(sorted((r.id, r.role, r.nodes, r.failed) for r in st.resources)),
        len(st.failures),
        tuple(sorted((n, a.get("pingd")) for n, a in st.attributes.items())),
    )


def run_trial(lab: Lab, params: Params, hosts: dict[str, Host], scn: Scenario, trial: int, profile: str,
              observe_s: float = 30.0, hold_s: float = 3.0, settle_s: float = 120.0,
              progress: Progress | None = None) -> Trial:
    """One trial of one scenario. The cluster must be healthy in the preferred layout before it starts."""
    say = progress or (lambda m: None)
    fencing = params.pacemaker.stonith_enabled
    if scn.needs_fencing and not fencing:
        raise ValueError(f"scenario {scn.name} tests fencing; this cluster runs without it (pacemaker.stonith_enabled)")
    observe_s = scn.observe_s or observe_s
    baseline = settle(hosts, params, settle_s)
    _refresh(hosts, params)
    active = params.preferred_node
    other = next(n.name for n in params.nodes if n.name != active)
    ctx = TrialContext(lab, params, hosts, active, other)
    expected = scn.expected_node(active, other)
    fenced = scn.fenced_node(fencing, active, other)
    watcher_host = connect(params, params.node(other))  # its own SSH session: the watch runs in a thread
    say(f"{scn.name} #{trial}: inject on {active}")
    t_heal: float | None = None
    try:
        with HttpProbe(str(params.vip.address)) as probe, ArpWatch(str(params.vip.address)) as arp, \
                ClusterWatch(watcher_host) as cw:
            time.sleep(1.0)  # a second of healthy samples before the fault
            t_inject = time.monotonic()
            wall_inject = time.time()
            scn.inject(ctx)
            # Observe until the service is back where it should be (and held), or until observe_s.
            deadline = t_inject + observe_s
            back_since: float | None = None
            survivor = active if fenced == other else other
            fence_done = fenced is None  # with fencing, the fault lasts until the lost node is fenced
            next_fence_check = 0.0
            while time.monotonic() < deadline:
                if scn.heal is not None and t_heal is None:
                    if time.monotonic() - t_inject < scn.heal_after_s:
                        time.sleep(0.1)
                        continue  # the fault's first phase: whatever happens now is judged below
                    say(f"{scn.name} #{trial}: second step at +{scn.heal_after_s:.0f} s")
                    scn.heal(ctx)
                    t_heal = time.monotonic()
                if not fence_done and time.monotonic() >= next_fence_check:
                    next_fence_check = time.monotonic() + 1.0
                    try:
                        fence_done = any(e.target == fenced and e.ok
                                         for e in _fence_events(hosts[survivor], wall_inject - 1, time.time() + 1))
                    except Exception:  # noqa: BLE001 - judged after the fault from the full history
                        pass
                recent = [s for s in probe.snapshot() if s.t > time.monotonic() - 0.5]
                good = bool(recent) and all(s.ok and s.node == expected for s in recent)
                if good and fence_done and time.monotonic() - t_inject > 1.0:
                    back_since = back_since or time.monotonic()
                    if time.monotonic() - back_since >= hold_s:
                        break
                else:
                    back_since = None
                time.sleep(0.1)
            t_restore = time.monotonic()
            wall_restore = time.time()
            say(f"{scn.name} #{trial}: restore")
            failcount = _failcount(hosts[survivor], "httpd", active)
            fences = _fence_events(hosts[survivor], wall_inject - 1, wall_restore + 1) if fencing else []
            scn.restore(ctx)
            settle(hosts, params, settle_s)
            time.sleep(0.5)
        probes = probe.snapshot()
        arp_samples, cluster = list(arp.samples), list(cw.samples)
    finally:
        watcher_host.close()
    dt = timeline.downtime(probes, t_inject, t_restore, end_of_window=t_restore)
    detect, recover = _detect_recover(scn, cluster, t_inject, t_restore, baseline, active, expected)
    dual = [a for a in arp_samples if len(a.macs) > 1]
    served_before = timeline.last_served(probes, t_inject - 1.5, t_inject)
    served_after = timeline.last_served(probes, t_inject, t_restore)
    sb = scn.split_brain(fencing)
    problems = []
    if dual and not sb:
        problems.append(f"VIP answered by {len(max(dual, key=lambda a: len(a.macs)).macs)} MACs at once "
                        f"({len(dual)} ARP sample(s)): split brain")
    if sb and not dual:
        problems.append("expected the unfenced split brain (two MACs for the VIP) but never saw it")
    if served_after != expected and not sb:
        problems.append(f"served by {served_after} at the end of the fault, expected {expected}")
    if not dt.recovered:
        problems.append(f"the service had not recovered {t_restore - t_inject:.1f} s after the fault")
    if not scn.outage_expected and dt.failed_probes and not sb:
        problems.append(f"{dt.failed_probes} failed probe(s) where no outage was expected")
    if scn.failcount_httpd and failcount != scn.failcount_httpd:
        problems.append(f"httpd failcount on {active} is {failcount}, expected {scn.failcount_httpd}")
    fenced_ok = [e for e in fences if e.ok]
    fenced_failed = [e for e in fences if e.status == "failed"]
    if fenced and not fenced_ok:
        problems.append(f"{fenced} was never fenced during the fault (no successful fence action in its history)")
    wrong = sorted({e.target for e in fenced_ok if e.target != fenced})
    if fencing and wrong:
        problems.append(f"fenced {', '.join(wrong)}, which this fault should have spared")
    if t_heal is not None:
        early = [p for p in probes if t_inject + 0.5 <= p.t < t_heal and p.ok]
        if early:
            problems.append(f"served by {early[0].node} {early[0].t - t_inject:.1f} s after the fault, before the "
                            "second step (recovery must wait for fencing to succeed)")
        started = [c for c in cluster if t_inject <= c.t < t_heal and c.status is not None
                   and other in c.status.running_on("vip")]
        if started:
            problems.append(f"{other} started the VIP {started[0].t - t_inject:.1f} s after the fault, before fencing succeeded")
        if scn.needs_fencing and not fenced_failed:
            problems.append("no failed fencing attempt was recorded while the BMC was gone")
    row = {
        "scenario": scn.name,
        "profile": profile,
        "trial": trial,
        "fencing": fencing,
        "active": active,
        "downtime_s": round(dt.seconds, 3),
        "detect_s": round(detect, 3),
        "recover_s": round(recover, 3),
        "served_before": served_before,
        "served_after": served_after,
        "expected_after": expected,
        "outages": dt.outages,
        "failed_probes": dt.failed_probes,
        "probes": dt.probes,
        "probe_rate_hz": round(timeline.rate([p for p in probes if t_inject <= p.t < t_restore]), 1),
        "dual_vip_samples": len(dual),
        "httpd_failcount": failcount,
        "fenced": ", ".join(sorted({e.target for e in fenced_ok})) or "-",
        "fence_failures": len(fenced_failed),
        "heal_s": round(t_heal - t_inject, 3) if t_heal is not None else math.nan,
        "ok": not problems,
        "problems": "; ".join(problems),
    }
    say(f"{scn.name} #{trial}: downtime {dt.seconds:.2f} s, detect {detect:.2f} s, recover {recover:.2f} s"
        + (f", fenced {row['fenced']}" if fencing else "")
        + ("" if not problems else f"; PROBLEMS: {row['problems']}"))
    return Trial(row, probes, arp_samples, cluster, t_inject, t_restore, t_heal)


def _fence_events(host: Host, since: float, until: float) -> list[FenceEvent]:
    """Completed fence actions against any node between ``since`` and ``until`` (wall clock: the
    lab's nodes share this machine's clock), read on a node that stayed up."""
    # --verbose: every action; without it stonith_admin shows only the latest per node.
    r = host.run(["stonith_admin", "--history", "*", "--verbose", "--output-as=xml"], check=False, timeout=30)
    return [e for e in parse_fence_history(r.stdout) if e.completed is not None and since <= e.completed <= until]


def _refresh(hosts: dict[str, Host], params: Params) -> None:
    """Reconnect to nodes whose SSH session died with them (power cut, fenced) in an earlier trial."""
    for n in params.nodes:
        try:
            hosts[n.name].run("true", timeout=5)
        except Exception:  # noqa: BLE001 - a stale session: open a new one
            hosts[n.name].close()
            hosts[n.name] = connect(params, n)


def _failcount(host: Host, rsc: str, node: str) -> int:
    r = host.run(f"crm_failcount --query --resource {rsc} --node {node}", check=False, timeout=30)
    # "scope=status  name=fail-count-httpd value=1" (value=0 when none)
    for part in r.stdout.split():
        if part.startswith("value="):
            v = part.split("=", 1)[1]
            return 0 if v in ("", "0") else (10**6 if v == "INFINITY" else int(v))
    return 0


def run_suite(lab: Lab, params: Params, scenarios: list[Scenario], trials: int, profile: str,
              progress: Progress | None = None, strict: bool = False, **kw: Any) -> tuple[pd.DataFrame, list[Trial]]:
    """Every scenario ``trials`` times; returns the tidy table and the raw trials (for charts)."""
    from ..notebook import connect_nodes

    hosts = connect_nodes(params)
    done: list[Trial] = []
    try:
        for scn in scenarios:
            for i in range(1, trials + 1):
                done.append(run_trial(lab, params, hosts, scn, i, profile, progress=progress, **kw))
    finally:
        for h in hosts.values():
            h.close()
    df = pd.DataFrame([t.row for t in done])
    if strict and not df["ok"].all():
        bad = df[~df["ok"]]
        raise TrialFailed("; ".join(f"{r.scenario} #{r.trial}: {r.problems}" for r in bad.itertuples()))
    return df, done


def medians(df: pd.DataFrame) -> pd.DataFrame:
    """Median downtime/detect/recover per scenario x profile, with trial counts and failures."""
    g = df.groupby(["scenario", "profile"], sort=False)
    out = g.agg(
        trials=("trial", "count"),
        downtime_s=("downtime_s", "median"),
        detect_s=("detect_s", "median"),
        recover_s=("recover_s", "median"),
        not_ok=("ok", lambda s: int((~s).sum())),
    ).reset_index()
    return out
