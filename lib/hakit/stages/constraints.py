"""Stage 6: constraints. Apache runs with the VIP, the VIP prefers one node, and the
VIP may not run where the gateway is unreachable. Then prove it from the client side.

No ordering constraint: Debian's Apache listens on every address (``Listen 80``),
so it does not need the VIP to exist before it starts; starting both at once
shortens every failover by Apache's start time. ``listens_on_any`` checks that
premise on every node, and the notebook explains when an order would be needed.

In the cloned-apache layout (``pacemaker.layout``) Apache runs on every node and
the colocation turns round: the VIP goes where an httpd instance runs
(``vip-with-httpd``); the location preference and the gateway rule are the VIP's
in both layouts.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from ..facts.pacemaker import ClusterStatus
from ..params import Params
from ..render.cib import Bundle, colocation, constraints, resources
from ..runner import Runner
from . import cibstage
from .base import Plan, Verification
from .driver import per_node
from .resources import httpd_placed, served_by

STAGE = "06 constraints"
SLUG = "06-constraints"


def bundle(params: Params) -> Bundle:
    return constraints(params)


LAYOUTS = ("article", "cloned-apache")


def layout_texts(params: Params) -> dict[str, str]:
    """The crm text of what differs between the layouts (Apache's resource and the colocation), per
    layout, for these params: what stages 5 and 6 would set under each ``pacemaker.layout``."""
    out = {}
    for name in LAYOUTS:
        p = params.model_copy(update={"pacemaker": params.pacemaker.model_copy(update={"layout": name})})
        apache = [i.crm() for i in resources(p).items if "httpd" in i.key]
        out[name] = "\n".join(apache + [colocation(p).crm()]) + "\n"
    return out


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None  # None: no HTTP answer at all
    body: str
    error: str = ""

    @property
    def node(self) -> str | None:
        return served_by(self.body)


def http_get(url: str, timeout: float = 3.0) -> HttpAnswer:
    """One GET from this machine (the client side), straight to the address: no proxy from the
    environment, a new connection each time. Never raises for HTTP or network errors."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=timeout)
    try:
        conn.request("GET", u.path or "/", headers={"Connection": "close"})
        r = conn.getresponse()
        return HttpAnswer(r.status, r.read(65536).decode("utf-8", "replace"), "" if r.status == 200 else r.reason)
    except (OSError, http.client.HTTPException) as e:
        return HttpAnswer(None, "", str(e) or type(e).__name__)
    finally:
        conn.close()


def listens_on_any(host: Runner) -> tuple[bool, str]:
    """True if Apache's config binds port 80 on every address (so no VIP-before-Apache order is needed)."""
    r = host.run("grep -hE '^\\s*Listen\\s' /etc/apache2/ports.conf /etc/apache2/conf-enabled/*.conf 2>/dev/null",
                 check=False)
    listens = [ln.split()[1] for ln in r.stdout.splitlines() if len(ln.split()) > 1]
    ok = bool(listens) and all(":" not in x or x.startswith(("0.0.0.0:", "*:", "[::]:")) for x in listens)
    return ok, ", ".join(dict.fromkeys(listens)) or "no Listen line"


class ConstraintsStage(cibstage.CibStage):
    """Stage 6 with its params bound (see `stages.driver.Stage`): one CIB patch."""

    name = STAGE
    slug = SLUG

    def __init__(self, params: Params, wait_s: float = 60) -> None:
        super().__init__(params, wait_s=wait_s)

    def bundle(self) -> Bundle:
        return bundle(self.params)

    def gather(self, hosts: Mapping[str, Runner]) -> cibstage.CibFacts:
        return self.gather_cib(hosts)

    def plan(self, facts: cibstage.CibFacts) -> Plan:
        return self.plan_cib(facts)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params, wait_s=self.wait_s if wait else 0)


def placed(st: ClusterStatus, params: Params) -> bool:
    """The service on the preferred node: vip and httpd together there (article), or vip there beside an
    httpd instance with httpd started on every node (cloned-apache)."""
    cloned = params.pacemaker.cloned_apache
    return st.service_node(cloned) == params.preferred_node and httpd_placed(st, params)


def wait_placed(host: Runner, params: Params, timeout_s: float = 60) -> ClusterStatus:
    """Poll until the service runs on the preferred node as the layout says (or time out); return the last status."""
    return cibstage.wait_for(host, lambda st: placed(st, params), timeout_s)


def verify(hosts: Mapping[str, Runner], params: Params, wait_s: float = 60) -> Verification:
    """Read-only: the constraints are live, the service sits on the preferred node, and a client sees it."""
    v = Verification(STAGE)
    wait_placed(hosts[cibstage.gather(hosts, params).via], params, wait_s)
    _, st = cibstage.verify_common(v, hosts, params, bundle(params))
    want = params.preferred_node
    v.add(cibstage.CLUSTER, "vip on the preferred node, an httpd instance there, httpd on every node"
          if params.pacemaker.cloned_apache else "vip and httpd together on the preferred node", placed(st, params),
          f"vip {cibstage.placement(st, 'vip')}, httpd {cibstage.placement(st, 'httpd')}; preferred {want}")
    ping_on = st.started_on("ping-gateway")
    v.add(cibstage.CLUSTER, "ping clone on every node", len(ping_on) == len(params.nodes), ", ".join(ping_on))
    for node, (ok, listens) in per_node(hosts, [n.name for n in params.nodes], listens_on_any).items():
        v.add(node, "Apache listens on all addresses (no order constraint needed)", ok, f"Listen {listens}")
    page = http_get(f"http://{params.vip.address}/")
    v.add("client", f"GET http://{params.vip.address}/ names the active node",
          page.status == 200 and page.node == want,
          f"HTTP {page.status}, served by {page.node}" if page.status else f"no answer: {page.error}")
    status = http_get(f"http://{params.vip.address}/server-status")
    v.add("client", "/server-status refused from outside the node", status.status == 403,
          f"HTTP {status.status}" if status.status else f"no answer: {status.error}")
    cibstage.check_not_failed(v, st)
    return v
