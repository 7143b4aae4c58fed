"""Run failover trials on the lab: settle, inject, observe, restore, settle again, judge.

One trial gives one row of a tidy table (scenario, profile, trial, downtime_s,
detect_s, recover_s, served_before, served_after, ok, ...) plus its raw
samples for the timeline chart. A trial that breaks a correctness rule is
marked ``ok=False`` with the reason; ``run_suite(strict=True)`` then raises.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .. import fencing
from ..facts.pacemaker import ClusterStatus, FenceEvent, parse_fence_history
from ..lab import Lab
from ..params import Params
from ..remote import Host, connect
from ..stages import cibstage
from ..stages.driver import JOURNAL_DIR, journal_files, journal_window
from . import timeline
from .context import TrialContext, failcount
from .judge import Observation, TrialRow, detect_recover, judge, trial_row
from .load import LoadGenerator, LoadSpec
from .scenarios import Scenario
from .watch import PROBE_TIMEOUT_S, PROBE_TIMEOUT_VM_S, ArpSample, ArpWatch, ClusterSample, ClusterWatch, HttpProbe
from ..errors import HakitError

Progress = Callable[[str], None]


class TrialFailed(HakitError, AssertionError):
    """A trial broke a correctness rule (two nodes answering, wrong final node, ...)."""


class NotSettled(HakitError, RuntimeError):
    """The cluster did not return to its healthy, preferred layout in time."""


@dataclass
class Trial:
    row: TrialRow
    probes: list[timeline.ProbeSample] = field(default_factory=list)
    arp: list[ArpSample] = field(default_factory=list)
    cluster: list[ClusterSample] = field(default_factory=list)
    t_inject: float = 0.0
    t_restore: float = 0.0
    t_heal: float | None = None
    t_back: float | None = None  # the cluster back in its normal placement (end of the incident)
    journals: dict[str, str] = field(default_factory=dict)  # node -> corosync/pacemaker journal of the trial
    wall_offset: float = 0.0  # this machine's wall clock minus the monotonic clock the samples are on

    def files(self) -> dict[str, object]:
        """The trial's folder in the record: each node's journal, and every probe the client sent."""
        probes = {"probes.csv": timeline.probe_table(self.probes, self.t_inject, self.wall_offset)} if self.probes else {}
        return {**journal_files(self.journals), **probes}

    @property
    def log_name(self) -> str:
        return f"{self.row.scenario}-{self.row.trial}"

    @property
    def log_folder(self) -> str:
        """Where the record keeps this trial's journals (relative to the failover record)."""
        return f"{JOURNAL_DIR}/{self.log_name}"


def healthy(st: ClusterStatus | None, params: Params, on: str | None = None) -> tuple[bool, str]:
    """The normal layout: all online, vip+httpd on ``on`` (default: the preferred node; in the cloned-apache
    layout the VIP there and httpd on every node), ping everywhere with pingd, nothing failed."""
    if st is None:
        return False, "crm_mon unreadable"
    want = on or params.preferred_node
    names = [n.name for n in params.nodes]
    problems = []
    for n in names:
        s = st.nodes.get(n)
        if s is None or s.state != "online":
            problems.append(f"{n} {s.state if s else 'unknown'}")
    if not _service_home(st, params, want):
        problems.append(f"vip {cibstage.placement(st, 'vip')}, httpd {cibstage.placement(st, 'httpd')}")
    if len(st.started_on("ping-gateway")) != len(names):
        problems.append(f"ping on {st.running_on('ping-gateway')}")
    if any(st.attribute(n, "pingd") in (None, "0") for n in names):
        problems.append("pingd not set everywhere")
    if any(r.failed for r in st.resources):
        problems.append("a resource is failed")
    return not problems, "; ".join(problems) or "healthy"


def _service_home(st: ClusterStatus, params: Params, want: str) -> bool:
    """The service on ``want``; with Apache cloned, also an httpd instance started on every node."""
    cloned = params.pacemaker.cloned_apache
    if st.service_node(cloned) != want:
        return False
    return not cloned or len(st.started_on("httpd")) == len(params.nodes)


