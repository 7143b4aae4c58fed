"""The part stages 4-6 share: read the CIB once, plan one patch, preview it, apply it, record.

The CIB is one document replicated by pacemaker to every node, so these stages
read it through one node (the first whose pacemaker answers) and plan their CIB
change as one `CibPatch` operation on the row named ``cluster``. Per-node work
(stage 4's credentials, stage 5's Apache set-up) comes before it in the same plan.

Before a real apply, `CibStage.before_apply` checks the wanted CIB with
``crm_verify`` on that node (in a private temp dir): a CIB pacemaker would reject
stops the stage before anything changes. A dry run shows the same preview.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .. import cib
from ..facts.base import read
from ..facts.errors import FactParseError
from ..facts.pacemaker import CRM_MON, ClusterStatus
from ..notebook import repo_root
from ..ops import CLUSTER, ApplyContext, Op
from ..params import Params
from ..profiles import get_profile
from ..render.cib import Bundle
from ..runner import RemoteError, Runner
from .base import Plan, Verification

__all__ = ["CLUSTER", "CibFacts", "CibPatch", "CibStage", "gather", "status", "wait_for", "out_dir"]


@dataclass
class CibFacts:
    via: str  # the node we read (and will patch) the CIB through
    snapshot: cib.CibSnapshot
    status: ClusterStatus

    @property
    def cib(self) -> "CibFacts":
        return self

    def _repr_html_(self) -> str:
        return (
            f"<h4>Current state (read through {html.escape(self.via)}; CIB version {self.snapshot.version}, "
            f"last written by {html.escape(self.snapshot.written_by)})</h4>" + self.status._repr_html_()
        )


def status(host: Runner, timeout: float = 60) -> ClusterStatus:
    """crm_mon through ``host`` (the one `CRM_MON` fact, with this timeout)."""
    return read(host, dataclasses.replace(CRM_MON, timeout=timeout))


def wait_for(host: Runner, done: Callable[[ClusterStatus], bool], timeout_s: float) -> ClusterStatus:
    """Read crm_mon through ``host`` every second until ``done`` says so or time is up; the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = status(host)
        if done(st) or time.monotonic() > deadline:
            return st
        time.sleep(1)


def gather(hosts: Mapping[str, Runner], params: Params) -> CibFacts:
    """Read the live CIB and cluster status through the first node whose pacemaker answers."""
    problems = []
    for n in params.nodes:
        h = hosts.get(n.name)
        if h is None:
            continue
        try:
            snap = cib.query(h)
            return CibFacts(n.name, snap, status(h))
        except (cib.CibError, RemoteError, FactParseError) as e:
            problems.append(f"{n.name}: {e}")
    raise cib.CibError("no node answered for the CIB:\n  " + "\n  ".join(problems))


def out_dir(record_dir: str | Path | None, stage_slug: str) -> Path:
    """Where the CIB copies go: the run's record folder, or runs/manual-<UTC>/<stage>/ by hand.

    The CIB is always saved before a change, because rollback needs it.
    """
    if record_dir:
        return Path(record_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return repo_root() / "runs" / f"manual-{stamp}" / stage_slug


@dataclass(frozen=True, kw_only=True)
class CibPatch(Op):
    """Patch the CIB through ``via`` with one versioned ``cibadmin --patch`` (see `cib.apply`).

    Planned against one CIB version: if the configuration moved since, `cib.apply` refuses
    and changes nothing. The CIB copies go to the run's record folder (``ctx.record_dir``)
    or, by hand, to ``runs/manual-<UTC>/<slug>/``; ``applied`` receives what was done.
    """

    node: str = CLUSTER
    via: str
    cib_plan: cib.CibPlan = field(repr=False, compare=False)
    slug: str
    applied: list[cib.ApplyRecord] = field(default_factory=list, repr=False, compare=False)

    @property
    def elements(self) -> list[str]:
        return [f"{c.action} {c.key}" for c in self.cib_plan.changes]

    @property
    def against(self) -> cib.CibVersion:
        return self.cib_plan.base.version

    @property
    def action(self) -> str:
        return "patch the CIB: " + ", ".join(self.elements)

    def describe(self) -> str:
        # The configuration's version only: num_updates moves with every status change, and the
        # patch is refused (then re-planned) if the configuration moved, not the status.
        v = self.against
        return (f"cibadmin --patch through {self.via} against CIB configuration {v.admin_epoch}.{v.epoch}: "
                + "; ".join(self.elements))

    def execute(self, ctx: ApplyContext) -> str:
        save_dir = out_dir(ctx.record_dir, self.slug)
        rec = cib.apply(ctx.host(self.via), self.cib_plan, save_dir)
        self.applied.append(rec)
        if not rec.changed:
            return f"{rec.detail}: nothing sent"
        return f"{rec.detail}; {', '.join(self.elements)} (CIB copies in {save_dir})"

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"via": self.via, "against": str(self.against), "elements": self.elements,
                                    "wanted_sha256": hashlib.sha256(self.cib_plan.wanted_xml.encode()).hexdigest()}


