"""A day-2 operation is a stage: gather, a pure plan, crm_simulate's prediction, apply, verify, record.

Each operation reads the CIB and crm_mon through the first node that answers (as stages 4-6 do),
plans one or a few typed operations (`CrmCommand`: the exact pacemaker command, with the crm
shell line an admin would type for the same change) and predicts with crm_simulate where
everything will run (`predict`). The stage driver (`StageRun`) does the rest as for a stage: a
dry run sends nothing that changes a host; a real run takes the cluster lock, plans again and
refuses if the plan changed, predicts again under the lock, applies, and verification waits
until the live cluster is where the prediction said (nodes, resources, managed or not).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import cib, fencing
from ..errors import HakitError
from ..facts import cibstatus
from ..facts.errors import FactParseError
from ..facts.pacemaker import ClusterStatus
from ..ops import CLUSTER, ApplyContext, Op
from ..params import Params
from ..runner import RemoteError, Runner, as_command
from ..stages import cibstage
from ..stages.base import Plan, Verification
from .predict import Change, Layout, Prediction, predict

STAGE = "08 operations"
STABLE_S = 2.0  # the live layout must hold this long before it counts as reached


class OperationInputError(HakitError, ValueError):
    """A node, resource or option the operation cannot take; nothing was changed."""


@dataclass(frozen=True, kw_only=True)
class CrmCommand(Op):
    """One pacemaker command through ``via`` that changes the cluster (the CIB is one for all nodes)."""

    node: str = CLUSTER
    via: str
    argv: tuple[str, ...]
    crm: str  # the crm shell line for the same change
    timeout: float = 60

    @property
    def command(self) -> str:
        return as_command(self.argv)

    @property
    def action(self) -> str:
        return self.crm

    def describe(self) -> str:
        return f"{self.command}  (through {self.via}; crm shell: {self.crm})"

    def execute(self, ctx: ApplyContext) -> str:
        ctx.host(self.via).run(self.argv, timeout=self.timeout)
        return f"{self.crm}: `{self.command}` through {self.via}"

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"via": self.via, "argv": list(self.argv), "crm": self.crm}


@dataclass
class OpFacts:
    """The live CIB and crm_mon, read through ``via`` (one reading for the plan and the prediction)."""

    via: str
    snapshot: cib.CibSnapshot
    status: ClusterStatus

    @property
    def cib_xml(self) -> str:
        return self.snapshot.xml

    @property
    def layout(self) -> Layout:
        return Layout.of(self.status)

    def _repr_html_(self) -> str:
        return (f"<h4>Now (read through {html.escape(self.via)}, CIB {self.snapshot.version})</h4>"
                + self.status._repr_html_())


def read_facts(hosts: Mapping[str, Runner], params: Params, avoid: str | None = None) -> OpFacts:
    """The CIB and crm_mon through the first node that answers (never ``avoid``: a node about to be fenced)."""
    f = cibstage.gather({n: h for n, h in hosts.items() if n != avoid}, params)
    return OpFacts(f.via, f.snapshot, f.status)


class Operation:
    """Base of the day-2 operations. Subclasses set ``title`` and implement `decide` and `changes`."""

    title = ""

    def __init__(self, params: Params, wait_s: float = 120) -> None:
        self.params = params
        self.wait_s = wait_s
        self.facts: OpFacts | None = None
        self.prediction: Prediction | None = None
        self.warnings: list[str] = []  # what the admin should know after the apply (e.g. a leftover constraint)
        self.after: ClusterStatus | None = None
        self.forced_dry_run = ""  # non-empty: why this operation only dry-runs (e.g. a fence test not confirmed)

    @property
    def name(self) -> str:
        return f"{STAGE}: {self.title}"

    @property
    def slug(self) -> str:
        return cibstage.slug(self.title)

    # ------------------------------------------------------------------ the Stage protocol

    def gather(self, hosts: Mapping[str, Runner]) -> OpFacts:
        self.facts = read_facts(hosts, self.params)
        return self.facts

    def plan(self, facts: OpFacts) -> Plan:
        """Pure: the operation's commands, or why there is nothing to do."""
        p = Plan(self.name, order=[CLUSTER])
        self.decide(facts, p)
        return p

    def decide(self, facts: OpFacts, p: Plan) -> None:
        raise NotImplementedError

    def changes(self, facts: OpFacts) -> list[Change]:
        """The prediction's steps for this operation (what its commands do, applied to a copy)."""
        raise NotImplementedError

    def preview(self, hosts: Mapping[str, Runner]) -> Prediction | None:
        """crm_simulate's prediction for the plan (read-only; None when there is nothing to do)."""
        facts = self.facts or self.gather(hosts)
        if self.plan(facts).empty:
            self.prediction = None
            return None
        self.prediction = predict(hosts[self._sim_via(facts)], facts.cib_xml, self.changes(facts))
        return self.prediction

    def _sim_via(self, facts: OpFacts) -> str:
        return facts.via

    def before_apply(self, hosts: Mapping[str, Runner], plan: Plan) -> None:
        """Under the lock, with the facts just read again: the prediction verification will hold the cluster to."""
        self.preview(hosts)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        v = Verification(self.name)
        via = self._read_via()
        st = self._settle(hosts, wait) if (wait and self.prediction is not None) else self._status(hosts, via)
        self.after = st
        if self.prediction is None:
            v.add(CLUSTER, "nothing to do", True, "no change was planned, so nothing was predicted")
        else:
            want = self.prediction.layout
            got = Layout.of(st)
            wrong = got.differences(want)
            v.add(CLUSTER, "the cluster is where crm_simulate predicted", not wrong,
                  "nodes and resources as predicted" if not wrong else "; ".join(wrong))
        failed = sorted({f"{r.id} on {', '.join(r.nodes) or '?'}" for r in st.resources if r.failed})
        v.add(CLUSTER, "no resource in a failed state", not failed, "none" if not failed else ", ".join(failed))
        cib_xml = self._cib(hosts, via)
        self.checks(v, st, cib_xml)
        self.warnings = self.notes_after(st, cib_xml)
        return v

    # ------------------------------------------------------------------ for subclasses

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        """Checks of this operation beyond the layout (read-only)."""

    def notes_after(self, st: ClusterStatus, cib_xml: str) -> list[str]:
        """What the admin should know afterwards: move constraints left in the CIB, fence devices not running."""
        out = [leftover_warning(m) for m in cibstatus.move_constraints(cib_xml)]
        for d in fencing.stonith_resources(self.params):
            if not st.running_on(d.id):
                out.append(f"{d.id} (the device that powers off {d.target}) runs nowhere now: nothing can fence "
                           f"{d.target} until it runs again")
        return out

    def artifacts(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.prediction is not None:
            out["prediction.txt"] = self.prediction.text()
        if self.warnings:
            out["warnings.txt"] = "\n".join(self.warnings) + "\n"
        return out

    # ------------------------------------------------------------------ reading

    def _read_via(self) -> str:
        return self.facts.via if self.facts is not None else self.params.nodes[0].name

    def _status(self, hosts: Mapping[str, Runner], via: str) -> ClusterStatus:
        return cibstage.status(hosts[via])

    def _cib(self, hosts: Mapping[str, Runner], via: str) -> str:
        return cib.query(hosts[via]).xml

    def _settle(self, hosts: Mapping[str, Runner], wait: bool) -> ClusterStatus:
        """Read crm_mon until the live layout is the predicted one and holds for STABLE_S, or wait_s passed."""
        assert self.prediction is not None
        want = self.prediction.layout
        via = self._read_via()
        deadline = time.monotonic() + self.wait_s
        since: float | None = None
        last: ClusterStatus | None = None
        while True:
            try:
                last = self._status(hosts, via)
            except (FactParseError, RemoteError):
                last = None
            if last is not None and Layout.of(last) == want:
                since = since or time.monotonic()
                if time.monotonic() - since >= STABLE_S:
                    return last
            else:
                since = None
            if time.monotonic() > deadline:
                return last if last is not None else self._status(hosts, via)
            time.sleep(0.5)


def leftover_warning(m: cibstatus.MoveConstraint) -> str:
    """What a leftover move constraint does and how to remove it."""
    if m.kind == "prefer":
        effect = (f"{m.resource} stays on {m.node} whatever its other constraints say (a preferred node, "
                  "failing back), as long as that node can run it")
    else:
        effect = f"{m.resource} never runs on {m.node}, even if it is the last node left"
    return (f"move constraint {m.describe()}: {effect}. It stays until cleared: `crm resource clear {m.resource}` "
            f"(here: day2.clear({m.resource!r}))")


def check_node(params: Params, node: str, what: str) -> str:
    names = [n.name for n in params.nodes]
    if node not in names:
        raise OperationInputError(f"{what}={node!r} is not a node of this cluster; use one of: {', '.join(names)}")
    return node
