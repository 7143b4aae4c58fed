"""Stage 5: resources. Prepare Apache on every node for the cluster to own, then add
the VIP, Apache and the cloned gateway ping to the CIB in one patch.

Per node (before the CIB changes, so the cluster never starts a half-ready Apache; a
barrier in the plan holds the CIB patch until every node is done):
- apache2.service disabled at boot and stopped: the cluster starts Apache itself,
  and two managers of one daemon fight;
- ``/server-status`` (mod_status) on, answering only requests from the node
  itself: the apache agent's monitor reads it, and nobody outside should;
- an index page that names the node, so a client can see who served it.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..facts.base import Fact, read
from ..facts.pacemaker import ClusterStatus
from ..facts.systemd import state_of, unit_states
from ..ops import Barrier, Command, Op, Systemctl, WriteFile
from ..params import Params
from ..profiles import get_profile
from ..render.cib import Bundle, resources
from ..runner import Runner
from . import cibstage
from .base import Plan, Verification
from .driver import per_node

STAGE = "05 resources"
SLUG = "05-resources"
STATUS_CONF = "/etc/apache2/conf-available/hakit-status.conf"
STATUS_CONF_ENABLED = "/etc/apache2/conf-enabled/hakit-status.conf"
INDEX = "/var/www/html/index.html"
APACHE_PID = "/run/apache2/apache2.pid"


def policy_frame(params: Params) -> pd.DataFrame:
    """The failure policy (``pacemaker.resources``) as a table: each setting, its meta attribute, what it does."""
    p = params.pacemaker.resources
    after = ("stays on the survivor (stickiness)" if not p.fails_back else
             f"fails back to {params.preferred_node} when the failcount expires" if p.failure_timeout else
             f"fails back to {params.preferred_node} only after `crm resource cleanup httpd`")
    on_fail = ("the VIP leaves it (colocation vip-with-httpd)" if params.pacemaker.cloned_apache
               else "the VIP follows it")
    rows = [
        ("migration_threshold", "migration-threshold",
         "unset: INFINITY" if p.migration_threshold is None else str(p.migration_threshold),
         "an Apache crash restarts it in place, for ever" if p.migration_threshold is None else
         f"after {p.migration_threshold} failure(s) on a node httpd is banned there; {on_fail}"),
        ("failure_timeout", "failure-timeout", "unset: never" if p.failure_timeout is None else f"{p.failure_timeout}s",
         "the failcount stays until `crm resource cleanup`" if p.failure_timeout is None else
         f"a node's failcount expires {p.failure_timeout} s after its last failure"),
        ("resource_stickiness", "resource-stickiness",
         "unset: 0" if p.resource_stickiness is None else str(p.resource_stickiness),
         f"after a move the service {after}"),
    ]
    return pd.DataFrame(rows, columns=["pacemaker.resources", "meta attribute (vip, httpd)", "value", "effect"])


def bundle(params: Params, profile_name: str | None = None) -> Bundle:
    return resources(params, get_profile(profile_name) if profile_name else None)


def status_conf() -> str:
    return (
        "# Managed by hakit (stage 05 resources).\n"
        "# The cluster's apache monitor reads /server-status; only this node may.\n"
        "<IfModule mod_status.c>\n"
        "    <Location /server-status>\n"
        "        SetHandler server-status\n"
        "        Require local\n"
        "    </Location>\n"
        "</IfModule>\n"
    )


def index_page(params: Params, node: str) -> str:
    """The page a client gets through the VIP; ``served-by`` names the node (the failover probe reads it)."""
    c = html.escape(params.cluster.name)
    n = html.escape(node)
    return (
        "<!doctype html>\n"
        f"<html><head><meta charset=\"utf-8\"><title>{c}</title></head>\n"
        f"<body><h1>{c}</h1>\n"
        f"<p>served by <b id=\"served-by\">{n}</b></p>\n"
        "<!-- Managed by hakit (stage 05 resources) -->\n"
        "</body></html>\n"
    )


def served_by(page: str) -> str | None:
    """The node name from a page made by ``index_page`` (None if it is some other page)."""
    start = page.find('id="served-by">')
    if start < 0:
        return None
    start += len('id="served-by">')
    end = page.find("<", start)
    return page[start:end] if end > start else None


@dataclass(frozen=True)
class ApacheFiles:
    """What `apache_fact` reads: the VIP's nic, mod_status and our status conf enabled."""

    has_nic: bool
    mod_status: bool
    conf_enabled: bool


def parse_apache_files(text: str) -> ApacheFiles:
    """Lines ``key=value`` as `apache_fact` prints them; a missing line counts as no."""
    got = dict(ln.split("=", 1) for ln in text.split() if "=" in ln)
    return ApacheFiles(got.get("nic") == "yes", got.get("mod") == "on", got.get("conf") == "on")


