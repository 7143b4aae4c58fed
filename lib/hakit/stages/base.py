"""What every stage returns: a plan, per-node outcomes, and a verification table.

Each shows itself in a notebook (`_repr_html_`) and turns into a pandas
DataFrame for records. A stage provides `gather`, `plan` (pure) and `verify`
(see `stages.driver.Stage`); the driver applies the plan.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from ..errors import HakitError
from ..ops import Barrier, Op

OutcomeKind = Literal["changed", "unchanged", "not applied", "failed"]


@dataclass(frozen=True)
class Change:
    """One thing a stage will do on one node, and why."""

    node: str
    action: str
    reason: str


@dataclass
class Plan:
    """What a stage will do: an ordered list of typed operations (or, per node, why nothing).

    Pure data. A dry run shows exactly ``ops``; the driver's apply runs exactly ``ops``, in
    order, with the barriers they contain, and nothing else.

    ``blocked`` nodes stop the whole stage before anything runs; ``not_applicable`` nodes are
    left alone (with the reason) while the others go ahead. ``undo`` holds best-effort clean-up
    steps the driver runs if an operation fails (e.g. remove staged files).
    """

    stage: str
    ops: list[Op] = field(default_factory=list)
    no_change: dict[str, str] = field(default_factory=dict)  # node -> why nothing changes
    not_applicable: dict[str, str] = field(default_factory=dict)  # node -> why it cannot apply here
    blocked: dict[str, str] = field(default_factory=dict)  # node -> why the stage cannot run at all
    notes: list[str] = field(default_factory=list)
    undo: list[Op] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # node order for outcome rows (params order)

    @property
    def changes(self) -> list[Change]:
        """One row per operation (barriers left out): node, short action, reason."""
        return [Change(o.node, o.action, o.reason) for o in self.ops if not isinstance(o, Barrier)]

    def for_node(self, node: str) -> list[Change]:
        return [c for c in self.changes if c.node == node]

    def ops_for(self, node: str) -> list[Op]:
        return [o for o in self.ops if o.node == node and not isinstance(o, Barrier)]

    @property
    def empty(self) -> bool:
        return not any(o.mutates for o in self.ops)

    def nodes(self) -> list[str]:
        """Every node the plan speaks of, in params order first."""
        seen = list(self.order)
        for n in [o.node for o in self.ops if not isinstance(o, Barrier)] + [*self.no_change, *self.not_applicable,
                                                                               *self.blocked]:
            if n not in seen:
                seen.append(n)
        return seen

    def program(self) -> list[str]:
        """The operations as a dry run shows them and a real run executes them, one line each."""
        return [f"{o.node}  {o.describe()}" if not isinstance(o, Barrier) else o.describe() for o in self.ops]

    def to_frame(self) -> pd.DataFrame:
        rows = [{"node": o.node if not isinstance(o, Barrier) else "", "operation": o.describe(), "reason": o.reason}
                for o in self.ops]
        rows += [{"node": n, "operation": "no change", "reason": why} for n, why in self.no_change.items()]
        rows += [{"node": n, "operation": "not applied", "reason": why} for n, why in self.not_applicable.items()]
        rows += [{"node": n, "operation": "BLOCKED", "reason": why} for n, why in self.blocked.items()]
        return pd.DataFrame(rows, columns=["node", "operation", "reason"])

    def summary(self) -> str:
        n = sum(1 for o in self.ops if not isinstance(o, Barrier))
        if self.blocked:
            return f"blocked on {', '.join(self.blocked)}: nothing will run"
        return "nothing to change" if not n else f"{n} operation(s)"

    def _repr_html_(self) -> str:
        head = f"<h4>Plan: {html.escape(self.stage)}</h4><p>{html.escape(self.summary())}</p>"
        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in self.notes)
        return head + notes + self.to_frame().to_html(index=False, escape=True)

    def __str__(self) -> str:
        return f"{self.stage}: {self.summary()}\n" + self.to_frame().to_string(index=False)


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    outcome: OutcomeKind
    detail: str = ""


@dataclass
class StageResult:
    """The one-line-per-node outcome of applying a stage."""

    stage: str
    outcomes: list[NodeOutcome] = field(default_factory=list)
    dry_run: bool = False
    program: list[str] = field(default_factory=list)  # the plan's operations (what a dry run showed)
    executed: list[str] = field(default_factory=list)  # the operations a real apply carried out, in order
    operations: list[dict] = field(default_factory=list)  # the plan's operations with their payload digests

    def add(self, node: str, outcome: OutcomeKind, detail: str = "") -> None:
        self.outcomes.append(NodeOutcome(node, outcome, detail))

    @property
    def changed(self) -> bool:
        return any(o.outcome == "changed" for o in self.outcomes)

    def outcome(self, node: str) -> NodeOutcome:
        for o in self.outcomes:
            if o.node == node:
                return o
        raise KeyError(node)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"stage": self.stage, "node": o.node, "outcome": o.outcome, "detail": o.detail} for o in self.outcomes],
            columns=["stage", "node", "outcome", "detail"],
        )

    def summary(self) -> str:
        return "; ".join(f"{o.node}: {o.outcome}" + (f" ({o.detail})" if o.detail else "") for o in self.outcomes)

    def _repr_html_(self) -> str:
        title = f"<h4>Outcome: {html.escape(self.stage)}{' (dry run: nothing applied)' if self.dry_run else ''}</h4>"
        return title + self.to_frame().to_html(index=False, escape=True)

    def __str__(self) -> str:
        return f"{self.stage}: {self.summary()}"


@dataclass(frozen=True)
class Check:
    node: str
    check: str
    ok: bool
    detail: str = ""


class VerificationFailed(HakitError, AssertionError):
    """Read-only checks after a stage found the cluster not as intended."""


@dataclass
class Verification:
    stage: str
    checks: list[Check] = field(default_factory=list)
    # Set by a dry run whose plan has changes: failures then describe the nodes before the plan,
    # and are expected (the record and the notebook say so).
    before_apply: bool = False

    def add(self, node: str, check: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(node, check, bool(ok), detail))

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_frame(self) -> pd.DataFrame:
        rows = [{"node": c.node, "check": c.check, "ok": c.ok, "detail": c.detail} for c in self.checks]
        if self.before_apply:
            for r in rows:
                r["ok"] = True if r["ok"] else "expected before apply"
        return pd.DataFrame(rows, columns=["node", "check", "ok", "detail"])

    def raise_if_failed(self) -> None:
        if not self.ok:
            lines = [f"{c.node}: {c.check}: {c.detail}" for c in self.failed] or ["no checks ran"]
            raise VerificationFailed(f"{self.stage}: verification failed:\n  " + "\n  ".join(lines))

    def _repr_html_(self) -> str:
        verdict = "all checks pass" if self.ok else f"{len(self.failed)} check(s) FAILED"
        if self.before_apply and not self.ok:
            verdict = (f"{len(self.failed)} check(s) not met yet: expected before apply (this is a dry run of a plan "
                       "with changes; the checks describe the nodes as they are now)")
        return f"<h4>Verify: {html.escape(self.stage)}: {verdict}</h4>" + self.to_frame().to_html(index=False, escape=True)

    def __str__(self) -> str:
        return self.to_frame().to_string(index=False)
