"""Stage 5: resources. Prepare Apache on every node for the cluster to own, then add
the VIP, Apache and the cloned gateway ping to the CIB in one patch.

Per node (before the CIB changes, so the cluster never starts a half-ready Apache):
- apache2.service disabled at boot and stopped: the cluster starts Apache itself,
  and two managers of one daemon fight;
- ``/server-status`` (mod_status) on, answering only requests from the node
  itself: the apache agent's monitor reads it, and nobody outside should;
- an index page that names the node, so a client can see who served it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..facts.pacemaker import ClusterStatus
from ..params import Params
from ..profiles import get_profile
from ..remote import Host
from ..render.cib import Bundle, resources
from . import cibstage
from .base import Change, Plan, StageResult, Verification

STAGE = "05 resources"
STATUS_CONF = "/etc/apache2/conf-available/hakit-status.conf"
STATUS_CONF_ENABLED = "/etc/apache2/conf-enabled/hakit-status.conf"
INDEX = "/var/www/html/index.html"
APACHE_PID = "/run/apache2/apache2.pid"


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
class NodeApache:
    node: str
    unit_enabled: str  # systemctl is-enabled apache2
    unit_active: str  # systemctl is-active apache2
    mod_status: bool
    conf_enabled: bool
    status_conf: str | None
    index: str | None
    has_nic: bool = True  # the VIP's interface (networks.public.bond) exists on this node


def gather_nodes(hosts: dict[str, Host], params: Params) -> dict[str, NodeApache]:
    out = {}
    for n in params.nodes:
        h = hosts[n.name]
        nic = params.networks.public.bond
        r = h.run(
            f"ip -o link show dev {nic} >/dev/null 2>&1 && echo nic-yes || echo nic-no; "
            "systemctl is-enabled apache2; systemctl is-active apache2; "
            "a2query -q -m status && echo mod-on || echo mod-off; "
            f"test -L {STATUS_CONF_ENABLED} && echo conf-on || echo conf-off",
            check=False,
        ).stdout.split()
        out[n.name] = NodeApache(
            node=n.name,
            has_nic="nic-yes" in r,
            unit_enabled=r[1] if len(r) > 1 else "?",
            unit_active=r[2] if len(r) > 2 else "?",
            mod_status="mod-on" in r,
            conf_enabled="conf-on" in r,
            status_conf=h.read_text(STATUS_CONF),
            index=h.read_text(INDEX),
        )
    return out


def plan_nodes(params: Params, nodes: dict[str, NodeApache], p: Plan) -> None:
    """Pure: add the per-node Apache changes to ``p``; a node without the VIP's interface blocks the stage."""
    nic = params.networks.public.bond
    for n in params.nodes:
        f = nodes[n.name]
        if not f.has_nic:
            p.not_applicable[n.name] = (
                f"networks.public.bond {nic!r} (the VIP's nic) does not exist on {n.name}; "
                "use an interface the node has (see `ip link`); nothing will be changed"
            )
        before = len(p.for_node(n.name))
        if f.status_conf != status_conf():
            p.changes.append(Change(n.name, f"write {STATUS_CONF}", "missing" if f.status_conf is None else "content differs"))
        if not f.conf_enabled:
            p.changes.append(Change(n.name, "a2enconf hakit-status", "/server-status for localhost only"))
        if not f.mod_status:
            p.changes.append(Change(n.name, "a2enmod status", "the apache agent's monitor needs mod_status"))
        if f.index != index_page(params, n.name):
            p.changes.append(Change(n.name, f"write {INDEX}", "a page naming the node that served it"))
        if f.unit_enabled not in ("disabled", "masked"):
            p.changes.append(Change(n.name, "systemctl disable apache2", f"now {f.unit_enabled}; the cluster owns Apache"))
        if f.unit_active in ("active", "activating", "reloading"):
            p.changes.append(Change(n.name, "systemctl stop apache2", "running under systemd; the cluster will start it"))
        if len(p.for_node(n.name)) == before:
            p.no_change[n.name] = "Apache ready for the cluster: unit disabled and stopped, status page local-only, index page in place"


