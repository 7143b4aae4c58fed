"""The part stages 4-6 share: read the CIB once, plan, preview, apply one patch, record.

The CIB is one document replicated by pacemaker to every node, so these stages
talk to one node (the first that answers) and report their CIB outcome on a
row named ``cluster``. Per-node work (stage 5's Apache set-up) is reported per node.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import cib
from ..facts.pacemaker import ClusterStatus, parse_crm_mon
from ..notebook import repo_root
from ..params import Params
from ..remote import Host, RemoteError
from ..render.cib import Bundle
from .base import Change, Plan, StageResult, Verification

CLUSTER = "cluster"  # the outcome row for the CIB, which belongs to no single node


@dataclass
class CibFacts:
    via: str  # the node we read (and will patch) the CIB through
    snapshot: cib.CibSnapshot
    status: ClusterStatus

    def _repr_html_(self) -> str:
        return (
            f"<h4>Current state (read through {html.escape(self.via)}; CIB version {self.snapshot.version}, "
            f"last written by {html.escape(self.snapshot.written_by)})</h4>" + self.status._repr_html_()
        )


def status(host: Host, timeout: float = 60) -> ClusterStatus:
    r = host.run("crm_mon -1 --output-as=xml", check=False, timeout=timeout)
    return parse_crm_mon(r.stdout)


def wait_for(host: Host, done: Callable[[ClusterStatus], bool], timeout_s: float) -> ClusterStatus:
    """Read crm_mon through ``host`` every second until ``done`` says so or time is up; the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = status(host)
        if done(st) or time.monotonic() > deadline:
            return st
        time.sleep(1)


def gather(hosts: dict[str, Host], params: Params) -> CibFacts:
    """Read the live CIB and cluster status through the first node whose pacemaker answers."""
    problems = []
    for n in params.nodes:
        h = hosts.get(n.name)
        if h is None:
            continue
        try:
            snap = cib.query(h)
            return CibFacts(n.name, snap, status(h))
        except (cib.CibError, RemoteError, ValueError) as e:
            problems.append(f"{n.name}: {e}")
    raise cib.CibError("no node answered for the CIB:\n  " + "\n  ".join(problems))


def plan(bundle: Bundle, facts: CibFacts) -> tuple[Plan, cib.CibPlan]:
    """Pure: the stage's CIB changes as a Plan (for the outcome table) and as a CibPlan (to apply)."""
    cp = cib.plan(bundle, facts.snapshot)
    p = Plan(bundle.stage)
    for c in cp.changes:
        p.changes.append(Change(CLUSTER, f"{c.action} {c.key}", c.detail))
    if cp.empty:
        p.no_change[CLUSTER] = (
            f"the CIB already holds all {len(bundle.items)} element(s) of this stage exactly "
            f"(CIB version {facts.snapshot.version})"
        )
    p.notes.append(f"only these elements are touched: {', '.join(bundle.ids())}")
    return p, cp


def preview(hosts: dict[str, Host], facts: CibFacts, cp: cib.CibPlan) -> cib.Preview:
    return cib.preview(hosts[facts.via], cp)


def out_dir(record_dir: str, stage_slug: str) -> Path:
    """Where the CIB copies go: the run's record folder, or runs/manual-<UTC>/<stage>/ by hand.

    The CIB is always saved before a change, because rollback needs it.
    """
    if record_dir:
        return Path(record_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return repo_root() / "runs" / f"manual-{stamp}" / stage_slug


def apply(
    hosts: dict[str, Host], facts: CibFacts, cp: cib.CibPlan, pv: cib.Preview, dry_run: bool, save_dir: Path,
    res: StageResult,
) -> cib.ApplyRecord | None:
    """Apply the CIB part; add the ``cluster`` outcome to ``res``. Refuses a plan crm_verify rejected."""
    if dry_run:
        res.add(CLUSTER, "not applied" if cp.changes else "unchanged",
                f"dry run; would: {', '.join(c.action + ' ' + c.key for c in cp.changes)}" if cp.changes else "")
        return None
    if cp.empty:
        res.add(CLUSTER, "unchanged", f"CIB version {facts.snapshot.version} kept")
        return None
    if not pv.verify_ok:
        raise cib.CibError(
            "crm_verify rejected the wanted CIB; nothing was applied:\n" + pv.verify_output[-1500:]
        )
    rec = cib.apply(hosts[facts.via], cp, save_dir)
    res.add(CLUSTER, "changed" if rec.changed else "unchanged",
            f"{rec.detail}; {', '.join(c.action + ' ' + c.key for c in cp.changes)}" if rec.changed else rec.detail)
    return rec


def artifacts(rec: cib.ApplyRecord | None, save_dir: Path) -> dict[str, object]:
    """The CIB files this stage wrote, for record.save (before, after, patch)."""
    out: dict[str, object] = {}
    for name in ("cib-before.xml", "cib-after.xml", "cib.patch.xml"):
        f = save_dir / name
        if f.exists() and (rec is not None or name == "cib-before.xml"):
            out[name] = f.read_text()
    return out


def verify_common(
    v: Verification, hosts: dict[str, Host], params: Params, bundle: Bundle, facts_via: str
) -> ClusterStatus:
    """Checks every CIB stage makes: the stage's elements are live, crm_verify -L is clean, all nodes online."""
    h = hosts[facts_via]
    snap = cib.query(h)
    missing = cib.managed_missing(bundle, snap.xml)
    v.add(CLUSTER, "this stage's elements are in the live CIB exactly", not missing,
          "all present" if not missing else f"missing or different: {', '.join(missing)}")
    r = h.run("crm_verify -L --verbose", check=False)
    out = (r.stdout + r.stderr).strip()
    v.add(CLUSTER, "crm_verify -L clean", r.exit_code == 0 and "error" not in out.lower(),
          "no errors or warnings" if not out else out[-300:])
    st = status(h)
    offline = [n.name for n in params.nodes if not (st.nodes.get(n.name) and st.nodes[n.name].online)]
    v.add(CLUSTER, "all nodes online", not offline, "all online" if not offline else f"not online: {', '.join(offline)}")
    return st


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