def settle(hosts: dict[str, Host], params: Params, timeout_s: float = 120, stable_s: float = 2.0,
           progress: Progress | None = None, on: str | None = None, cleanup: bool = True) -> ClusterStatus:
    """Wait until the cluster is healthy with the service on ``on`` (default: the preferred node) for
    ``stable_s``. With ``cleanup``, old failures are cleaned up first; without it they are left to
    expire (``failure_timeout``), as the failure policy says."""
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
        if st.failures and cleanup and not cleaned:
            hosts[via].run("crm_resource --cleanup --quiet", check=False, timeout=60)
            cleaned = True
            continue
        ok, last = healthy(st, params, on)
        if ok:
            since = since or time.monotonic()
            if time.monotonic() - since >= stable_s:
                return st
        else:
            since = None
        time.sleep(0.25)
    raise NotSettled(f"the cluster did not return to its normal layout (service on {on or params.preferred_node}) "
                     f"within {timeout_s:.0f} s: {last}")


def move_home(hosts: dict[str, Host], params: Params, timeout_s: float = 120) -> None:
    """Bring a service that stickiness left on a survivor back to the preferred node (between trials,
    outside any measurement): ``crm_resource --move``, wait, then ``--clear`` the cli-prefer it leaves."""
    via = _any_node(hosts, params)
    st = cibstage.status(hosts[via])
    if st.where("vip") in (None, params.preferred_node):
        return
    want = params.preferred_node
    hosts[via].run(f"crm_resource --move --resource vip --node {want}", timeout=60)
    try:
        cibstage.wait_for(hosts[via], lambda s: _service_home(s, params, want), timeout_s)
    finally:
        hosts[via].run("crm_resource --clear --resource vip", check=False, timeout=60)


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