def plan(params: Params, nodes: dict[str, NodeApache], facts: cibstage.CibFacts, profile_name: str | None = None):
    p, cp = cibstage.plan(bundle(params, profile_name), facts)
    plan_nodes(params, nodes, p)
    return p, cp


class StageBlocked(RuntimeError):
    """The plan found a problem on a node; nothing was changed anywhere."""


def apply_nodes(hosts: dict[str, Host], params: Params, p: Plan, res: StageResult, dry_run: bool) -> None:
    if p.not_applicable:
        raise StageBlocked(
            "stage blocked before any change: " + "; ".join(f"{n}: {why}" for n, why in p.not_applicable.items())
        )
    for n in params.nodes:
        acts = [c.action for c in p.for_node(n.name)]
        if dry_run or not acts:
            res.add(n.name, "not applied" if acts else "unchanged", f"dry run; would: {', '.join(acts)}" if acts else "")
            continue
        h = hosts[n.name]
        conf_changed = False
        for a in acts:
            if a == f"write {STATUS_CONF}":
                h.write_bytes(STATUS_CONF, status_conf().encode(), mode=0o644)
                conf_changed = True
            elif a == "a2enconf hakit-status":
                h.run("a2enconf -q hakit-status")
                conf_changed = True
            elif a == "a2enmod status":
                h.run("a2enmod -q status")
                conf_changed = True
            elif a == f"write {INDEX}":
                h.write_bytes(INDEX, index_page(params, n.name).encode(), mode=0o644)
        if conf_changed:
            h.run("apache2ctl configtest", hint="Apache rejects its configuration after our change")
            # Where the cluster already runs Apache, let it pick the change up without dropping clients.
            h.run(f"if [ -s {APACHE_PID} ] && kill -0 \"$(cat {APACHE_PID})\" 2>/dev/null "
                  "&& ! systemctl -q is-active apache2; then apache2ctl graceful; fi")
        if "systemctl disable apache2" in acts:
            h.run("systemctl disable -q apache2")
        if "systemctl stop apache2" in acts:
            h.run("systemctl stop apache2", timeout=120)
        res.add(n.name, "changed", "; ".join(acts))


def wait_started(hosts: dict[str, Host], via: str, params: Params, timeout_s: float = 60) -> ClusterStatus:
    """Poll crm_mon until vip, httpd and every ping clone instance run and pingd is set, or time out."""
    return cibstage.wait_for(hosts[via], lambda st: bool(
        st.where("vip") and st.where("httpd")
        and len(st.running_on("ping-gateway")) == len(params.nodes)
        and all(st.attribute(n.name, "pingd") not in (None, "0") for n in params.nodes)
    ), timeout_s)


def verify(hosts: dict[str, Host], params: Params, via: str, profile_name: str | None = None,
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
    st = wait_started(hosts, via, params, wait_s)
    cibstage.verify_common(v, hosts, params, bundle(params, profile_name), via)
    for rid in ("vip", "httpd"):
        on = st.running_on(rid)
        v.add(cibstage.CLUSTER, f"{rid} started on exactly one node", len(on) == 1, f"on: {', '.join(on) or 'nowhere'}")
    ping_on = st.running_on("ping-gateway")
    v.add(cibstage.CLUSTER, "cloned-ping-gateway started on every node", len(ping_on) == len(params.nodes),
          f"on: {', '.join(ping_on) or 'nowhere'}")
    for n in params.nodes:
        v.add(n.name, "pingd set (gateway reachable)", st.attribute(n.name, "pingd") not in (None, "0"),
              f"pingd={st.attribute(n.name, 'pingd')}")
    httpd_on = st.where("httpd")
    if httpd_on:
        code = hosts[httpd_on].run(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://localhost/server-status", check=False
        ).stdout.strip()
        v.add(httpd_on, "/server-status answers on the node running httpd", code == "200", f"HTTP {code}")
    cibstage.check_not_failed(v, st)
    return v