def apache_fact(nic: str) -> Fact[ApacheFiles]:
    cmd = (f"ip -o link show dev {shlex.quote(nic)} >/dev/null 2>&1 && echo nic=yes || echo nic=no; "
           "a2query -q -m status && echo mod=on || echo mod=off; "
           f"test -L {STATUS_CONF_ENABLED} && echo conf=on || echo conf=off")
    return Fact("apache hand-over", cmd, parse_apache_files)


APACHE_UNIT = unit_states("apache2")


@dataclass(frozen=True)
class NodeApache:
    node: str
    unit_enabled: str  # systemctl is-enabled apache2
    unit_active: str  # systemctl is-active apache2
    mod_status: bool
    conf_enabled: bool
    status_conf: str | None
    index: str | None
    has_nic: bool = True  # the VIP's interface (networks.public.bond) exists on this node


def _gather_node(h: Runner, nic: str) -> NodeApache:
    unit = state_of(read(h, APACHE_UNIT), "apache2")
    files = read(h, apache_fact(nic))
    return NodeApache(node=h.name, unit_enabled=unit.enabled, unit_active=unit.active, mod_status=files.mod_status,
                      conf_enabled=files.conf_enabled, status_conf=h.read_text(STATUS_CONF), index=h.read_text(INDEX),
                      has_nic=files.has_nic)


def gather_nodes(hosts: Mapping[str, Runner], params: Params) -> dict[str, NodeApache]:
    """Read-only, every node in parallel: Apache's unit, status page, index page and the VIP's nic."""
    nic = params.networks.public.bond
    return per_node(hosts, [n.name for n in params.nodes], lambda h: _gather_node(h, nic))


@dataclass
class ResourcesFacts:
    apache: dict[str, NodeApache]
    cib: cibstage.CibFacts

    def apache_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"node": a.node, "VIP nic": "present" if a.has_nic else "MISSING",
              "apache2.service": f"{a.unit_active}, {a.unit_enabled}", "mod_status": a.mod_status,
              "status conf": ("enabled" if a.conf_enabled else "not enabled")
              + ("" if a.status_conf == status_conf() else " (file missing or different)"),
              "index page": served_by(a.index or "") or "not ours"} for a in self.apache.values()],
            columns=["node", "VIP nic", "apache2.service", "mod_status", "status conf", "index page"])

    def _repr_html_(self) -> str:
        return "<h4>Apache on each node</h4>" + self.apache_frame().to_html(index=False) + self.cib._repr_html_()


GRACEFUL = (f"if [ -s {APACHE_PID} ] && kill -0 \"$(cat {APACHE_PID})\" 2>/dev/null "
            "&& ! systemctl -q is-active apache2; then apache2ctl graceful; fi")


def node_ops(params: Params, f: NodeApache) -> list[Op]:
    """Pure: what one node needs so the cluster can own its Apache, in the order it is done."""
    n = f.node
    ops: list[Op] = []
    if f.status_conf != status_conf():
        ops.append(WriteFile(node=n, path=STATUS_CONF, content=status_conf().encode(),
                             reason="missing" if f.status_conf is None else "content differs"))
    if not f.conf_enabled:
        ops.append(Command(node=n, argv=("a2enconf", "-q", "hakit-status"), label="a2enconf hakit-status",
                           reason="/server-status for localhost only"))
    if not f.mod_status:
        ops.append(Command(node=n, argv=("a2enmod", "-q", "status"), label="a2enmod status",
                           reason="the apache agent's monitor needs mod_status"))
    conf_changed = bool(ops)
    if f.index != index_page(params, n):
        ops.append(WriteFile(node=n, path=INDEX, content=index_page(params, n).encode(),
                             reason="a page naming the node that served it"))
    if conf_changed:
        ops.append(Command(node=n, argv=("apache2ctl", "configtest"), read_only=True,
                           hint="Apache rejects its configuration after our change",
                           reason="Apache checks its configuration after the change"))
        ops.append(Command(node=n, argv=GRACEFUL, label="apache2ctl graceful where the cluster runs Apache",
                           reason="a running cluster-managed Apache picks the change up without dropping clients"))
    if f.unit_enabled not in ("disabled", "masked"):
        ops.append(Systemctl(node=n, verb="disable", units=("apache2",),
                             reason=f"now {f.unit_enabled}; the cluster owns Apache"))
    if f.unit_active in ("active", "activating", "reloading"):
        ops.append(Systemctl(node=n, verb="stop", units=("apache2",), timeout=120,
                             reason="running under systemd; the cluster will start it"))
    return ops


