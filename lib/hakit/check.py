"""`hakit check`: does the live cluster still match the params? Read-only, one table of drift.

Two sources, both read-only:

- every stage's own plan (gather + pure plan, never applied): an operation a stage would run
  is drift from the params, and the fix is that stage;
- the live state no stage owns: nodes in standby or maintenance, leftover move constraints
  (``cli-prefer-*``/``cli-ban-*``), failed actions and failcounts, a stopped fence device,
  a knet link down, clock skew between nodes.

Exit status for cron or a monitoring check: 0 clean, 1 drift, 2 bad input (the CLI).
"""

from __future__ import annotations

import html
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import pandas as pd

from . import fencing
from .facts import cibstatus
from .facts.base import read
from .facts.corosync import CFGTOOL_STATUS
from .facts.errors import FactParseError
from .facts.pacemaker import CRM_MON, ClusterStatus
from .ops import Barrier
from .params import Params
from .runner import Runner
from .stages import pipeline
from .stages.driver import Stage, per_node

MAX_SKEW_S = 1.0  # corosync and pacemaker logs and fence history compare times across nodes


@dataclass(frozen=True)
class Drift:
    where: str  # a node, or "cluster"
    what: str
    fix: str
    source: str  # the stage whose plan found it, or "live state"


@dataclass
class DriftReport:
    cluster: str
    drift: list[Drift] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was looked at, in words

    @property
    def clean(self) -> bool:
        return not self.drift

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([d.__dict__ for d in self.drift], columns=["where", "what", "fix", "source"])

    def lines(self) -> list[str]:
        head = (f"{self.cluster}: matches the params" if self.clean
                else f"{self.cluster}: {len(self.drift)} drift(s) from the params")
        out = [head, "checked: " + "; ".join(self.checked)]
        out += [f"  {d.where}: {d.what}  -> fix: {d.fix}  [{d.source}]" for d in self.drift]
        return out

    def _repr_html_(self) -> str:
        verdict = "matches the params" if self.clean else f"{len(self.drift)} drift(s) from the params"
        return (f"<h4>hakit check: {html.escape(self.cluster)} {verdict}</h4>"
                f"<p><i>checked: {html.escape('; '.join(self.checked))}</i></p>"
                + ("" if self.clean else self.to_frame().to_html(index=False)))


def stages(params: Params) -> list[tuple[Stage, str]]:
    """The stages whose plans say what the params want, each with the notebook that applies it."""
    return [(st, f"{nb} (hakit run --stages {i})")
            for i, (st, nb) in enumerate(zip(pipeline.stages(params), pipeline.NOTEBOOKS))]


def plan_drift(stage: Stage, fix: str, hosts: Mapping[str, Runner]) -> list[Drift]:
    """What one stage would do now (its plan, never applied), as drift rows."""
    plan = stage.plan(stage.gather(hosts))
    out = [Drift(node, f"blocked: {why}", fix, stage.name) for node, why in plan.blocked.items()]
    out += [Drift(op.node, op.describe() + (f" ({op.reason})" if op.reason else ""), fix, stage.name)
            for op in plan.ops if op.mutates and not isinstance(op, Barrier)]
    return out


