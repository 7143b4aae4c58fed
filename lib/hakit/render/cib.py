"""The article's pacemaker configuration as data: crm shell text and CIB XML.

Pure: params and a timing profile in, objects out. Each object renders two
ways: the crm shell line an admin would type (what the article shows) and the
CIB XML element pacemaker stores. IDs follow crmsh's own naming
(``vip-instance_attributes-ip``, ``vip-monitor-10s``), so ``crm configure show``
on a cluster built here reads like the text we show.

``hakit.cib.plan`` places these elements into a copy of the live CIB (by id, in place).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Union

from hakit.params import Params
from hakit.profiles import Profile, get_profile

Section = Literal["crm_config", "rsc_defaults", "op_defaults", "resources", "constraints"]

BOOTSTRAP_SET = "cib-bootstrap-options"
RSC_DEFAULTS_SET = "rsc-options"
OP_DEFAULTS_SET = "op-options"  # crmsh's id for `op_defaults`
APACHE_CONFIG = "/etc/apache2/apache2.conf"
STATUS_URL = "http://localhost/server-status"
# The article's Apache operation timeouts.
HTTPD_START_TIMEOUT = "60s"
HTTPD_STOP_TIMEOUT = "60s"
HTTPD_MONITOR_TIMEOUT = "20s"
PING_MONITOR_TIMEOUT = "60s"
PING_MULTIPLIER = 1000
# The cloned-apache layout (pacemaker.layout): Apache as a clone on every node. interleave lets another
# clone ordered against this one pair with the instance on its own node rather than wait for all of them.
HTTPD_CLONE = "httpd-clone"
HTTPD_CLONE_META = (("interleave", "true"),)


def score_xml(score: str | int) -> str:
    """crm shell scores (inf, -inf, 100) as the CIB writes them (INFINITY, -INFINITY, 100)."""
    s = str(score).lower()
    return {"inf": "INFINITY", "+inf": "INFINITY", "-inf": "-INFINITY"}.get(s, str(score))


def _nvpair(parent: ET.Element, set_id: str, name: str, value: str) -> None:
    ET.SubElement(parent, "nvpair", {"id": f"{set_id}-{name}", "name": name, "value": value})


@dataclass(frozen=True)
class Property:
    """A cluster option in ``cib-bootstrap-options`` (``property name=value``)."""

    name: str
    value: str
    section: Section = "crm_config"

    @property
    def key(self) -> str:
        return f"property {self.name}"

    def crm(self) -> str:
        return f"property {self.name}={self.value}"

    def xml(self) -> ET.Element:
        e = ET.Element("nvpair", {"id": f"{BOOTSTRAP_SET}-{self.name}", "name": self.name, "value": self.value})
        return e


@dataclass(frozen=True)
class _Default:
    """A name=value default in a set of its own section (``rsc_defaults`` or ``op_defaults``)."""

    name: str
    value: str
    section: Section
    set_id: ClassVar[str]

    @property
    def key(self) -> str:
        return f"{self.section} {self.name}"

    def crm(self) -> str:
        return f"{self.section} {self.name}={self.value}"

    def xml(self) -> ET.Element:
        return ET.Element("nvpair", {"id": f"{self.set_id}-{self.name}", "name": self.name, "value": self.value})


@dataclass(frozen=True)
class RscDefault(_Default):
    """A resource default in ``rsc-options`` (``rsc_defaults name=value``)."""

    section: Section = "rsc_defaults"
    set_id: ClassVar[str] = RSC_DEFAULTS_SET


@dataclass(frozen=True)
class OpDefault(_Default):
    """An operation default in ``op-options`` (``op_defaults name=value``): applies to every operation
    that sets no value of its own."""

    section: Section = "op_defaults"
    set_id: ClassVar[str] = OP_DEFAULTS_SET


@dataclass(frozen=True)
class Op:
    name: str
    interval: str = "0s"
    timeout: str | None = None

    def crm(self) -> str:
        parts = [f"op {self.name}"]
        if self.interval != "0s" or self.timeout is None:
            parts.append(f"interval={self.interval}")
        if self.timeout:
            parts.append(f"timeout={self.timeout}")
        return " ".join(parts)


@dataclass(frozen=True)
class Primitive:
    id: str
    agent: str  # class:provider:type
    params: tuple[tuple[str, str], ...] = ()
    ops: tuple[Op, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()  # meta attributes (failure policy): migration-threshold, ...
    section: Section = "resources"

    @property
    def key(self) -> str:
        return f"primitive {self.id}"

    def crm(self) -> str:
        lines = [f"primitive {self.id} {self.agent}"]
        if self.params:
            lines.append("params " + " ".join(f"{k}={_crm_value(v)}" for k, v in self.params))
        if self.meta:
            lines.append("meta " + " ".join(f"{k}={_crm_value(v)}" for k, v in self.meta))
        lines += [op.crm() for op in self.ops]
        return " \\\n    ".join(lines)

    def xml(self) -> ET.Element:
        parts = self.agent.split(":")
        if len(parts) == 3:  # ocf:heartbeat:IPaddr2
            attrs = {"id": self.id, "class": parts[0], "provider": parts[1], "type": parts[2]}
        else:  # stonith:fence_ipmilan (fence agents have no provider)
            attrs = {"id": self.id, "class": parts[0], "type": parts[1]}
        e = ET.Element("primitive", attrs)
        if self.params:
            ia_id = f"{self.id}-instance_attributes"
            ia = ET.SubElement(e, "instance_attributes", {"id": ia_id})
            for k, v in self.params:
                _nvpair(ia, ia_id, k, v)
        if self.meta:
            ma_id = f"{self.id}-meta_attributes"
            ma = ET.SubElement(e, "meta_attributes", {"id": ma_id})
            for k, v in self.meta:
                _nvpair(ma, ma_id, k, v)
        if self.ops:
            ops = ET.SubElement(e, "operations")
            for op in self.ops:
                attrs = {"name": op.name, "interval": op.interval, "id": f"{self.id}-{op.name}-{op.interval}"}
                if op.timeout:
                    attrs["timeout"] = op.timeout
                ET.SubElement(ops, "op", attrs)
        return e


@dataclass(frozen=True)
class Clone:
    id: str
    primitive: Primitive
    meta: tuple[tuple[str, str], ...] = ()  # the clone's own meta attributes (interleave, ...)
    section: Section = "resources"

    @property
    def key(self) -> str:
        return f"clone {self.id}"

    def crm(self) -> str:
        line = f"clone {self.id} {self.primitive.id}"
        if self.meta:
            line += " \\\n    meta " + " ".join(f"{k}={_crm_value(v)}" for k, v in self.meta)
        return f"{self.primitive.crm()}\n{line}"

    def xml(self) -> ET.Element:
        e = ET.Element("clone", {"id": self.id})
        e.append(self.primitive.xml())
        if self.meta:
            ma_id = f"{self.id}-meta_attributes"
            ma = ET.SubElement(e, "meta_attributes", {"id": ma_id})
            for k, v in self.meta:
                _nvpair(ma, ma_id, k, v)
        return e


@dataclass(frozen=True)
class Colocation:
    id: str
    score: str
    rsc: str
    with_rsc: str
    section: Section = "constraints"

    @property
    def key(self) -> str:
        return f"colocation {self.id}"

    def crm(self) -> str:
        return f"colocation {self.id} {self.score}: {self.rsc} {self.with_rsc}"

    def xml(self) -> ET.Element:
        return ET.Element(
            "rsc_colocation", {"id": self.id, "score": score_xml(self.score), "rsc": self.rsc, "with-rsc": self.with_rsc}
        )


@dataclass(frozen=True)
class LocationPrefers:
    id: str
    rsc: str
    score: str
    node: str
    section: Section = "constraints"

    @property
    def key(self) -> str:
        return f"location {self.id}"

    def crm(self) -> str:
        return f"location {self.id} {self.rsc} {self.score}: {self.node}"

    def xml(self) -> ET.Element:
        return ET.Element("rsc_location", {"id": self.id, "rsc": self.rsc, "score": score_xml(self.score), "node": self.node})


@dataclass(frozen=True)
class Expression:
    operation: str  # defined, not_defined, lt, lte, gt, gte, eq, ne
    attribute: str
    value: str | None = None

    def crm(self) -> str:
        if self.value is None:
            return f"{self.operation} {self.attribute}"
        return f"{self.attribute} {self.operation} {self.value}"


@dataclass(frozen=True)
class LocationRule:
    id: str
    rsc: str
    score: str
    expressions: tuple[Expression, ...]
    boolean_op: Literal["and", "or"] = "or"
    section: Section = "constraints"

    @property
    def key(self) -> str:
        return f"location {self.id}"

    def crm(self) -> str:
        cond = f" {self.boolean_op} ".join(x.crm() for x in self.expressions)
        return f"location {self.id} {self.rsc} rule {self.score}: {cond}"

    def xml(self) -> ET.Element:
        e = ET.Element("rsc_location", {"id": self.id, "rsc": self.rsc})
        rule_id = f"{self.id}-rule"
        rule = ET.SubElement(e, "rule", {"id": rule_id, "score": score_xml(self.score), "boolean-op": self.boolean_op})
        for i, x in enumerate(self.expressions):
            xid = f"{rule_id}-expression" + (f"-{i - 1}" if i else "")
            attrs = {"id": xid, "operation": x.operation, "attribute": x.attribute}
            if x.value is not None:
                attrs["value"] = x.value
            ET.SubElement(rule, "expression", attrs)
        return e


Item = Union[Property, RscDefault, OpDefault, Primitive, Clone, Colocation, LocationPrefers, LocationRule]


@dataclass(frozen=True)
class Bundle:
    """What one stage owns in the CIB; nothing else is touched."""

    stage: str
    items: tuple[Item, ...] = field(default_factory=tuple)
    # crm_config properties the stage owns at pacemaker's default: removed where set (another
    # profile set them), so switching profiles leaves nothing behind. Not part of the crm text.
    unset: tuple[str, ...] = ()

    def crm(self) -> str:
        return "\n".join(i.crm() for i in self.items) + "\n"

    def ids(self) -> list[str]:
        return [i.key for i in self.items] + [f"property {n}" for n in self.unset]


def _crm_value(v: str) -> str:
    return f'"{v}"' if any(c in v for c in ' "\'\\') else v


def op_timeout(params: Params, timeout: str) -> str:
    """An explicit operation timeout ("20s"), raised to ``pacemaker.op_timeout`` when that is longer."""
    least = params.pacemaker.op_timeout
    if least is None or int(timeout.rstrip("s")) >= least:
        return timeout
    return f"{least}s"


def _profile(params: Params, profile: Profile | None) -> Profile:
    return profile or get_profile(params.cluster.profile)


def fence_devices(params: Params) -> list[Item]:
    """One stonith primitive per node (its BMC), and a -inf location so no node runs the device
    that powers itself off. Empty when the params configure no fencing. No secret in any of it."""
    from hakit.fencing import stonith_resources  # fencing imports params only; no cycle at import

    items: list[Item] = []
    for r in stonith_resources(params):
        items.append(Primitive(r.id, f"stonith:{r.agent}", tuple(r.attributes.items()),
                               (Op("monitor", r.monitor_interval),)))
        items.append(LocationPrefers(f"{r.id}-not-on-{r.avoid_node}", r.id, "-inf", r.avoid_node))
    return items


DC_DEADTIME = "dc-deadtime"


def properties(params: Params, profile: Profile | None = None) -> Bundle:
    """Stage 4: stonith and quorum policy, the fence devices when the params have them, plus
    the profile's dc-deadtime (or pacemaker's default) and the resource defaults it asks for."""
    p = _profile(params, profile)
    items: list[Item] = [*fence_devices(params),
        Property("stonith-enabled", "true" if params.pacemaker.stonith_enabled else "false"),
        Property("no-quorum-policy", params.pacemaker.no_quorum_policy),
    ]
    if params.pacemaker.fencing is not None:
        items.append(Property("stonith-action", params.pacemaker.fencing.action))
    if p.dc_deadtime_value is not None:
        items.append(Property(DC_DEADTIME, p.dc_deadtime_value))
    if p.resources.resource_stickiness is not None:
        items.append(RscDefault("resource-stickiness", str(p.resources.resource_stickiness)))
    if params.pacemaker.op_timeout is not None:
        items.append(OpDefault("timeout", f"{params.pacemaker.op_timeout}s"))
    return Bundle("04 pacemaker properties", tuple(items), unset=() if p.dc_deadtime_value else (DC_DEADTIME,))


def resources(params: Params, profile: Profile | None = None) -> Bundle:
    """Stage 5: the VIP, Apache (one primitive, or ``httpd-clone`` in the cloned-apache layout), and the
    cloned gateway ping; the failure policy (``pacemaker.resources``) as meta attributes of vip and httpd
    (inside the clone: every instance has them)."""
    t = _profile(params, profile).resources
    meta = params.pacemaker.resources.meta()
    pub = params.networks.public
    vip = Primitive(
        "vip",
        "ocf:heartbeat:IPaddr2",
        (("ip", str(params.vip.address)), ("cidr_netmask", str(pub.subnet.prefixlen)), ("nic", pub.bond)),
        (Op("monitor", f"{t.vip_monitor}s"),),
        meta,
    )
    httpd = Primitive(
        "httpd",
        "ocf:heartbeat:apache",
        (("configfile", APACHE_CONFIG), ("statusurl", STATUS_URL)),
        (
            Op("start", "0s", op_timeout(params, HTTPD_START_TIMEOUT)),
            Op("stop", "0s", op_timeout(params, HTTPD_STOP_TIMEOUT)),
            Op("monitor", f"{t.httpd_monitor}s", op_timeout(params, HTTPD_MONITOR_TIMEOUT)),
        ),
        meta,
    )
    ping = Primitive(
        "ping-gateway",
        "ocf:pacemaker:ping",
        (
            ("host_list", str(pub.gateway)),
            ("multiplier", str(PING_MULTIPLIER)),
            ("dampen", f"{t.ping_dampen}s"),
            ("attempts", str(t.ping_attempts)),
            ("timeout", str(t.ping_timeout)),
        ),
        (Op("monitor", f"{t.ping_monitor}s", op_timeout(params, PING_MONITOR_TIMEOUT)),),
    )
    apache: Item = Clone(HTTPD_CLONE, httpd, HTTPD_CLONE_META) if params.pacemaker.cloned_apache else httpd
    return Bundle("05 resources", (vip, apache, Clone("cloned-ping-gateway", ping)))


def colocation(params: Params) -> Colocation:
    """What ties the VIP and Apache together: the article's Apache follows the VIP; in the cloned-apache
    layout the VIP follows a running Apache instance (every node runs one)."""
    if params.pacemaker.cloned_apache:
        return Colocation("vip-with-httpd", "inf", "vip", HTTPD_CLONE)
    return Colocation("httpd-with-vip", "inf", "httpd", "vip")


def constraints(params: Params) -> Bundle:
    """Stage 6: three constraints, all on the VIP's placement (no ordering; notebook 06 explains why)."""
    return Bundle(
        "06 constraints",
        (
            colocation(params),
            LocationPrefers("preferred-node", "vip", "100", params.preferred_node),
            LocationRule(
                "vip-needs-gateway",
                "vip",
                "-inf",
                (Expression("not_defined", "pingd"), Expression("lte", "pingd", "0")),
                "or",
            ),
        ),
    )


def xml_text(bundle: Bundle) -> str:
    """The bundle's elements as indented XML, one per section, for golden files and notebooks."""
    out = []
    for item in bundle.items:
        e = item.xml()
        ET.indent(e, "  ")
        out.append(f"<!-- {item.section}: {item.key} -->\n" + ET.tostring(e, encoding="unicode"))
    return "\n".join(out) + "\n"
