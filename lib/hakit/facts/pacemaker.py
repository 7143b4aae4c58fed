"""`crm_mon --output-as=xml` parsed into typed data (pacemaker 2.1's XML API 2.25 and 3.0's 2.38).

The parser reads only what both releases write the same way (checked on captures
from both, tests/unit/test_facts_releases.py); 3.0 moved `<pacemakerd>` into
`<stack pacemakerd-state=...>` and capitalises status texts ("Not running"), which
nothing here compares.

Pure: text in, dataclasses out. Used by the verify steps of stages 3-6 and by
the failover tests, which need to know who runs what, and how the cluster got there.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import pandas as pd

from .base import Fact, xml_root
from .errors import FactParseError


def _b(e: ET.Element, attr: str) -> bool:
    return e.get(attr) == "true"


@dataclass(frozen=True)
class NodeState:
    name: str
    id: str
    online: bool
    standby: bool
    maintenance: bool
    pending: bool
    unclean: bool
    shutdown: bool
    is_dc: bool
    resources_running: int

    @property
    def state(self) -> str:
        if self.unclean:
            return "UNCLEAN"
        if not self.online:
            return "offline"
        if self.standby:
            return "standby"
        if self.maintenance:
            return "maintenance"
        return "online"


# Roles crm_mon gives an instance while an operation on it runs (it is `active` then, too).
# Seen on a lab node: httpd read role="Starting" active="true" for 1-2 s of its start.
TRANSITIONAL_ROLES = frozenset({"Starting", "Stopping", "Migrating", "Promoting", "Demoting"})


@dataclass(frozen=True)
class ResourceState:
    """One running (or stopped) instance of a primitive; clone members appear once per instance."""

    id: str
    agent: str
    role: str
    active: bool
    failed: bool
    managed: bool
    blocked: bool
    nodes: tuple[str, ...]
    clone: str | None = None

    @property
    def settled(self) -> bool:
        """Active and done with its last operation: crm_mon counts an instance whose start is still
        running as active (role ``Starting``), and one being stopped too (``Stopping``)."""
        return self.active and self.role not in TRANSITIONAL_ROLES


@dataclass(frozen=True)
class FailedAction:
    op_key: str
    node: str
    task: str
    exitstatus: str
    exitreason: str
    exitcode: int
    last_rc_change: str

    @property
    def resource(self) -> str:
        """The resource that failed: op_key is ``<resource>_<task>_<interval>``, and task may itself
        hold an underscore (migrate_to), so cut at the task pacemaker names."""
        rsc, sep, _ = self.op_key.rpartition(f"_{self.task}_")
        return rsc if sep else self.op_key.rsplit("_", 2)[0]


@dataclass(frozen=True)
class ClusterStatus:
    dc: str | None
    quorate: bool
    stonith_enabled: bool | None
    no_quorum_policy: str | None
    nodes: dict[str, NodeState]
    resources: tuple[ResourceState, ...]
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> name -> value
    failures: tuple[FailedAction, ...] = ()

    def instances(self, rsc_id: str) -> list[ResourceState]:
        return [r for r in self.resources if r.id == rsc_id]

    def running_on(self, rsc_id: str) -> list[str]:
        """Nodes where an instance of ``rsc_id`` is active (several for a clone, or a split brain)."""
        return sorted({n for r in self.instances(rsc_id) if r.active for n in r.nodes})

    def started_on(self, rsc_id: str) -> list[str]:
        """Nodes where an instance of ``rsc_id`` is active and its start has finished (not ``Starting``)."""
        return sorted({n for r in self.instances(rsc_id) if r.settled for n in r.nodes})

    def serving(self, rsc_id: str) -> str | None:
        """The one node where a primitive has started and nothing runs on it elsewhere, else None."""
        on = self.started_on(rsc_id)
        return on[0] if len(on) == 1 and self.running_on(rsc_id) == on else None

    def service_node(self, httpd_cloned: bool = False) -> str | None:
        """The node clients are served from: the VIP started there with Apache beside it, Apache on
        no other node (the article's layout), or, with Apache cloned on every node (``httpd_cloned``),
        an httpd instance started on the VIP's node. None while that is not the case."""
        vip = self.serving("vip")
        if vip is None:
            return None
        if httpd_cloned:
            return vip if vip in self.started_on("httpd") else None
        return vip if self.serving("httpd") == vip else None

    def where(self, rsc_id: str) -> str | None:
        """The one node running a primitive, or None if it runs nowhere (or on several)."""
        on = self.running_on(rsc_id)
        return on[0] if len(on) == 1 else None

    def attribute(self, node: str, name: str) -> str | None:
        return self.attributes.get(node, {}).get(name)

    @property
    def online(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s.online)

    def resources_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"resource": r.id, "clone": r.clone or "", "agent": r.agent, "role": r.role,
                 "on": ", ".join(r.nodes) or "-", "failed": r.failed}
                for r in self.resources
            ],
            columns=["resource", "clone", "agent", "role", "on", "failed"],
        )

    def nodes_frame(self) -> pd.DataFrame:
        names = sorted({a for attrs in self.attributes.values() for a in attrs})
        rows = []
        for n, s in sorted(self.nodes.items()):
            row: dict[str, object] = {"node": n, "state": s.state, "DC": s.is_dc, "resources": s.resources_running}
            for a in names:
                row[a] = self.attribute(n, a) or ""
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        head = f"<h4>crm_mon: DC {self.dc or 'none'}, {'quorate' if self.quorate else 'NOT quorate'}</h4>"
        fail = ""
        if self.failures:
            fail = "<h4>Failed actions</h4>" + pd.DataFrame([f.__dict__ for f in self.failures]).to_html(index=False)
        return head + self.nodes_frame().to_html(index=False) + self.resources_frame().to_html(index=False) + fail


