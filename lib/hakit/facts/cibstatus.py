"""What the CIB says that crm_mon's XML does not spell out: move constraints and failcounts.

Pure: the text of ``cibadmin --query`` in, dataclasses out (pacemaker 2.1 and 3.0 write these alike).

- ``crm_resource --move`` / ``--ban`` (and crmsh's ``crm resource move`` / ``ban``, which call it)
  leave a ``rsc_location`` named ``cli-prefer-<rsc>`` or ``cli-ban-<rsc>-on-<node>``; with
  ``--lifetime`` it holds a rule with a ``date_expression`` end instead of a plain node.
- A failcount is a transient node attribute ``fail-count-<rsc>#<op>_<interval ms>`` in the status
  section, beside ``last-failure-<rsc>#<op>_<interval ms>`` (UNIX time).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .base import xml_root

INFINITY = 1_000_000  # pacemaker's "INFINITY" score, as an integer


@dataclass(frozen=True)
class MoveConstraint:
    """A location constraint left by a move or a ban."""

    id: str
    resource: str
    node: str
    score: str
    expires: str | None = None  # the end of --lifetime, as pacemaker wrote it; None: forever

    @property
    def kind(self) -> str:
        return "ban" if self.id.startswith("cli-ban-") else "prefer"

    def describe(self) -> str:
        where = f"pinned to {self.node}" if self.kind == "prefer" else f"kept off {self.node}"
        until = f" until {self.expires}" if self.expires else " with no end date"
        return f"{self.id}: {self.resource} {where} (score {self.score}){until}"


@dataclass(frozen=True)
class FailCount:
    node: str
    resource: str
    operation: str  # e.g. "monitor_1000" (the operation and its interval in ms)
    count: int  # INFINITY for "INFINITY"
    last_failure: int | None  # UNIX time


def _root(cib_xml: str) -> ET.Element:
    return xml_root(cib_xml, "cibadmin --query", "cib")


def move_constraints(cib_xml: str) -> list[MoveConstraint]:
    """Every ``cli-prefer-*`` / ``cli-ban-*`` location constraint, in CIB order."""
    out = []
    for loc in _root(cib_xml).iterfind("configuration/constraints/rsc_location"):
        cid = loc.get("id", "")
        if not cid.startswith(("cli-prefer-", "cli-ban-")):
            continue
        node, score, expires = loc.get("node"), loc.get("score"), None
        rule = loc.find("rule")
        if rule is not None:
            score = score or rule.get("score")
            for ex in rule.iter("expression"):
                if ex.get("attribute") == "#uname":
                    node = ex.get("value")
            end = rule.find("date_expression")
            expires = end.get("end") if end is not None else None
        out.append(MoveConstraint(cid, loc.get("rsc", "?"), node or "?", score or "?", expires))
    return out


def failcounts(cib_xml: str) -> list[FailCount]:
    """Every failcount on record, node by node (``status`` section), highest first per node."""
    out = []
    for ns in _root(cib_xml).iterfind("status/node_state"):
        node = ns.get("uname", "?")
        attrs = {nv.get("name", ""): nv.get("value", "") for nv in ns.iterfind("transient_attributes//nvpair")}
        for name, value in attrs.items():
            if not name.startswith("fail-count-"):
                continue
            key = name[len("fail-count-"):]
            rsc, _, op = key.partition("#")
            count = INFINITY if value.upper() == "INFINITY" else int(value or 0)
            last = attrs.get(f"last-failure-{key}")
            out.append(FailCount(node, rsc, op, count, int(last) if last and last.isdigit() else None))
    return sorted(out, key=lambda f: (f.node, -f.count, f.resource, f.operation))


def meta_attribute(cib_xml: str, resource: str, name: str) -> str | None:
    """A resource's meta attribute (e.g. migration-threshold), or None when it is not set on it."""
    for prim in _root(cib_xml).iter("primitive"):
        if prim.get("id") == resource:
            for nv in prim.iterfind("meta_attributes/nvpair"):
                if nv.get("name") == name:
                    return nv.get("value")
    return None


def resource_ids(cib_xml: str) -> list[str]:
    """The ids a user can name in ``crm resource``: primitives, groups and clones, in CIB order."""
    res = _root(cib_xml).find("configuration/resources")
    if res is None:
        return []
    return [e.get("id", "") for e in res.iter() if e.tag in ("primitive", "group", "clone", "bundle") and e.get("id")]


def property_value(cib_xml: str, name: str) -> str | None:
    """A cluster property from ``crm_config`` (e.g. maintenance-mode), or None when unset."""
    for nv in _root(cib_xml).iterfind("configuration/crm_config/cluster_property_set/nvpair"):
        if nv.get("name") == name:
            return nv.get("value")
    return None
