"""The everyday changes: standby / online, move / clear, cleanup, maintenance mode on / off.

Each runs one pacemaker command, shown beside the crm shell line an admin would type. crmsh
(``ui_resource.py`` on the nodes, 4.4 and 5.0) runs ``crm_resource`` with these same options for
move, clear and cleanup; for standby and maintenance mode it patches in the same attribute that
``crm_attribute`` writes. The same command can then be pointed at a copy of the CIB for the
prediction. One exception:
``crm_resource --cleanup`` on a copy crashed (exit 139, on pacemaker 2.1.5 and 3.0.0), so the
cleanup's prediction removes the failure records from the copy itself (`clear_failures`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import partial

from ..facts import cibstatus
from ..facts.pacemaker import ClusterStatus
from ..ops import CLUSTER
from ..params import Params
from ..runner import as_command
from ..stages.base import Plan, Verification
from .base import CrmCommand, OperationInputError, Operation, OpFacts, leftover_warning
from .predict import Change

# An ISO 8601 duration as crm_resource --lifetime takes it (PT10M, P1D, PT1H30M).
LIFETIME = re.compile(r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")
TRUE = ("true", "on", "yes", "1", "y")


def _on_copy(argv: tuple[str, ...]) -> Change:
    return Change(f"`{as_command(argv)}` on the copy", (argv,))


class _OneCommand(Operation):
    """An operation whose plan is one CrmCommand (or nothing) and whose prediction runs that command."""

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        """(argv, crm shell line, reason), or why nothing needs doing."""
        raise NotImplementedError

    def decide(self, facts: OpFacts, p: Plan) -> None:
        got = self.command(facts)
        if isinstance(got, str):
            p.no_change[CLUSTER] = got
            return
        argv, crm, reason = got
        p.ops.append(CrmCommand(via=facts.via, argv=argv, crm=crm, reason=reason))

    def changes(self, facts: OpFacts) -> list[Change]:
        got = self.command(facts)
        return [] if isinstance(got, str) else [_on_copy(got[0])]


class Standby(_OneCommand):
    """``crm node standby <node>``, or with ``standby=False`` ``crm node online <node>``."""

    def __init__(self, params: Params, node: str, standby: bool = True, wait_s: float = 120) -> None:
        super().__init__(params, wait_s)
        self.node, self.standby = node, standby
        self.title = f"{'standby' if standby else 'online'} {node}"

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        st = facts.status.nodes.get(self.node)
        if bool(st and st.standby) == self.standby:
            return f"{self.node} is {'already' if self.standby else 'not'} in standby"
        argv = ("crm_attribute", "--node", self.node, "--name", "standby", "--update", "on" if self.standby else "off")
        if self.standby:
            return (argv, f"crm node standby {self.node}",
                    f"{self.node} keeps its place (and vote) in the cluster but may run no resource: pacemaker stops "
                    "or moves what runs there")
        return (argv, f"crm node online {self.node}",
                f"{self.node} may run resources again: pacemaker places them by their constraints (a preferred "
                "node takes its resources back unless stickiness keeps them where they are)")

    def decide(self, facts: OpFacts, p: Plan) -> None:
        super().decide(facts, p)
        hosts_left = [n for n, s in facts.status.nodes.items() if n != self.node and s.state == "online"]
        if self.standby and p.ops and not hosts_left:
            p.notes.append(f"no other node is online and out of standby: with {self.node} in standby, "
                           "no resource can run anywhere")

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        s = st.nodes.get(self.node)
        ok = bool(s and s.standby) if self.standby else bool(s and s.state == "online")
        v.add(self.node, "in standby" if self.standby else "online, not in standby", ok,
              s.state if s else "not in crm_mon")


def check_resource(cib_xml: str, resource: str, what: str = "resource") -> str:
    ids = cibstatus.resource_ids(cib_xml)
    if resource not in ids:
        raise OperationInputError(f"{what}={resource!r} is not a resource of this cluster; use one of: {', '.join(ids)}")
    return resource


def check_lifetime(lifetime: str) -> str:
    if lifetime and not LIFETIME.fullmatch(lifetime):
        raise OperationInputError(f"lifetime={lifetime!r} is not an ISO 8601 duration; use e.g. PT10M (ten minutes), "
                                  "PT1H or P1D, or leave it empty for a constraint without end")
    return lifetime


class Move(_OneCommand):
    def __init__(self, params: Params, resource: str, node: str = "", lifetime: str = "", wait_s: float = 120) -> None:
        super().__init__(params, wait_s)
        self.resource, self.node, self.lifetime = resource, node, check_lifetime(lifetime)
        self.title = f"move {resource}" + (f" to {node}" if node else "")

    def target(self, facts: OpFacts) -> str:
        if self.node:
            return self.node
        where = facts.status.running_on(self.resource)
        free = [n.name for n in self.params.nodes if n.name not in where
                and facts.status.nodes.get(n.name) is not None and facts.status.nodes[n.name].state == "online"]
        if len(where) != 1 or not free:
            raise OperationInputError(
                f"{self.resource} runs on {', '.join(where) or 'no node'} and the other nodes online are "
                f"{', '.join(free) or 'none'}: name the node to move it to (node=...)")
        return free[0]

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        check_resource(facts.cib_xml, self.resource)
        to = self.target(facts)
        if facts.status.running_on(self.resource) == [to]:
            return f"{self.resource} already runs on {to}"
        argv = ("crm_resource", "--move", "--resource", self.resource, "--node", to)
        crm = f"crm resource move {self.resource} {to}"
        if self.lifetime:
            argv += ("--lifetime", self.lifetime)
            crm += f" {self.lifetime}"
        until = f" for {self.lifetime}" if self.lifetime else " until it is cleared"
        return (argv, crm, f"adds the location constraint cli-prefer-{self.resource} (score INFINITY on {to}){until}; "
                           "pacemaker moves the resource (and what is colocated with it) there")

    def decide(self, facts: OpFacts, p: Plan) -> None:
        super().decide(facts, p)
        for m in cibstatus.move_constraints(facts.cib_xml):
            p.notes.append("before this move: " + leftover_warning(m))

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        ids = [m.id for m in cibstatus.move_constraints(cib_xml) if m.resource == self.resource]
        v.add(CLUSTER, f"cli-prefer-{self.resource} in the CIB", f"cli-prefer-{self.resource}" in ids,
              ", ".join(ids) or "no move constraint")


class Clear(_OneCommand):
    def __init__(self, params: Params, resource: str, wait_s: float = 120) -> None:
        super().__init__(params, wait_s)
        self.resource = resource
        self.title = f"clear {resource}"

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        check_resource(facts.cib_xml, self.resource)
        mine = [m for m in cibstatus.move_constraints(facts.cib_xml) if m.resource == self.resource]
        if not mine:
            return f"no cli-prefer or cli-ban constraint for {self.resource}: nothing to clear"
        return (("crm_resource", "--clear", "--resource", self.resource), f"crm resource clear {self.resource}",
                "removes " + ", ".join(m.describe() for m in mine) + "; pacemaker then places the resource by its "
                "own constraints again")

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        left = [m.id for m in cibstatus.move_constraints(cib_xml) if m.resource == self.resource]
        v.add(CLUSTER, f"no move constraint left for {self.resource}", not left, ", ".join(left) or "none")


def primitives_of(cib_xml: str, resource: str) -> list[str]:
    """The primitive ids a resource name stands for (itself, or the members of a clone or group)."""
    conf = ET.fromstring(cib_xml).find("configuration/resources")
    for e in conf.iter() if conf is not None else []:
        if e.get("id") == resource:
            return [p.get("id", "") for p in e.iter("primitive")]
    return [resource]


def clear_failures(cib_xml: str, resources: list[str], node: str = "") -> str:
    """Pure: the CIB as a cleanup leaves it for the scheduler: the resources' failure records and failcounts gone.

    The ``*_last_failure_*`` operations and the ``fail-count-*`` / ``last-failure-*`` attributes are
    removed; where the last operation itself failed, the resource's whole history on that node goes
    (pacemaker probes it again after a cleanup).
    """
    root = ET.fromstring(cib_xml)
    for ns in root.iterfind("status/node_state"):
        if node and ns.get("uname") != node:
            continue
        for lrms in ns.iterfind("lrm/lrm_resources"):
            for lr in list(lrms):
                if lr.get("id") not in resources:
                    continue
                last = lr.find(f"lrm_rsc_op[@id='{lr.get('id')}_last_0']")
                if last is not None and (last.get("rc-code") not in ("0", "7") or last.get("op-status") != "0"):
                    lrms.remove(lr)
                    continue
                for op in list(lr):
                    if "_last_failure_" in op.get("id", ""):
                        lr.remove(op)
        for attrs in ns.iterfind("transient_attributes/instance_attributes"):
            for nv in list(attrs):
                name = nv.get("name", "")
                if any(name.startswith((f"fail-count-{r}#", f"last-failure-{r}#")) or name in (f"fail-count-{r}", f"last-failure-{r}")
                       for r in resources):
                    attrs.remove(nv)
    return ET.tostring(root, encoding="unicode")


class Cleanup(_OneCommand):
    def __init__(self, params: Params, resource: str = "", node: str = "", wait_s: float = 120) -> None:
        super().__init__(params, wait_s)
        self.resource, self.node = resource, node
        self.title = "cleanup" + (f" {resource}" if resource else "") + (f" on {node}" if node else "")

    def _prims(self, facts: OpFacts) -> list[str]:
        if not self.resource:
            return list(dict.fromkeys(r.id for r in facts.status.resources))
        check_resource(facts.cib_xml, self.resource)
        return primitives_of(facts.cib_xml, self.resource)

    def failures(self, st: ClusterStatus, cib_xml: str, prims: list[str]) -> list[str]:
        """The failed actions and failcounts this cleanup removes, one line each."""
        out = [f"failed action {f.op_key} on {f.node} ({f.exitstatus})" for f in st.failures
               if f.resource in prims and (not self.node or f.node == self.node)]
        out += [f"failcount {f.count} of {f.resource} ({f.operation}) on {f.node}" for f in cibstatus.failcounts(cib_xml)
                if f.resource in prims and f.count and (not self.node or f.node == self.node)]
        return out

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        prims = self._prims(facts)
        found = self.failures(facts.status, facts.cib_xml, prims)
        what = self.resource or "any resource"
        if not found:
            return f"no failed action or failcount for {what}" + (f" on {self.node}" if self.node else "")
        argv: tuple[str, ...] = ("crm_resource", "--cleanup")
        crm = "crm resource cleanup"
        if self.resource:
            argv += ("--resource", self.resource)
            crm += f" {self.resource}"
        if self.node:
            argv += ("--node", self.node)
            crm += f" {self.node}"
        return (argv, crm, "forgets " + "; ".join(found) + ": a ban the failcount caused ends, and pacemaker may "
                           "move the resource back")

    def changes(self, facts: OpFacts) -> list[Change]:
        if isinstance(self.command(facts), str):
            return []
        where = f" on {self.node}" if self.node else ""
        return [Change(f"the failure records and failcounts of {self.resource or 'every resource'}{where} removed from "
                       "the copy, as the cleanup does (crm_resource --cleanup itself crashes on a CIB copy)",
                       edit=partial(clear_failures, resources=self._prims(facts), node=self.node))]

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        assert self.facts is not None
        left = self.failures(st, cib_xml, self._prims(self.facts))
        v.add(CLUSTER, "no failed action or failcount left", not left, "; ".join(left) or "none")


class Maintenance(_OneCommand):
    def __init__(self, params: Params, on: bool, wait_s: float = 120) -> None:
        super().__init__(params, wait_s)
        self.on = on
        self.title = f"maintenance mode {'on' if on else 'off'}"

    def command(self, facts: OpFacts) -> tuple[tuple[str, ...], str, str] | str:
        now = (cibstatus.property_value(facts.cib_xml, "maintenance-mode") or "false").lower() in TRUE
        if now == self.on:
            return f"maintenance-mode is already {'on' if now else 'off'}"
        value = "true" if self.on else "false"
        why = ("pacemaker stops managing every resource: it starts, stops, monitors and recovers nothing, and what "
               "runs keeps running (work on Apache or the nodes without the cluster reacting)" if self.on else
               "pacemaker manages the resources again: it checks what runs where and acts on what it finds")
        return (("crm_attribute", "--type", "crm_config", "--name", "maintenance-mode", "--update", value),
                f"crm configure property maintenance-mode={value}", why)

    def checks(self, v: Verification, st: ClusterStatus, cib_xml: str) -> None:
        wrong = sorted({r.id for r in st.resources if r.managed == self.on})
        v.add(CLUSTER, f"every resource {'unmanaged' if self.on else 'managed'}", not wrong,
              "all" if not wrong else f"not: {', '.join(wrong)}")

    def notes_after(self, st: ClusterStatus, cib_xml: str) -> list[str]:
        out = super().notes_after(st, cib_xml)
        if (cibstatus.property_value(cib_xml, "maintenance-mode") or "false").lower() in TRUE:
            out.append("maintenance-mode is on: nothing is monitored or recovered until it is off again "
                       "(day2.maintenance(False); `hakit check` reports it as drift meanwhile)")
        return out
