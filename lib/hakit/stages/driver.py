"""One driver for every stage: gather, plan, (dry run | apply), verify, record.

A stage (`Stage`) only reads hosts and decides; it never writes. The driver owns
what every stage used to write for itself: the blocked check, the dry-run and
unchanged rows, the one interpreter that runs a plan's operations (`execute`),
verification, the record and, on failure, ``error.json`` with what was changed.

Per-node work runs in parallel where that is safe: `gather_nodes` and `verify`
helpers read nodes concurrently, and `execute` runs each node's operations of a
phase (the ops between two barriers) on its own thread, in order.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .. import lock
from .. import record as records
from ..errors import HakitError, save_error
from ..ops import ApplyContext, Op, phases
from ..runner import Runner
from .base import Plan, StageResult, Verification

T = TypeVar("T")

# Per-node reads and per-node operations run side by side; `bench stages` turns this off to compare.
PARALLEL = {"on": True}


class StageBlocked(HakitError, RuntimeError):
    """The plan found a node the stage cannot run on; nothing was changed anywhere."""


class PlanChanged(HakitError, RuntimeError):
    """The cluster changed between the plan that was shown and the apply; nothing was changed."""


class StageFailed(HakitError, RuntimeError):
    """An operation failed during apply; ``changed`` lists what had already been carried out."""

    def __init__(self, stage: str, op: Op, cause: BaseException, done: list[Op], undone: list[str]):
        self.stage, self.op, self.cause = stage, op, cause
        self.node = op.node
        self.command = getattr(cause, "command", None) or op.describe()
        self.exit_code = getattr(cause, "exit_code", None)
        self.stderr = getattr(cause, "stderr", "") or ""
        self.changed = [f"{o.node}: {o.describe()}" for o in done if o.mutates]
        what = ("already carried out:\n  " + "\n  ".join(self.changed)) if self.changed else "nothing was changed"
        msg = f"{stage}: `{op.describe()}` on {op.node} failed: {cause}\n{what}"
        if undone:
            msg += "\nclean-up after the failure:\n  " + "\n  ".join(undone)
        super().__init__(msg)


@runtime_checkable
class Stage(Protocol):
    """What a stage provides. Its params and options are bound when it is made, so the plan a
    dry run shows and the plan an apply runs come from one object and cannot disagree."""

    name: str

    def gather(self, hosts: Mapping[str, Runner]) -> Any: ...

    def plan(self, facts: Any) -> Plan: ...

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification: ...


def per_node(hosts: Mapping[str, Runner], names: Iterable[str], fn: Callable[[Runner], T],
             parallel: bool = True) -> dict[str, T]:
    """``fn(host)`` for each named node, concurrently; results in the order of ``names``."""
    names = list(names)
    if not (parallel and PARALLEL["on"]) or len(names) < 2:
        return {n: fn(hosts[n]) for n in names}
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        futures = {n: pool.submit(fn, hosts[n]) for n in names}
        return {n: f.result() for n, f in futures.items()}


@dataclass
class Executed:
    op: Op
    detail: str
    seconds: float


def _run_node(ops: list[Op], ctx: ApplyContext) -> tuple[list[Executed], tuple[Op, BaseException] | None]:
    done: list[Executed] = []
    for op in ops:
        t0 = time.monotonic()
        try:
            detail = op.execute(ctx)
        except Exception as e:  # noqa: BLE001 - reported with what was done, re-raised as StageFailed
            return done, (op, e)
        done.append(Executed(op, detail, time.monotonic() - t0))
        ctx.progress(f"  {op.node}: {op.describe()} ({done[-1].seconds:.1f} s)")
    return done, None


def execute(plan: Plan, ctx: ApplyContext, parallel: bool = True) -> list[Executed]:
    """Run the plan's operations in order, phase by phase; stop at the first failure.

    Within a phase each node's operations run in order, nodes side by side when ``parallel``.
    On a failure the plan's ``undo`` steps run (best effort) and `StageFailed` names what
    had already been changed.
    """
    done: list[Executed] = []
    for phase in phases(plan.ops):
        groups: dict[str, list[Op]] = {}
        for op in phase:
            groups.setdefault(op.node, []).append(op)
        if parallel and PARALLEL["on"] and len(groups) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(groups))) as pool:
                outs = list(pool.map(lambda ops: _run_node(ops, ctx), groups.values()))
        else:
            outs = []
            for ops in groups.values():
                outs.append(_run_node(ops, ctx))
                if outs[-1][1]:
                    break
        index = {id(op): i for i, op in enumerate(phase)}
        done += sorted((d for got, _ in outs for d in got), key=lambda d: index[id(d.op)])  # plan order
        failure = next((f for _, f in outs if f), None)
        if failure:
            op, cause = failure
            undone = _undo(plan, ctx)
            ctx.memory.clear()
            raise StageFailed(plan.stage, op, cause, [d.op for d in done], undone) from cause
    ctx.memory.clear()  # secrets copied through this machine are dropped as soon as the plan is done
    return done


def _undo(plan: Plan, ctx: ApplyContext) -> list[str]:
    out = []
    for op in plan.undo:
        try:
            op.execute(ctx)
            out.append(f"{op.node}: {op.describe()}: done")
        except Exception as e:  # noqa: BLE001 - best effort; say what did not work
            out.append(f"{op.node}: {op.describe()}: FAILED ({str(e).splitlines()[0]})")
    return out


def _op_dicts(plan: Plan) -> list[dict]:
    """The plan's operations as JSON-ready dicts for the record (payload digests, never secret bytes)."""
    return [json.loads(json.dumps(o.to_dict(), default=str)) for o in plan.ops]