def _resource(e: ET.Element, clone: str | None) -> ResourceState:
    return ResourceState(
        id=e.get("id", "?"),
        agent=e.get("resource_agent", "?"),
        role=e.get("role", "?"),
        active=_b(e, "active"),
        failed=_b(e, "failed"),
        managed=e.get("managed", "true") == "true",
        blocked=_b(e, "blocked"),
        nodes=tuple(n.get("name", "?") for n in e.findall("node")),
        clone=clone,
    )


def parse_crm_mon(text: str) -> ClusterStatus:
    """Parse `crm_mon -1 --output-as=xml`. Raises FactParseError on anything else."""
    root = xml_root(text, "crm_mon --output-as=xml", "pacemaker-result")
    status = root.find("status")
    summary = root.find("summary")
    if summary is None:
        msg = status.get("message") if status is not None else "no summary"
        errors = " ".join((x.text or "").strip() for x in root.iter("error"))
        raise FactParseError("crm_mon --output-as=xml", f"no cluster status: {msg} {errors}".strip())
    dc_e = summary.find("current_dc")
    dc = dc_e.get("name") if dc_e is not None and _b(dc_e, "present") else None
    quorate = dc_e is not None and _b(dc_e, "with_quorum")
    opts = summary.find("cluster_options")
    stonith = None if opts is None or opts.get("stonith-enabled") is None else _b(opts, "stonith-enabled")
    nqp = opts.get("no-quorum-policy") if opts is not None else None
    nodes = {}
    nodes_e = root.find("nodes")
    for n in nodes_e.findall("node") if nodes_e is not None else []:
        nodes[n.get("name", "?")] = NodeState(
            name=n.get("name", "?"), id=n.get("id", "?"), online=_b(n, "online"), standby=_b(n, "standby"),
            maintenance=_b(n, "maintenance"), pending=_b(n, "pending"), unclean=_b(n, "unclean"),
            shutdown=_b(n, "shutdown"), is_dc=_b(n, "is_dc"), resources_running=int(n.get("resources_running", "0")),
        )
    resources: list[ResourceState] = []
    res_e = root.find("resources")
    for e in list(res_e) if res_e is not None else []:
        if e.tag == "resource":
            resources.append(_resource(e, None))
        elif e.tag in ("clone", "group"):
            for inner in e.iter("resource"):
                resources.append(_resource(inner, e.get("id")))
    attrs: dict[str, dict[str, str]] = {}
    na = root.find("node_attributes")
    for n in na.findall("node") if na is not None else []:
        attrs[n.get("name", "?")] = {a.get("name", "?"): a.get("value", "") for a in n.findall("attribute")}
    failures = []
    fe = root.find("failures")
    for f in fe.findall("failure") if fe is not None else []:
        failures.append(FailedAction(
            op_key=f.get("op_key", "?"), node=f.get("node", "?"), task=f.get("task", "?"),
            exitstatus=f.get("exitstatus", "?"), exitreason=f.get("exitreason", ""),
            exitcode=int(f.get("exitcode", "-1")), last_rc_change=f.get("last-rc-change", ""),
        ))
    return ClusterStatus(dc, quorate, stonith, nqp, nodes, tuple(resources), attrs, tuple(failures))


# ----------------------------------------------------------------- fencing history


@dataclass(frozen=True)
class FenceEvent:
    """One fencing action from `stonith_admin --history <node> --output-as=xml`."""

    target: str
    action: str  # off, reboot, on
    status: str  # success, failed, pending
    delegate: str | None  # the node whose device did it
    origin: str | None  # the node that asked for it
    completed: float | None  # UNIX time (2.1 keeps whole seconds, 3.0 microseconds), None while pending

    @property
    def ok(self) -> bool:
        return self.status == "success"


def parse_fence_history(text: str) -> list[FenceEvent]:
    """Fence events, oldest first. Raises FactParseError on output that is not stonith_admin's XML."""
    root = xml_root(text, "stonith_admin --history", "pacemaker-result")
    out = []
    for ev in root.iter("fence_event"):
        done = ev.get("completed")
        when = None
        if done:
            try:
                when = pd.Timestamp(done.replace("Z", ""), tz="UTC").timestamp()
            except ValueError:
                raise FactParseError("stonith_admin --history", f"completed={done!r} is not a time") from None
        out.append(FenceEvent(
            target=ev.get("target", "?"), action=ev.get("action", "?"), status=ev.get("status", "?"),
            delegate=ev.get("delegate"), origin=ev.get("origin"), completed=when,
        ))
    return sorted(out, key=lambda e: (e.completed is None, e.completed or 0.0))


CRM_MON_COMMAND = "crm_mon -1 --output-as=xml"
# The one way to read cluster status (stages, verification, failover watch).
CRM_MON: Fact[ClusterStatus] = Fact("cluster status", CRM_MON_COMMAND, parse_crm_mon, timeout=60)
