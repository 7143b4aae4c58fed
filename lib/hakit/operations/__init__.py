"""Day-2 operations (notebook 08): read the cluster, standby / online, move / clear, cleanup and
failcounts, maintenance mode, a manual fence test, where the logs are, and `hakit check`.

Not to be confused with `hakit.ops`, the typed steps every plan is made of: each operation here is a
small stage (`base.Operation`) whose plan is such steps. `Operations` runs one per notebook cell:
gather, plan, crm_simulate's prediction, then a dry run (nothing that changes a host is sent) or
the apply under the cluster lock, verification against the prediction, and a record in its own
folder ``<record_dir>/<NN>-<operation>/`` (``record.json``, ``prediction.txt``, warnings). `save`
writes the notebook's own record over all of them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import record
from ..ops import CLUSTER
from ..params import Params
from ..runner import Runner
from ..stages.base import StageResult, Verification
from ..stages.driver import StageRun
from . import reading
from .base import STAGE, CrmCommand, Operation, OperationInputError, check_node, read_facts
from .changes import Cleanup, Clear, Maintenance, Move, Standby, check_lifetime
from .fence import FenceTest

__all__ = ["Operations", "OperationRun", "OperationInputError", "STAGE"]


@dataclass
class OperationRun:
    """One operation as it ran: its plan (crm text and the exact commands), prediction, outcome, verification."""

    op: Operation
    run: StageRun
    seconds: float
    saved: record.StageRecord

    @property
    def commands(self) -> pd.DataFrame:
        plan = self.run.plan
        rows = [{"crm shell": o.crm, "what runs (pacemaker)": o.command, "through": o.via, "why": o.reason}
                for o in (plan.ops if plan else []) if isinstance(o, CrmCommand)]
        return pd.DataFrame(rows, columns=["crm shell", "what runs (pacemaker)", "through", "why"])

    @property
    def outcome(self) -> str:
        res = self.run.result
        return res.outcome(CLUSTER).outcome if res is not None else "not run"

    @property
    def verified(self) -> bool:
        return self.run.verification is not None and self.run.verification.ok

    def _repr_html_(self) -> str:
        dry = self.run.dry_run
        parts = [f"<h3>{html.escape(self.op.name)}{' (dry run)' if dry else ''}</h3>"]
        if self.op.forced_dry_run and not self.run.plan.blocked:  # type: ignore[union-attr]
            parts.append(f"<p><b>{html.escape(self.op.forced_dry_run)}</b></p>")
        plan = self.run.plan
        if plan is not None:
            if plan.ops:
                parts.append("<h4>The change</h4>" + self.commands.to_html(index=False))
            parts += [f"<p><b>Nothing to do</b>: {html.escape(why)}</p>" for why in plan.no_change.values()]
            parts += [f"<p><b>Blocked</b>: {html.escape(why)}</p>" for why in plan.blocked.values()]
            parts += [f"<p><i>{html.escape(n)}</i></p>" for n in plan.notes]
        if self.op.prediction is not None:
            parts.append(self.op.prediction._repr_html_())
        for part in (self.run.result, self.run.verification):
            if part is not None:
                parts.append(part._repr_html_())
        parts += [f"<p><b>Warning</b>: {html.escape(w)}</p>" for w in self.op.warnings]
        parts.append(self.saved._repr_html_() + f"<p>{self.seconds:.1f} s</p>")
        return "".join(parts)

    def __str__(self) -> str:
        return f"{self.op.name}: {self.outcome}{' (dry run)' if self.run.dry_run else ''}"


class Operations:
    """The day-2 calls of notebook 08, one per cell, all against the same connected nodes."""

    def __init__(self, params: Params, hosts: MutableMapping[str, Runner], *, dry_run: bool = True,
                 record_dir: str = "", wait_s: float = 120, connect: Callable[[str], Runner] | None = None) -> None:
        self.params = params
        self.hosts = hosts
        self.dry_run = dry_run
        self.record_dir = record_dir
        self.wait_s = wait_s
        self.connect = connect or self._ssh
        self.done: list[OperationRun] = []
        self.readings: list[reading.ClusterReading] = []
        self.log_places: reading.LogPlaces | None = None

    def _ssh(self, name: str) -> Runner:
        from ..remote import connect

        return connect(self.params, name)

    # ------------------------------------------------------------------ names, checked before any host is touched

    @property
    def passive_node(self) -> str:
        """The node the examples use by default: the last one in the params that is not the preferred node."""
        return [n.name for n in self.params.nodes if n.name != self.params.preferred_node][-1]

    def _node(self, node: str, what: str = "node") -> str:
        return check_node(self.params, node, what) if node else self.passive_node

    # ------------------------------------------------------------------ read-only

    def read(self) -> reading.ClusterReading:
        """``crm_mon -1 -Af`` as it prints, with the legend of what each part means, and leftover move constraints."""
        got = reading.read(self.hosts, self.params)
        self.readings.append(got)
        return got

    def failcounts(self) -> reading.FailCounts:
        """Every failcount and failed action, with what each does to where the resource may run."""
        f = read_facts(self.hosts, self.params)
        return reading.FailCounts(reading.failcount_frame(f.cib_xml, f.status.failures))

    def logs(self, lines: int = 15) -> reading.LogPlaces:
        self.log_places = reading.logs(self.hosts, self.params, lines)
        return self.log_places

    def check(self):  # -> hakit.check.DriftReport
        """`hakit check`: every drift of the live cluster from the params, each with its fix (read-only)."""
        from ..check import check

        return check(self.params, self.hosts)

    # ------------------------------------------------------------------ changes

    def standby(self, node: str = "") -> OperationRun:
        return self._run(Standby(self.params, self._node(node), self.wait_s))

    def online(self, node: str = "") -> OperationRun:
        return self._run(Standby(self.params, self._node(node), False, self.wait_s))

    def move(self, resource: str = "vip", node: str = "", lifetime: str = "") -> OperationRun:
        """Move a resource to ``node`` (empty: the other online node). It leaves cli-prefer-<resource> behind."""
        to = check_node(self.params, node, "node") if node else ""
        return self._run(Move(self.params, resource, to, check_lifetime(lifetime), self.wait_s))

    def clear(self, resource: str = "vip") -> OperationRun:
        return self._run(Clear(self.params, resource, self.wait_s))

    def cleanup(self, resource: str = "", node: str = "") -> OperationRun:
        on = check_node(self.params, node, "node") if node else ""
        return self._run(Cleanup(self.params, resource, on, self.wait_s))

    def maintenance(self, on: bool) -> OperationRun:
        if not isinstance(on, bool):
            raise OperationInputError(f"maintenance(on={on!r}): use True or False")
        return self._run(Maintenance(self.params, on, self.wait_s))

    def fence_test(self, node: str = "", confirm: str = "", wait_s: float = 240) -> OperationRun:
        """Power ``node`` off through its fence device and back on; runs only when ``confirm`` repeats the node's name
        (empty: a dry run of it whatever ``dry_run`` says)."""
        target = self._node(node, "fence_node")
        if confirm and confirm != target:
            raise OperationInputError(f"confirm={confirm!r} does not repeat the node to fence ({target!r}); "
                                      f"give confirm={target!r} to run the test, or leave it empty for a dry run")
        return self._run(FenceTest(self.params, target, confirm == target, self.connect, wait_s))

    def _run(self, op: Operation) -> OperationRun:
        sub = str(Path(self.record_dir) / f"{len(self.done) + 1:02d}-{op.slug}") if self.record_dir else ""
        sr = StageRun(op, self.hosts, dry_run=self.dry_run or bool(op.forced_dry_run), record_dir=sub)
        t0 = time.monotonic()
        sr.gather()
        plan = sr.make_plan()
        if not plan.blocked:
            sr._guard(lambda: op.preview(self.hosts))  # shown before anything changes; a real run predicts again
        sr.apply()
        sr.verify()
        saved = sr.save(artifacts=op.artifacts())
        done = OperationRun(op, sr, time.monotonic() - t0, saved)
        self.done.append(done)
        sr.raise_if_failed()
        return done

    # ------------------------------------------------------------------ the notebook's record

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"operation": r.op.title, "dry run": r.run.dry_run, "outcome": r.outcome, "verified": r.verified,
              "seconds": round(r.seconds, 1), "crm shell": "; ".join(r.commands["crm shell"]) or "-"}
             for r in self.done],
            columns=["operation", "dry run", "outcome", "verified", "seconds", "crm shell"])

    def result(self) -> tuple[StageResult, Verification]:
        res = StageResult(STAGE, dry_run=self.dry_run)
        ver = Verification(STAGE)
        for r in self.done:
            assert r.run.result is not None
            res.program += [f"{r.op.title}: {line}" for line in r.run.result.program]
            res.executed += [f"{r.op.title}: {line}" for line in r.run.result.executed]
            row = r.run.result.outcome(CLUSTER)
            res.add(r.op.title, row.outcome, row.detail)
            if r.run.verification is not None:
                ver.before_apply = ver.before_apply or r.run.verification.before_apply
                for c in r.run.verification.checks:
                    ver.add(c.node, f"{r.op.title}: {c.check}", c.ok, c.detail)
        return res, ver

    def save(self) -> record.StageRecord:
        """The notebook's record: one outcome row per operation, their checks, the crm_mon readings and the logs."""
        res, ver = self.result()
        artifacts: dict[str, object] = {"operations.csv": self.summary()}
        if self.readings:
            artifacts["crm_mon.txt"] = "\n\n".join(r.text() for r in self.readings)
        if self.log_places is not None:
            artifacts["logs.txt"] = self.log_places.text()
        return record.save(res, self.record_dir, verification=ver if ver.checks else None, artifacts=artifacts)

    def close(self) -> None:
        for h in self.hosts.values():
            h.close()