def observe(lab: Lab, params: Params, hosts: dict[str, Host], scn: Scenario, trial: int,
            observe_s: float = 30.0, hold_s: float = 3.0, settle_s: float = 120.0,
            progress: Progress | None = None, load: LoadSpec | None = None) -> Observation:
    """Inject one fault and watch it (client probes, ARP, crm_mon, fence history) until the service is
    back where it should be (held ``hold_s``) or ``observe_s`` passed; restore and settle. No judging here.
    With ``load``, a client load (`load.LoadGenerator`) runs on the VIP from before the fault to the end of
    the incident; its figures from the fault to the restore go with the trial."""
    say = progress or (lambda m: None)
    fencing = params.pacemaker.stonith_enabled
    if scn.needs_fencing and not fencing:
        raise ValueError(f"scenario {scn.name} tests fencing; this cluster runs without it (pacemaker.stonith_enabled)")
    observe_s = scn.observe_s or observe_s
    policy = params.pacemaker.resources
    if not policy.fails_back:
        move_home(hosts, params, settle_s)  # stickiness left the last trial's service on the survivor
    baseline = settle(hosts, params, settle_s)
    _refresh(hosts, params)
    active = params.preferred_node
    others = [n.name for n in params.nodes if n.name != active]
    other = others[0]  # the peer the scenario addresses (passive-crash cuts it) and reads the cluster through
    ctx = TrialContext(lab, params, hosts, active, other)
    expected = scn.expected_node(active, other, policy)
    # With more than one peer, any of them may take the service over (they score the same; pacemaker's
    # tie-break picks one, and not the same one for every fault): the trial expects the peer that serves.
    takers = others if expected != active and len(others) > 1 else [expected]
    fenced = scn.fenced_node(fencing, active, other)
    obs = Observation(scn, fencing, active, other, expected, fenced, baseline, policy=policy,
                      httpd_cloned=params.pacemaker.cloned_apache)
    # Where the incident ends: back on the preferred node, unless stickiness keeps a moved service.
    obs.home = active if policy.fails_back or expected == active else other
    watch_node = active if scn.watch_from == "active" else other  # a node the fault leaves up
    watcher_host = connect(params, params.node(watch_node))  # its own SSH session: the watch runs in a thread
    say(f"{scn.name} #{trial}: inject on {active}")
    try:
        with HttpProbe(str(params.vip.address), timeout=probe_timeout(lab, params)) as probe, \
                ArpWatch(str(params.vip.address)) as arp, ClusterWatch(watcher_host) as cw, \
                (LoadGenerator(str(params.vip.address), load) if load else contextlib.nullcontext()) as busy:
            time.sleep(1.0)  # a second of healthy samples before the fault
            obs.t_inject = time.monotonic()
            wall_inject = time.time()
            obs.wall_offset = wall_inject - obs.t_inject
            scn.inject(ctx)
            deadline = obs.t_inject + observe_s
            back_since: float | None = None
            survivor = active if fenced == other else other
            fence_done = fenced is None  # with fencing, the fault lasts until the lost node is fenced
            next_fence_check = 0.0
            rejoin_pending = scn.rejoined is not None  # ... or until it is back unfenced, where it can come back
            next_rejoin_check = 0.0
            state_since: float | None = None  # since when the cluster shows the state scn.heal_when waits for
            while time.monotonic() < deadline:
                if scn.heal is not None and obs.t_heal is None:
                    now = time.monotonic()
                    due = now - obs.t_inject >= scn.heal_after_s
                    if scn.heal_when is not None and cw.samples:
                        latest = cw.samples[-1].status
                        state_since = (state_since or now) if latest is not None and scn.heal_when(latest) else None
                        due = due or (state_since is not None and now - state_since >= scn.heal_hold_s)
                    if not due:
                        time.sleep(0.1)
                        continue  # the fault's first phase: whatever happens now is judged afterwards
                    say(f"{scn.name} #{trial}: second step at +{now - obs.t_inject:.1f} s")
                    scn.heal(ctx)
                    obs.t_heal = time.monotonic()
                if not fence_done and time.monotonic() >= next_fence_check:
                    next_fence_check = time.monotonic() + 1.0
                    try:
                        fence_done = any(e.target == fenced and e.ok
                                         for e in _fence_events(hosts[survivor], wall_inject - 1, time.time() + 1))
                    except Exception:  # noqa: BLE001 - judged after the fault from the full history
                        pass
                    if rejoin_pending and fenced is not None and fence_done:
                        rejoin_pending = False  # fenced: the fault plays out as the catalogue states it
                if rejoin_pending and time.monotonic() >= next_rejoin_check:
                    next_rejoin_check = time.monotonic() + 1.0
                    if _reacted(cw, obs) and scn.rejoined(ctx):
                        rejoin_pending = False
                        ctx.notes["rejoined_after_s"] = round(time.monotonic() - obs.t_inject, 2)
                        say(f"{scn.name} #{trial}: {active} is back unfenced at +{ctx.notes['rejoined_after_s']:.1f} "
                            "s; the fault ends once one node serves for a while")
                        fenced = obs.fenced_target = None
                        fence_done = True
                        takers = [n.name for n in params.nodes]  # recovered in place, or moved to a peer (and back)
                recent = [s for s in probe.snapshot() if s.t > time.monotonic() - 0.5]
                landed = {s.node for s in recent if s.ok}
                if len(takers) > 1 and len(landed) == 1 and landed <= set(takers):
                    expected = obs.expected = landed.pop()
                good = bool(recent) and all(s.ok and s.node == expected for s in recent)
                if good and fence_done and time.monotonic() - obs.t_inject > 1.0:
                    back_since = back_since or time.monotonic()
                    if time.monotonic() - back_since >= hold_s:
                        break
                else:
                    back_since = None
                time.sleep(0.1)
            obs.t_restore = time.monotonic()
            if obs.home != active:
                obs.home = obs.expected  # stickiness keeps the service on the peer that took it
            wall_restore = time.time()
            say(f"{scn.name} #{trial}: restore")
            obs.httpd_failcount = failcount(hosts[survivor], "httpd", active)
            obs.fences = _fence_events(hosts[survivor], wall_inject - 1, wall_restore + 1) if fencing else []
            scn.restore(ctx)
            obs.marks, obs.notes = list(ctx.marks), dict(ctx.notes)  # the scenario's own evidence
            say(f"{scn.name} #{trial}: watching until the service is back in its normal place ({obs.home})")
            # A failcount that expires by itself (failure_timeout) is part of the incident: no cleanup.
            try:
                settle(hosts, params, settle_s + (policy.failure_timeout or 0), on=obs.home,
                       cleanup=policy.failure_timeout is None)
                obs.t_back = time.monotonic()
            except NotSettled as e:
                say(f"{scn.name} #{trial}: {e}")
            time.sleep(0.5)
        obs.probes = probe.snapshot()
        obs.arp, obs.cluster = list(arp.samples), list(cw.samples)
        if busy is not None:
            obs.load, obs.load_hz = busy.summary(obs.t_inject, obs.t_restore), load.rate_hz
    finally:
        watcher_host.close()
    return obs