def patch_of(plan: Plan) -> CibPatch | None:
    """The plan's CIB patch, if it has one."""
    return next((o for o in plan.ops if isinstance(o, CibPatch)), None)


def add_patch(p: Plan, bundle: Bundle, facts: CibFacts, slug: str) -> cib.CibPlan:
    """Pure: append the CibPatch for ``bundle`` to ``p`` (or say why the CIB needs none)."""
    cp = cib.plan(bundle, facts.snapshot)
    if cp.empty:
        p.no_change[CLUSTER] = (
            f"the CIB already holds all {len(bundle.items)} element(s) of this stage exactly "
            f"(CIB version {facts.snapshot.version} kept)"
        )
    else:
        why = "; ".join(f"{c.key}: {c.detail}" for c in cp.changes)
        p.ops.append(CibPatch(via=facts.via, cib_plan=cp, slug=slug, reason=why))
    p.notes.append(f"only these CIB elements are touched: {', '.join(bundle.ids())}")
    return cp


class CibStage:
    """What stages 4-6 share: the CIB facts, the patch, the preview and the pre-apply check."""

    name = ""
    slug = ""

    def __init__(self, params: Params, profile: str | None = None, wait_s: float = 60) -> None:
        self.params = params
        self.profile = get_profile(profile or params.cluster.profile)  # monitor intervals, rsc_defaults
        self.wait_s = wait_s
        self._previews: dict[tuple[str, str], cib.Preview] = {}

    def bundle(self) -> Bundle:
        raise NotImplementedError

    def gather_cib(self, hosts: Mapping[str, Runner]) -> CibFacts:
        return gather(hosts, self.params)

    def plan_cib(self, facts: CibFacts) -> Plan:
        """Pure: only the CIB part of the stage (one CibPatch, or no change)."""
        p = Plan(self.name)
        add_patch(p, self.bundle(), facts, self.slug)
        return p

    def crm_text(self) -> "CrmText":
        return crm_text(self.bundle())

    def preview(self, hosts: Mapping[str, Runner], facts: Any) -> cib.Preview:
        """crm_verify, crm_diff and crm_simulate of the wanted CIB (read-only; shown in a dry run too)."""
        cf: CibFacts = facts.cib
        return self._preview(hosts[cf.via], cib.plan(self.bundle(), cf.snapshot))

    def _preview(self, host: Runner, cp: cib.CibPlan) -> cib.Preview:
        key = (cp.base.config_sha256 + str(cp.base.version), hashlib.sha256(cp.wanted_xml.encode()).hexdigest())
        if key not in self._previews:
            self._previews[key] = cib.preview(host, cp)
        return self._previews[key]

    def before_apply(self, hosts: Mapping[str, Runner], plan: Plan) -> None:
        """Refuse, before any operation runs, a wanted CIB that crm_verify rejects."""
        patch = patch_of(plan)
        if plan.blocked or patch is None:
            return
        pv = self._preview(hosts[patch.via], patch.cib_plan)
        if not pv.verify_ok:
            err = cib.CibError(
                f"crm_verify rejected the wanted CIB; nothing was applied (checked on {patch.via}, exit "
                f"{pv.verify_exit}; fix the params and plan again):\n" + pv.verify_output[-1500:]
            )
            err.node, err.command, err.exit_code, err.stderr = patch.via, pv.verify_command, pv.verify_exit, pv.verify_output
            raise err

    def artifacts(self, plan: Plan | None) -> dict[str, object]:
        """The crm text and the CIB files the patch saved (before, after, patch), for the record."""
        out: dict[str, object] = {"crm.txt": str(self.crm_text())}
        patch = patch_of(plan) if plan is not None else None
        if patch is None or not patch.applied:
            return out
        rec = patch.applied[-1]
        for path in (rec.before, rec.after, rec.patch):
            if path is not None and path.exists():
                out[path.name] = path.read_text()
        return out

    def undo_hint(self, plan: Plan | None) -> str:
        """How to put the CIB back as it was before this run's patch."""
        patch = patch_of(plan) if plan is not None else None
        if patch is None or not patch.applied:
            return "nothing to undo: this run did not patch the CIB"
        return (f"cib.rollback(hosts[{patch.via!r}], Path({str(patch.applied[-1].before)!r})) "
                "restores the configuration saved before the patch")


