"""What every stage returns: a plan, per-node outcomes, and a verification table.

Each shows itself in a notebook (`_repr_html_`) and turns into a pandas
DataFrame for records. A stage module provides `gather`, `plan` (pure),
`apply` and `verify` built from these.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

OutcomeKind = Literal["changed", "unchanged", "not applied", "failed"]


@dataclass(frozen=True)
class Change:
    """One thing a stage will do on one node, and why."""

    node: str
    action: str
    reason: str


@dataclass
class Plan:
    """What would change (or, per node, why nothing will). Pure data: a dry run shows this."""

    stage: str
    changes: list[Change] = field(default_factory=list)
    no_change: dict[str, str] = field(default_factory=dict)  # node -> why nothing changes
    not_applicable: dict[str, str] = field(default_factory=dict)  # node -> why it cannot apply here
    notes: list[str] = field(default_factory=list)

    def for_node(self, node: str) -> list[Change]:
        return [c for c in self.changes if c.node == node]

    @property
    def empty(self) -> bool:
        return not self.changes

    def to_frame(self) -> pd.DataFrame:
        rows = [{"node": c.node, "action": c.action, "reason": c.reason} for c in self.changes]
        rows += [{"node": n, "action": "no change", "reason": why} for n, why in self.no_change.items()]
        rows += [{"node": n, "action": "not applied", "reason": why} for n, why in self.not_applicable.items()]
        return pd.DataFrame(rows, columns=["node", "action", "reason"])

    def _repr_html_(self) -> str:
        head = f"<h4>Plan: {html.escape(self.stage)}</h4>"
        head += "<p>" + ("nothing to change" if self.empty else f"{len(self.changes)} change(s)") + "</p>"
        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in self.notes)
        return head + notes + self.to_frame().to_html(index=False, escape=True)

    def __str__(self) -> str:
        return self.to_frame().to_string(index=False)


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


class VerificationFailed(AssertionError):
    """Read-only checks after a stage found the cluster not as intended."""


@dataclass
class Verification:
    stage: str
    checks: list[Check] = field(default_factory=list)

    def add(self, node: str, check: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(node, check, bool(ok), detail))

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"node": c.node, "check": c.check, "ok": c.ok, "detail": c.detail} for c in self.checks],
            columns=["node", "check", "ok", "detail"],
        )

    def raise_if_failed(self) -> None:
        if not self.ok:
            lines = [f"{c.node}: {c.check}: {c.detail}" for c in self.failed] or ["no checks ran"]
            raise VerificationFailed(f"{self.stage}: verification failed:\n  " + "\n  ".join(lines))

    def _repr_html_(self) -> str:
        verdict = "all checks pass" if self.ok else f"{len(self.failed)} check(s) FAILED"
        return f"<h4>Verify: {html.escape(self.stage)}: {verdict}</h4>" + self.to_frame().to_html(index=False, escape=True)

    def __str__(self) -> str:
        return self.to_frame().to_string(index=False)