def probe_timeout(lab: Lab, params: Params) -> float:
    """The client's deadline for one answer: longer where the lab has (TCG) VM nodes (see PROBE_TIMEOUT_VM_S)."""
    return PROBE_TIMEOUT_VM_S if any(lab.is_vm(n.name) for n in params.nodes) else PROBE_TIMEOUT_S


def _reacted(cw: ClusterWatch, obs: Observation) -> bool:
    """The cluster's view (through the watched node) has changed since the fault: the peer noticed it."""
    return not math.isnan(detect_recover(list(cw.samples), obs.t_inject, time.monotonic(), obs.baseline,
                                         obs.expected)[0])


def run_trial(lab: Lab, params: Params, hosts: dict[str, Host], scn: Scenario, trial: int, profile: str,
              observe_s: float = 30.0, hold_s: float = 3.0, settle_s: float = 120.0,
              progress: Progress | None = None, load: LoadSpec | None = None) -> Trial:
    """One trial of one scenario: observe, then judge. The cluster must be healthy in the preferred layout."""
    say = progress or (lambda m: None)
    obs = observe(lab, params, hosts, scn, trial, observe_s, hold_s, settle_s, progress, load)
    problems = judge(obs)
    row = trial_row(obs, problems, profile, trial)
    say(f"{scn.name} #{trial}: downtime {row.downtime_s:.2f} s, detect {row.detect_s:.2f} s, "
        f"recover {row.recover_s:.2f} s, failback {row.failback_s:.2f} s, incident {row.incident_s:.2f} s, "
        f"{row.ended}" + (f", fenced {row.fenced}" if obs.fencing else "")
        + (f"; load: {obs.load.describe()}" if obs.load is not None else "")
        + ("" if not problems else f"; PROBLEMS: {row.problems}"))
    return Trial(row, obs.probes, obs.arp, obs.cluster, obs.t_inject, obs.t_restore, obs.t_heal, obs.t_back,
                 wall_offset=obs.wall_offset)


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


def fence_delay_s(params: Params) -> float:
    """The fence delay on the preferred node's device (every scenario starts there); 0 without fencing."""
    if not params.pacemaker.stonith_enabled:
        return 0.0
    for r in fencing.stonith_resources(params):
        if r.target == params.preferred_node:
            return float(r.attributes.get("pcmk_delay_base", "0s").rstrip("s") or 0)
    return 0.0


OBSERVE_MIN_S = 30.0


def observe_window(params: Params, profile: str) -> float:
    """How long a trial waits for the service to come back: twice the time a lost node costs before
    anything may start (detection + fence delay), plus 30 s for the fence agent and the starts. Only a
    trial that does not recover waits it out; VM nodes under TCG start Apache in about 12 s."""
    from ..profiles import get_profile

    lost = get_profile(profile).failure_detection_ms(len(params.nodes)) / 1000 + fence_delay_s(params)
    return max(OBSERVE_MIN_S, OBSERVE_MIN_S + 2 * lost)


def run_suite(lab: Lab, params: Params, scenarios: list[Scenario], trials: int, profile: str,
              progress: Progress | None = None, strict: bool = False, **kw: Any) -> tuple[pd.DataFrame, list[Trial]]:
    """Every scenario ``trials`` times; returns the tidy table and the raw trials (for charts)."""
    from ..notebook import connect_nodes

    hosts = connect_nodes(params)
    done: list[Trial] = []
    kw.setdefault("observe_s", observe_window(params, profile))
    try:
        for scn in scenarios:
            for i in range(1, trials + 1):
                t0 = time.time()
                trial = run_trial(lab, params, hosts, scn, i, profile, progress=progress, **kw)
                trial.journals = journal_window(hosts, t0, time.time())
                trial.row = replace(trial.row, logs=trial.log_folder)
                done.append(trial)
    finally:
        for h in hosts.values():
            h.close()
    df = pd.DataFrame([t.row.as_dict() for t in done])
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
        failback_s=("failback_s", "median"),
        incident_s=("incident_s", "median"),
        detect_s=("detect_s", "median"),
        recover_s=("recover_s", "median"),
        not_ok=("ok", lambda s: int((~s).sum())),
    ).reset_index()
    return out