def dry_run_result(plan: Plan) -> StageResult:
    """The outcome rows of a dry run: what each node would get, nothing applied."""
    res = StageResult(plan.stage, dry_run=True, program=plan.program(), operations=_op_dicts(plan))
    for node in plan.nodes():
        acts = [o.action for o in plan.ops_for(node)]
        if node in plan.blocked:
            res.add(node, "not applied", f"blocked: {plan.blocked[node]}")
        elif node in plan.not_applicable:
            res.add(node, "not applied", f"{plan.not_applicable[node]}; dry run"
                    + (f"; would: {'; '.join(acts)}" if acts else ""))
        elif acts:
            res.add(node, "not applied", "dry run; would: " + "; ".join(acts))
        else:
            res.add(node, "unchanged", plan.no_change.get(node, ""))
    return res


def applied_result(plan: Plan, done: list[Executed]) -> StageResult:
    res = StageResult(plan.stage, dry_run=False, program=plan.program(), operations=_op_dicts(plan),
                      executed=[f"{d.op.node}  {d.op.describe()}" for d in done])
    for node in plan.nodes():
        details = [d.detail for d in done if d.op.node == node and d.op.mutates and d.detail]
        checks = [d.detail for d in done if d.op.node == node and not d.op.mutates and d.detail]
        if details:
            res.add(node, "changed", "; ".join(details))
        elif node in plan.not_applicable:
            res.add(node, "not applied", "; ".join([plan.not_applicable[node], *checks]))
        else:
            res.add(node, "unchanged", plan.no_change.get(node, "") or "; ".join(checks))
    return res


def apply(plan: Plan, hosts: MutableMapping[str, Runner], *, dry_run: bool = True, record_dir: str | Path = "",
          parallel: bool = True, progress: Callable[[str], None] | None = None) -> StageResult:
    """The one interpreter: a dry run reports the plan and sends nothing; a real run executes it."""
    if dry_run:
        return dry_run_result(plan)
    if plan.blocked:
        raise StageBlocked("stage blocked before any change: "
                           + "; ".join(f"{n}: {why}" for n, why in plan.blocked.items()))
    ctx = ApplyContext(hosts, Path(record_dir) if record_dir else None, progress=progress or (lambda _m: None))
    return applied_result(plan, execute(plan, ctx, parallel=parallel))


JOURNAL_DIR = "journal"  # in a record folder: one <node>.log per node (per trial, under <scenario>-<trial>/)
JOURNAL_UNITS = ("corosync", "pacemaker")
KERNEL_HEADER = "-- kernel --"  # in a journal text: the node's kernel messages follow
JOURNAL_MARGIN_S = 5.0  # either side of the window: node clocks may differ from this machine's a little


def journal_window(hosts: Mapping[str, Runner], since: float, until: float) -> dict[str, str]:
    """Each node's journal of corosync and pacemaker between two wall-clock times (node -> text), then its
    kernel's messages of the window under a line ``-- kernel --`` when it has any (a VM node's bonding driver
    and NICs; a container has no kernel log of its own, so nothing is added there).

    A node that cannot be read (powered off, unreachable) gets a line saying why instead."""
    units = " ".join(f"-u {u}" for u in JOURNAL_UNITS)
    window = (f"--since=@{since - JOURNAL_MARGIN_S:.0f} --until=@{until + JOURNAL_MARGIN_S:.0f} "
              "--no-pager -o short-iso-precise")
    cmd = (f"journalctl {units} {window} && "
           f"{{ k=$(journalctl -k -q {window} 2>/dev/null); [ -z \"$k\" ] || printf '%s\\n' '{KERNEL_HEADER}' \"$k\"; }}")

    def one(h: Runner) -> str:
        try:
            r = h.run(cmd, check=False, timeout=30)
        except Exception as e:  # noqa: BLE001 - a record is still written; the reason goes into it
            return f"(journal not read: {e})\n"
        return r.stdout if r.ok else f"(journalctl exited {r.exit_code}: {r.stderr.strip()})\n"

    return per_node(hosts, list(hosts), one)


def journal_files(journals: Mapping[str, str]) -> dict[str, str]:
    """node -> journal text as the record's files: <node>.log."""
    return {f"{n}.log": text for n, text in journals.items()}


@contextmanager
def locked(hosts: MutableMapping[str, Runner]) -> Iterator[str]:
    """Hold the cluster lock for a change (re-entrant inside `hakit run`); released on every path."""
    owner = lock.owner_id()
    taken = lock.acquire(hosts, owner)
    try:
        yield owner
    finally:
        lock.release({n: hosts[n] for n in taken}, owner)