def plan_nodes(params: Params, nodes: Mapping[str, NodeApache], p: Plan) -> None:
    """Pure: add the per-node Apache operations to ``p``; a node without the VIP's interface blocks the stage."""
    nic = params.networks.public.bond
    for n in params.nodes:
        f = nodes[n.name]
        if not f.has_nic:
            p.blocked[n.name] = (
                f"networks.public.bond {nic!r} (the VIP's nic) does not exist on {n.name}; "
                "use an interface the node has (see `ip link`); nothing will be changed"
            )
    if p.blocked:
        return
    for n in params.nodes:
        ops = node_ops(params, nodes[n.name])
        p.ops += ops
        if not ops:
            p.no_change[n.name] = "Apache ready for the cluster: unit disabled and stopped, status page local-only, index page in place"


class ResourcesStage(cibstage.CibStage):
    """Stage 5 with its params and timing profile bound (see `stages.driver.Stage`)."""

    name = STAGE
    slug = SLUG

    def bundle(self) -> Bundle:
        return bundle(self.params, self.profile.name)

    def gather(self, hosts: Mapping[str, Runner]) -> ResourcesFacts:
        return ResourcesFacts(gather_nodes(hosts, self.params), self.gather_cib(hosts))

    def plan(self, facts: ResourcesFacts) -> Plan:
        """Pure: Apache handed to the cluster on every node, a barrier, then the CIB patch."""
        p = Plan(STAGE, order=[n.name for n in self.params.nodes])
        p.notes.append(f"timing profile {self.profile.name!r}: {self.profile.summary}")
        plan_nodes(self.params, facts.apache, p)
        if p.blocked:
            return p
        if p.ops:
            p.ops.append(Barrier(text="Apache is ready for the cluster on every node before the CIB names it"))
        cibstage.add_patch(p, self.bundle(), facts.cib, SLUG)
        return p

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params, self.profile.name, wait_s=self.wait_s if wait else 0)


def httpd_placed(st: ClusterStatus, params: Params) -> bool:
    """Apache runs as the layout says: on one node (article), or an instance started on every node (cloned-apache)."""
    if params.pacemaker.cloned_apache:
        return len(st.started_on("httpd")) == len(params.nodes) and st.running_on("httpd") == st.started_on("httpd")
    return st.serving("httpd") is not None


def wait_started(host: Runner, params: Params, timeout_s: float = 60) -> ClusterStatus:
    """Poll crm_mon until vip, httpd (every instance of the clone in the cloned-apache layout) and every
    ping clone instance run and pingd is set, or time out."""
    return cibstage.wait_for(host, lambda st: bool(
        st.serving("vip") and httpd_placed(st, params)
        and len(st.started_on("ping-gateway")) == len(params.nodes)
        and all(st.attribute(n.name, "pingd") not in (None, "0") for n in params.nodes)
    ), timeout_s)


def verify(hosts: Mapping[str, Runner], params: Params, profile_name: str | None = None,
           wait_s: float = 60) -> Verification:
    """Read-only: Apache is the cluster's on every node, and the three resources run as wanted."""
    v = Verification(STAGE)
    apache = gather_nodes(hosts, params)
    for n in params.nodes:
        f = apache[n.name]
        v.add(n.name, "apache2.service disabled and not running under systemd",
              f.unit_enabled in ("disabled", "masked") and f.unit_active not in ("active", "activating"),
              f"{f.unit_enabled}, {f.unit_active}")
        v.add(n.name, "/server-status local-only config enabled", f.conf_enabled and f.status_conf == status_conf() and f.mod_status,
              "hakit-status.conf enabled, mod_status on" if f.conf_enabled and f.mod_status else "missing")
        v.add(n.name, "index page names this node", served_by(f.index or "") == n.name,
              f"served-by: {served_by(f.index or '')}")
    via = cibstage.gather(hosts, params).via
    wait_started(hosts[via], params, wait_s)
    via, st = cibstage.verify_common(v, hosts, params, bundle(params, profile_name))
    v.add(cibstage.CLUSTER, "vip started on exactly one node", st.serving("vip") is not None,
          cibstage.placement(st, "vip"))
    cloned = params.pacemaker.cloned_apache
    v.add(cibstage.CLUSTER, "httpd-clone started on every node" if cloned else "httpd started on exactly one node",
          httpd_placed(st, params), cibstage.placement(st, "httpd"))
    ping_on = st.started_on("ping-gateway")
    v.add(cibstage.CLUSTER, "cloned-ping-gateway started on every node", len(ping_on) == len(params.nodes),
          f"on: {', '.join(ping_on) or 'nowhere'}")
    for n in params.nodes:
        v.add(n.name, "pingd set (gateway reachable)", st.attribute(n.name, "pingd") not in (None, "0"),
              f"pingd={st.attribute(n.name, 'pingd')}")
    for node in st.started_on("httpd") if cloned else [n for n in [st.serving("httpd")] if n]:
        code = hosts[node].run(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://localhost/server-status", check=False
        ).stdout.strip()
        v.add(node, "/server-status answers on the node running httpd", code == "200", f"HTTP {code}")
    cibstage.check_not_failed(v, st)
    return v
