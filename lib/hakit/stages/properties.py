"""Stage 4: pacemaker properties. stonith-enabled, no-quorum-policy and resource defaults
where the timing profile asks for them; with `pacemaker.fencing`, the fence devices
(one per node) and their credentials on every node, installed before the CIB names them.

The plan: per node the credential files (`WriteSecret` for each BMC password, carried by
reference; `WriteFile` for the ipmitool wrapper), a barrier, the one `CibPatch`, and, when
credentials changed, a clean-up of fence devices that had failed with the old ones.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

import pandas as pd

from .. import fencing
from ..ops import Barrier, Command, Op
from ..params import Params
from ..profiles import get_profile
from ..render.cib import Bundle, properties
from ..runner import Runner
from . import cibstage
from .base import Plan, StageResult, Verification
from .driver import apply, locked, per_node

STAGE = "04 pacemaker properties"
SLUG = "04-pacemaker-properties"


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


@dataclass
class PropertiesFacts:
    cib: cibstage.CibFacts
    credentials: fencing.CredentialFacts | None  # None: the params configure no fencing

    def _repr_html_(self) -> str:
        creds = self.credentials._repr_html_() if self.credentials is not None else (
            "<p>" + html.escape("no fence devices configured: no credentials to install") + "</p>")
        return self.cib._repr_html_() + creds


def gather_credentials(hosts: Mapping[str, Runner], params: Params) -> fencing.CredentialFacts:
    """Read-only, every node in parallel: which credential files are in place (contents compared in memory)."""
    wanted = fencing.wanted_files(params)
    return fencing.CredentialFacts(per_node(hosts, [n.name for n in params.nodes],
                                            lambda h: fencing.node_credentials(h, wanted)))


def failed_devices(params: Params, facts: cibstage.CibFacts) -> list[str]:
    """This stage's fence devices that crm_mon shows failed now or with a failure on record."""
    ids = {r.id for r in fencing.stonith_resources(params)}
    st = facts.status
    return sorted({r.id for r in st.resources if r.id in ids and r.failed}
                  | {f.resource for f in st.failures if f.resource in ids})


class PropertiesStage(cibstage.CibStage):
    """Stage 4 with its params and timing profile bound (see `stages.driver.Stage`)."""

    name = STAGE
    slug = SLUG

    def bundle(self) -> Bundle:
        return bundle(self.params, self.profile.name)

    @property
    def fenced(self) -> bool:
        return bool(fencing.stonith_resources(self.params))

    def gather(self, hosts: Mapping[str, Runner]) -> PropertiesFacts:
        creds = gather_credentials(hosts, self.params) if self.fenced else None
        return PropertiesFacts(self.gather_cib(hosts), creds)

    def plan(self, facts: PropertiesFacts) -> Plan:
        """Pure: credentials on every node, a barrier, the CIB patch, then a retry of failed devices."""
        names = [n.name for n in self.params.nodes]
        p = Plan(STAGE, order=names if facts.credentials is not None else [])
        p.notes.append(f"timing profile {self.profile.name!r}: {self.profile.summary}")
        creds: list[Op] = []
        if facts.credentials is not None:
            creds = fencing.credential_ops(self.params, facts.credentials)
            p.ops += creds
            for n in names:
                if not any(o.node == n for o in creds):
                    p.no_change[n] = "fencing credentials in place (root-only)"
        if creds:
            p.ops.append(Barrier(text="credentials on every node before the CIB names the devices"))
        cibstage.add_patch(p, self.bundle(), facts.cib, SLUG)
        failed = failed_devices(self.params, facts.cib) if creds else []
        if failed:
            if cibstage.patch_of(p) is not None:
                p.ops.append(Barrier(text="the CIB names the devices"))
            for rid in failed:
                p.ops.append(Command(
                    node=facts.cib.via, argv=("crm_resource", "--cleanup", "--resource", rid), timeout=60,
                    reason=f"{rid} failed before its credentials were right; with the new ones pacemaker tries again"))
        return p

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params, self.profile.name, wait_s=self.wait_s if wait else 0)


def install_credentials(hosts: MutableMapping[str, Runner], params: Params, dry_run: bool = False) -> StageResult:
    """Only the credential part of stage 4 (for a BMC password change by hand, and tests)."""
    facts = gather_credentials(hosts, params)
    p = Plan(STAGE, ops=fencing.credential_ops(params, facts), order=[n.name for n in params.nodes])
    for n in params.nodes:
        if not p.ops_for(n.name):
            p.no_change[n.name] = "fencing credentials in place (root-only)"
    if dry_run:
        return apply(p, hosts, dry_run=True)
    with locked(hosts):
        return apply(p, hosts, dry_run=False)


def verify(hosts: Mapping[str, Runner], params: Params, profile_name: str | None = None,
           wait_s: float = 60) -> Verification:
    """Read-only: the properties are live as wanted and pacemaker reports them in crm_mon; every
    fence device runs, never on the node it powers off, and its credentials are in place."""
    v = Verification(STAGE)
    via, st = cibstage.verify_common(v, hosts, params, bundle(params, profile_name))
    devs = fencing.stonith_resources(params)
    if devs:
        # A device's first start runs its monitor (a BMC round trip): give them a moment after apply.
        ids = [d.id for d in devs]
        st = cibstage.wait_for(hosts[via], lambda s: all(s.started_on(i) for i in ids), wait_s)
    for d in devs:
        where = st.started_on(d.id)
        failed = [r for r in st.resources if r.id == d.id and r.failed]
        ok = len(where) == 1 and where[0] != d.target and not failed
        v.add(cibstage.CLUSTER, f"{d.id} started, not on {d.target}", ok,
              f"running on {', '.join(where) or 'no node'}" + (" (FAILED)" if failed else "")
              + "; its monitor asks the BMC for the power state, so this also proves the credentials work")
    if devs:
        for node, have in gather_credentials(hosts, params).nodes.items():
            v.add(node, "fencing credentials in place (root-only)", not have.missing,
                  "all present" if not have.missing else f"missing or different: {', '.join(have.missing)}")
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
                "the survivor quorate, so 'stop' (pacemaker's default) keeps the service through a failover "
                "too. What 'ignore' gives away is wait_for_all: a node that boots while its peer is down is "
                "not quorate, and under 'ignore' it fences the peer it cannot see and starts the service alone "
                "(seen in the lab: serving 26.5 s after power-on); under 'stop' it waits for its peer. "
                "Production: 'stop'."
                if two
                else "With three or more nodes a partition without the majority should stop its resources "
                "('stop', pacemaker's default); 'ignore' lets a minority keep running, and without fencing "
                "that can mean two copies of the service."
            ),
        ),
    ]
    return pd.DataFrame(rows, columns=["property", "article", "this cluster", "why it matters"])
