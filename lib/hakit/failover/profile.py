"""Switch the cluster's timing profile for a failover suite, through the runbooks' own stages.

A profile sets corosync's totem timeouts (stage 3: corosync.conf, reloaded at
runtime on every node), pacemaker's dc-deadtime (stage 4) and its monitor
intervals (stage 5), the last two in the CIB.
Nothing changes when the cluster already runs the profile. It holds the cluster
lock while it changes anything, like every stage.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from ..params import Params
from ..profiles import get_profile
from ..runner import Runner
from ..stages import corosync, driver
from ..stages.properties import PropertiesStage
from ..stages.resources import ResourcesStage


def use_profile(hosts: MutableMapping[str, Runner], params: Params, profile_name: str, save_dir: Path) -> list[str]:
    """Make the cluster run ``profile_name``; return what was changed (empty: already so)."""
    get_profile(profile_name)  # unknown names fail here, before any change
    done: list[str] = []
    with driver.locked(hosts):
        s3 = corosync.CorosyncStage(params, profile_name)
        p3 = s3.plan(s3.gather(hosts))
        if p3.blocked:
            raise driver.StageBlocked(f"switching to profile {profile_name!r}: "
                                      + "; ".join(f"{n}: {why}" for n, why in p3.blocked.items()))
        if not p3.empty:
            driver.apply(p3, hosts, dry_run=False)
            corosync.verify(hosts, params, wait_s=90).raise_if_failed()
            how = next((n.split(" (")[0] for n in p3.notes if n.startswith("class:")), "changed")
            done.append(f"corosync.conf: {profile_name} timings ({how})")
        # Only the CIB part of stages 4 and 5: the credentials are in place, Apache is already the cluster's.
        for stage, what in ((PropertiesStage(params, profile_name), "properties"),
                            (ResourcesStage(params, profile_name), "monitor intervals")):
            p = stage.plan_cib(stage.gather_cib(hosts))
            if not p.empty:
                stage.before_apply(hosts, p)
                res = driver.apply(p, hosts, dry_run=False, record_dir=save_dir)
                done.append(f"CIB: {profile_name} {what} ({res.summary()})")
    return done