@dataclass
class StageRun:
    """One stage's run, step by step (one notebook cell each) or all at once with `run_stage`."""

    stage: Stage
    hosts: MutableMapping[str, Runner]
    dry_run: bool = True
    record_dir: str = ""
    parallel: bool = True
    facts: Any = None
    plan: Plan | None = None
    result: StageResult | None = None
    verification: Verification | None = None
    artifacts: dict[str, object] = field(default_factory=dict)
    started: float | None = None  # wall clock of the first gather: the start of this run's journal window

    def gather(self) -> Any:
        if self.started is None:
            self.started = time.time()
        self.facts = self._guard(lambda: self.stage.gather(self.hosts))
        return self.facts

    def make_plan(self) -> Plan:
        if self.facts is None:
            self.gather()
        self.plan = self._guard(lambda: self.stage.plan(self.facts))
        return self.plan

    def apply(self) -> StageResult:
        """Dry run: report the plan. Real run: under the cluster lock, check the plan still holds, then run it."""
        if self.plan is None:
            self.make_plan()
        assert self.plan is not None
        plan = self.plan
        if self.dry_run or plan.blocked:  # a blocked plan is refused before anything, the lock included
            self.result = self._guard(lambda: apply(plan, self.hosts, dry_run=self.dry_run))
            return self.result
        def locked_apply() -> StageResult:
            with locked(self.hosts):
                return self._apply_locked()

        self.result = self._guard(locked_apply)
        return self.result

    def _apply_locked(self) -> StageResult:
        assert self.plan is not None
        shown = self.plan.program()
        fresh = self.stage.plan(self.stage.gather(self.hosts))
        if fresh.program() != shown or fresh.blocked != self.plan.blocked:
            raise PlanChanged(
                f"{self.stage.name}: the cluster changed since the plan was made; nothing was changed. Plan again "
                "(run the plan cell) and review it. Now it would be:\n  " + "\n  ".join(fresh.program() or ["(nothing)"]))
        self.plan = fresh
        before = getattr(self.stage, "before_apply", None)
        if before is not None:
            before(self.hosts, fresh)
        return apply(fresh, self.hosts, dry_run=False, record_dir=self.record_dir, parallel=self.parallel,
                     progress=print)

    def verify(self) -> Verification:
        try:
            self.verification = self.stage.verify(self.hosts, wait=not self.dry_run)
        except Exception as e:
            # The apply may have changed things: keep its record, and let the error say what changed.
            if self.result is not None:
                if isinstance(e, HakitError) and not e.changed:
                    e.changed = list(self.result.executed)
                records.save(self.result, self.record_dir)
            self._record_error(e)
            raise
        if self.dry_run and self.plan is not None and not self.plan.empty:
            self.verification.before_apply = True
        return self.verification

    def save(self, artifacts: Mapping[str, object] | None = None) -> records.StageRecord:
        """Write the record (when ``record_dir`` is set); then, in a real run, fail loudly if verify did."""
        if self.result is None:
            self.apply()
        assert self.result is not None
        saved = records.save(self.result, self.record_dir, verification=self.verification,
                             artifacts={**self.artifacts, **(artifacts or {}), **self._journals()})
        return saved

    def _journals(self) -> dict[str, object]:
        """corosync's and pacemaker's journal of every node for this run's window (files under journal/)."""
        if not self.record_dir or self.started is None:
            return {}
        return {JOURNAL_DIR: journal_files(journal_window(self.hosts, self.started, time.time()))}

    def raise_if_failed(self) -> None:
        if not self.dry_run and self.verification is not None:
            self.verification.raise_if_failed()

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as e:
            self._record_error(e)
            raise

    def _record_error(self, e: Exception) -> None:
        """error.json in the record folder, with this stage's name on a HakitError, and the journals."""
        if isinstance(e, HakitError) and e.stage is None:
            e.stage = self.stage.name
        save_error(e, self.record_dir)
        if self.record_dir:
            records.write_files(self.record_dir, self._journals())

    def _repr_html_(self) -> str:
        parts = [f"<h3>{html.escape(self.stage.name)}{' (dry run)' if self.dry_run else ''}</h3>"]
        for part in (self.plan, self.result, self.verification):
            if part is not None:
                parts.append(part._repr_html_())
        return "".join(parts)


def run_stage(stage: Stage, hosts: MutableMapping[str, Runner], *, dry_run: bool = True, record_dir: str = "",
              parallel: bool = True) -> StageRun:
    """Gather, plan, dry run or apply, verify and record one stage; raises if a real run fails to verify."""
    return complete(StageRun(stage, hosts, dry_run=dry_run, record_dir=record_dir, parallel=parallel))


def complete(run: StageRun) -> StageRun:
    """Every step of a stage run in order: gather, plan, dry run or apply, verify, record; raises if a
    real run fails to verify."""
    run.gather()
    run.make_plan()
    run.apply()
    run.verify()
    run.save()
    run.raise_if_failed()
    return run
