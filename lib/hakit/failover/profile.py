"""Switch the cluster's timing profile for a failover suite, through the runbooks' own stages.

A profile sets corosync's totem timeouts (stage 3: corosync.conf, a cluster-wide
restart when it changes) and pacemaker's monitor intervals (stage 5: the CIB).
Nothing changes when the cluster already runs the profile.
"""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..profiles import get_profile
from ..remote import Host
from ..stages import cibstage
from ..stages import corosync as stage3
from ..stages import resources as stage5
from ..stages.base import StageResult


def use_profile(hosts: dict[str, Host], params: Params, profile_name: str, save_dir: Path) -> list[str]:
    """Make the cluster run ``profile_name``; return what was changed (empty: already so)."""
    get_profile(profile_name)  # unknown names fail here, before any change
    done: list[str] = []
    f3 = stage3.gather(hosts, params)
    p3 = stage3.plan(params, f3, profile_name)
    if p3.changes:
        stage3.apply(hosts, params, p3, dry_run=False, profile_name=profile_name)
        v = stage3.verify(hosts, params, wait_s=90)
        v.raise_if_failed()
        done.append(f"corosync.conf: {profile_name} timings (cluster restarted)")
    facts = cibstage.gather(hosts, params)
    _, cp = cibstage.plan(stage5.bundle(params, profile_name), facts)
    if cp.changes:
        pv = cibstage.preview(hosts, facts, cp)
        res = StageResult(stage5.STAGE)
        cibstage.apply(hosts, facts, cp, pv, False, save_dir, res)
        done.append(f"CIB: {profile_name} monitor intervals ({res.summary()})")
    return done