def live_drift(params: Params, status: ClusterStatus, cib_xml: str) -> list[Drift]:
    """Pure: what the live status and CIB show that no stage's plan covers."""
    out: list[Drift] = []
    for name in (n.name for n in params.nodes):
        st = status.nodes.get(name)
        if st is None or not st.online:
            out.append(Drift(name, "not online in the cluster", "start it (or power it on) and check "
                                                                   "`crm_mon -1`", "live state"))
            continue
        if st.standby:
            out.append(Drift(name, "in standby: it runs no resources", f"crm node online {name}", "live state"))
        if st.maintenance:
            out.append(Drift(name, "in maintenance mode: pacemaker does not manage it",
                             f"crm node ready {name}", "live state"))
    for m in cibstatus.move_constraints(cib_xml):
        out.append(Drift("cluster", f"leftover move constraint {m.id} ({m.resource} "
                                    f"{'on' if m.kind == 'prefer' else 'away from'} {m.node})",
                         f"crm resource clear {m.resource}", "live state"))
    if (cibstatus.property_value(cib_xml, "maintenance-mode") or "").lower() in ("true", "on", "yes", "1"):
        out.append(Drift("cluster", "maintenance-mode is on: pacemaker manages nothing",
                         "crm configure property maintenance-mode=false", "live state"))
    for f in status.failures:
        out.append(Drift(f.node, f"failed action {f.op_key}: {f.exitstatus} {f.exitreason}".strip(),
                         f"find the cause, then crm resource cleanup {f.resource}", "live state"))
    for r in status.resources:
        if r.failed:
            out.append(Drift(", ".join(r.nodes) or "cluster", f"{r.id} is FAILED", f"crm resource cleanup {r.id}",
                             "live state"))
        elif not r.managed:
            out.append(Drift(", ".join(r.nodes) or "cluster", f"{r.id} is unmanaged",
                             f"crm resource manage {r.id}", "live state"))
    for d in fencing.stonith_resources(params):
        if not status.running_on(d.id):
            out.append(Drift("cluster", f"fence device {d.id} (powers off {d.target}) is not running",
                             f"crm resource cleanup {d.id}; check its BMC", "live state"))
    return out


def _links(h: Runner, params: Params) -> list[Drift]:
    me = params.node(h.name)
    try:
        rep = read(h, CFGTOOL_STATUS)
    except FactParseError as e:
        return [Drift(h.name, f"corosync-cfgtool -s unreadable: {str(e).splitlines()[0]}",
                      "is corosync running? 03_corosync_rings", "live state")]
    out = []
    for link in rep.links:
        down = sorted(n for n in link.disconnected if n != me.nodeid)
        if down:
            out.append(Drift(h.name, f"knet link {link.link_id} not connected to node(s) {down}",
                             f"check the {'private' if link.link_id == 0 else 'public'} network on {h.name}",
                             "live state"))
    return out


def _clock(h: Runner) -> float:
    t0 = time.time()
    out = h.run("date +%s.%N", check=False, timeout=15).stdout.strip()
    t1 = time.time()
    try:
        return float(out) - (t0 + t1) / 2
    except ValueError:
        return float("nan")


def check(params: Params, hosts: MutableMapping[str, Runner]) -> DriftReport:
    """Every drift of the live cluster from the params (reads only: nothing is applied or locked)."""
    rep = DriftReport(params.cluster.name)
    for stage, fix in stages(params):
        rep.drift += plan_drift(stage, fix, hosts)
    rep.checked.append("the plans of stages 00-06 (nothing applied)")
    names = [n.name for n in params.nodes]
    via = names[0]
    try:
        status = read(hosts[via], CRM_MON)
        cib_xml = hosts[via].run(["cibadmin", "--query"], timeout=60).stdout
        rep.drift += live_drift(params, status, cib_xml)
        rep.checked.append(f"crm_mon and the CIB through {via}: node states, move constraints, failures, fence devices")
    except (FactParseError, ET.ParseError) as e:
        rep.drift.append(Drift(via, f"cluster status unreadable: {str(e).splitlines()[0]}",
                               "03_corosync_rings", "live state"))
    for drifts in per_node(hosts, names, lambda h: _links(h, params)).values():
        rep.drift += drifts
    rep.checked.append("knet links on every node")
    skews = per_node(hosts, names, _clock)
    ref = skews[via]
    for n, s in skews.items():
        if s != s:  # NaN: `date` gave no number
            rep.drift.append(Drift(n, "clock unreadable (`date +%s.%N`)", "log in and check the node", "live state"))
        elif abs(s - ref) > MAX_SKEW_S:
            rep.drift.append(Drift(n, f"clock {s - ref:+.1f} s off {via}'s", "enable time sync (systemd-timesyncd "
                                                                               "or chrony) on every node", "live state"))
    rep.checked.append(f"clocks within {MAX_SKEW_S:.0f} s of each other")
    return rep
