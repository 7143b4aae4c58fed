"""Stage 4: pacemaker properties. stonith-enabled, no-quorum-policy and resource defaults
where the timing profile asks for them; with `pacemaker.fencing`, the fence devices
(one per node) and their credentials on every node, installed before the CIB names them.
"""

from __future__ import annotations

import pandas as pd

from .. import fencing
from ..params import Params
from ..profiles import get_profile
from ..remote import Host
from ..render.cib import Bundle, properties
from . import cibstage
from .base import StageResult, Verification

STAGE = "04 pacemaker properties"


def bundle(params: Params, profile_name: str | None = None) -> Bundle:
    return properties(params, get_profile(profile_name) if profile_name else None)


def devices(params: Params) -> pd.DataFrame:
    """The fence devices this stage configures, one row per node, for the notebook (no secret)."""
    rows = [
        {"device": r.id, "powers off": r.target, "agent": r.agent,
         "BMC": f"{r.attributes['ip']}:{r.attributes['ipport']}", "user": r.attributes["username"],
         "never runs on": r.avoid_node, "delay": r.attributes.get("pcmk_delay_base", "-")}
        for r in fencing.stonith_resources(params)
    ]
    return pd.DataFrame(rows, columns=["device", "powers off", "agent", "BMC", "user", "never runs on", "delay"])


def credentials(hosts: dict[str, Host], params: Params, dry_run: bool, res: StageResult) -> fencing.CredentialReport | None:
    """Before the CIB names the devices: each BMC's password (root-only) and the ipmitool wrapper on
    every node. Adds one outcome per node to ``res``. Nothing to do when the params have no fencing."""
    if not fencing.stonith_resources(params):
        return None
    rep = fencing.install_credentials(hosts, params, dry_run=dry_run)
    if not dry_run and any(o.changed for o in rep.nodes):
        _retry_failed_devices(hosts, params)
    for o in rep.nodes:
        if not o.changed:
            res.add(o.node, "unchanged", "fencing credentials in place")
        elif dry_run:
            res.add(o.node, "not applied", f"dry run; would write {', '.join(o.changed)}")
        else:
            res.add(o.node, "changed", f"wrote {', '.join(o.changed)}")
    return rep


def _retry_failed_devices(hosts: dict[str, Host], params: Params) -> None:
    """A device that failed before its credentials were right stays failed (fail-count INFINITY)
    until cleaned up: once new credentials are in place, let pacemaker try those devices again."""
    ids = {r.id for r in fencing.stonith_resources(params)}
    for n in params.nodes:  # the first node whose pacemaker answers; a cleanup is cluster-wide
        try:
            st = cibstage.status(hosts[n.name])
        except Exception:  # noqa: BLE001 - no cluster on this node (yet): try the next
            continue
        failed = sorted({r.id for r in st.resources if r.id in ids and r.failed}
                        | {f.resource for f in st.failures if f.resource in ids})
        for rid in failed:
            hosts[n.name].run(["crm_resource", "--cleanup", "--resource", rid], check=False, timeout=60)
        break


def verify(hosts: dict[str, Host], params: Params, via: str, profile_name: str | None = None) -> Verification:
    """Read-only: the properties are live as wanted and pacemaker reports them in crm_mon; every
    fence device runs, never on the node it powers off, and its credentials are in place."""
    v = Verification(STAGE)
    st = cibstage.verify_common(v, hosts, params, bundle(params, profile_name), via)
    devs = fencing.stonith_resources(params)
    if devs:
        # A device's first start runs its monitor (a BMC round trip): give them a moment after apply.
        ids = [d.id for d in devs]
        st = cibstage.wait_for(hosts[via], lambda s: all(s.running_on(i) for i in ids), 60)
    for d in devs:
        where = st.running_on(d.id)
        failed = [r for r in st.resources if r.id == d.id and r.failed]
        ok = len(where) == 1 and where[0] != d.target and not failed
        v.add(cibstage.CLUSTER, f"{d.id} started, not on {d.target}", ok,
              f"running on {', '.join(where) or 'no node'}" + (" (FAILED)" if failed else "")
              + "; its monitor asks the BMC for the power state, so this also proves the credentials work")
    if devs:
        rep = fencing.install_credentials(hosts, params, dry_run=True)
        for o in rep.nodes:
            v.add(o.node, "fencing credentials in place (root-only)", not o.changed,
                  "all present" if not o.changed else f"missing or different: {', '.join(o.changed)}")
    want_stonith = params.pacemaker.stonith_enabled
    v.add(cibstage.CLUSTER, "crm_mon reports stonith-enabled", st.stonith_enabled == want_stonith,
          f"stonith-enabled={st.stonith_enabled} (wanted {want_stonith})")
    v.add(cibstage.CLUSTER, "crm_mon reports no-quorum-policy", st.no_quorum_policy == params.pacemaker.no_quorum_policy,
          f"no-quorum-policy={st.no_quorum_policy} (wanted {params.pacemaker.no_quorum_policy})")
    v.add(cibstage.CLUSTER, "quorate", st.quorate, f"DC {st.dc}, quorate={st.quorate}")
    return v


def choices(params: Params) -> pd.DataFrame:
    """The article's choices next to what production clusters should do, for the notebook."""
    two = len(params.nodes) == 2
    rows = [
        (
            "stonith-enabled",
            "false",
            str(params.pacemaker.stonith_enabled).lower(),
            "Without fencing, a node that stops answering might still hold the VIP or write data. "
            "Pacemaker then cannot know it is safe to start the service elsewhere. Production clusters "
            "fence (power off the lost node through its BMC or PDU) before they recover.",
        ),
        (
            "no-quorum-policy",
            "ignore",
            params.pacemaker.no_quorum_policy,
            (
                "With two nodes, losing one loses the majority. corosync's two_node: 1 (set by stage 3) keeps "
                "the survivor quorate and adds wait_for_all, so 'stop' (the default) would work here too; "
                "'ignore' is the article's pre-votequorum answer to the same problem."
                if two
                else "With three or more nodes a partition without the majority should stop its resources "
                "('stop', pacemaker's default); 'ignore' lets a minority keep running, and without fencing "
                "that can mean two copies of the service."
            ),
        ),
    ]
    return pd.DataFrame(rows, columns=["property", "article", "this cluster", "why it matters"])