def verify_common(v: Verification, hosts: Mapping[str, Runner], params: Params, bundle: Bundle) -> tuple[str, ClusterStatus]:
    """Checks every CIB stage makes: the stage's elements are live, crm_verify -L is clean, all nodes
    online. Returns the node read through and its crm_mon reading."""
    facts = gather(hosts, params)
    h = hosts[facts.via]
    missing = cib.managed_missing(bundle, facts.snapshot.xml)
    v.add(CLUSTER, "this stage's elements are in the live CIB exactly", not missing,
          "all present" if not missing else f"missing or different: {', '.join(missing)}")
    r = h.run("crm_verify -L --verbose", check=False)
    out = (r.stdout + r.stderr).strip()
    v.add(CLUSTER, "crm_verify -L clean", r.exit_code == 0 and "error" not in out.lower(),
          "no errors or warnings" if not out else out[-300:])
    st = facts.status
    offline = [n.name for n in params.nodes if not (st.nodes.get(n.name) and st.nodes[n.name].online)]
    v.add(CLUSTER, "all nodes online", not offline, "all online" if not offline else f"not online: {', '.join(offline)}")
    return facts.via, st


def placement(st: ClusterStatus, rsc_id: str) -> str:
    """Where an instance of a resource is, for a check's detail: ``on vm-node1``, ``on vm-node1 (Starting)``."""
    inst = [r for r in st.instances(rsc_id) if r.active]
    if not inst:
        return "on no node"
    return "on " + ", ".join(", ".join(r.nodes) + ("" if r.settled else f" ({r.role})") for r in inst)


def check_not_failed(v: Verification, st: ClusterStatus) -> None:
    """No resource is in a failed state now. Past failures (pacemaker keeps them until cleaned up,
    e.g. after a failover test) are named in the detail, not counted against the stage."""
    failed = sorted({f"{r.id} on {', '.join(r.nodes) or '?'}" for r in st.resources if r.failed})
    past = "; ".join(f"{f.op_key} on {f.node}: {f.exitstatus}" for f in st.failures)
    detail = "none failed now" if not failed else f"FAILED: {', '.join(failed)}"
    if past:
        detail += f"; earlier failures on record: {past} (crm_resource --cleanup clears them)"
    v.add(CLUSTER, "no resource in a failed state", not failed, detail)


def crm_text_frame(bundle: Bundle) -> pd.DataFrame:
    """One row per element: the crm shell command that creates it."""
    return pd.DataFrame([{"element": i.key, "crm shell": i.crm()} for i in bundle.items])


class CrmText(str):
    """The crm shell text of a stage, shown as a block an admin could paste into `crm configure`."""

    def _repr_html_(self) -> str:
        return f"<h4>crm configure (what this stage sets)</h4><pre>{html.escape(str(self))}</pre>"


def crm_text(bundle: Bundle) -> CrmText:
    return CrmText(bundle.crm())


def slug(stage: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")
