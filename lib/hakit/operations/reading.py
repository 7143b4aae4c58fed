"""Reading the cluster as an admin does: ``crm_mon -1 -Af`` as it prints, with a legend; failcounts; logs.

All read-only. The legend explains only what this very output shows (each row quotes the line it
is about), in the order crm_mon prints it, for pacemaker 2.1 and 3.0 alike (their text differs
in a few words: 2.1 starts with a ``Status of pacemakerd`` line, 3.0 folds it into ``Stack:``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from .. import rawview
from ..facts import cibstatus
from ..facts.pacemaker import FailedAction
from ..params import Params
from ..runner import RemoteError, Runner
from ..stages.driver import per_node
from .base import leftover_warning

CRM_MON_AF = "crm_mon -1 -Af"  # one reading (-1), node attributes (-A), failcounts (-f)

# (what a line starts with or contains, the part's name, what it means). Checked in order; first match wins.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Status of pacemakerd", "pacemakerd state (pacemaker 2.1)",
     "the state of pacemakerd, the process that starts and watches the other pacemaker daemons on this node"),
    ("Cluster Summary:", "Cluster Summary", "the cluster as the node you asked sees it"),
    ("Node List:", "Node List", "every node and its state"),
    ("Active Resources:", "Active Resources",
     "what runs, and where; resources that run nowhere are left out (crm_mon -1 -r lists them too)"),
    ("Full List of Resources:", "Full List of Resources", "every resource, running or not"),
    ("Inactive Resources:", "Inactive Resources", "resources that run nowhere"),
    ("Node Attributes:", "Node Attributes (-A)",
     "values set on each node by agents or by hand; here the gateway ping's pingd (1000 per host that answers, "
     "0 or missing: the gateway is not reachable, and vip-needs-gateway keeps the VIP off that node)"),
    ("Migration Summary:", "Migration Summary (-f)",
     "per node, each resource that failed there: fail-count against migration-threshold (at the threshold the "
     "resource is banned from the node until the failcount expires or is cleaned up); empty when nothing failed"),
    ("Failed Resource Actions:", "Failed Resource Actions",
     "operations that failed (a monitor that found Apache dead, a start that failed); they stay listed until they "
     "expire (failure-timeout) or `crm resource cleanup`"),
    ("Failed Fencing Actions:", "Failed Fencing Actions", "fence attempts that failed: the cluster could not prove "
     "a node was off"),
    ("Pending Fencing Actions:", "Pending Fencing Actions", "fence actions still running"),
)
MARKERS: tuple[tuple[str, str, str], ...] = (
    ("Stack:", "Stack", "the membership layer (corosync) and, on pacemaker 3.0, whether pacemaker runs"),
    ("Current DC:", "Current DC", "the Designated Controller: the one node whose scheduler decides for the cluster; "
     "'partition with quorum' means this partition may run resources"),
    ("partition WITHOUT quorum", "no quorum", "this partition has lost quorum: with no-quorum-policy=stop it stops "
     "its resources (a two-node cluster keeps quorum alone through corosync's two_node)"),
    ("Last updated:", "Last updated", "when this reading was taken"),
    ("Last change:", "Last change", "the last change to the CIB's configuration: when, by which user and tool, on "
     "which node"),
    ("nodes configured", "nodes configured", "how many nodes the CIB knows"),
    ("resource instances configured", "resource instances configured",
     "resources counted per instance: a clone counts once per node it may run on"),
    ("*** Resource management is DISABLED ***", "Resource management is DISABLED",
     "maintenance-mode is on: pacemaker starts, stops, monitors and recovers nothing"),
    ("Online: [", "Online", "nodes in the cluster and able to run resources"),
    ("OFFLINE: [", "OFFLINE", "nodes the cluster does not see (off, or corosync or pacemaker stopped there)"),
    (": standby", "standby", "a node in the cluster that may run no resource (crm node standby)"),
    (": maintenance", "node in maintenance", "a node whose resources pacemaker leaves alone (crm node maintenance)"),
    ("UNCLEAN", "UNCLEAN", "a node lost without proof that it is off: the cluster waits for a fence before it "
     "starts that node's resources elsewhere"),
    ("(stonith:", "stonith: resource", "a fence device; it never runs on the node it powers off"),
    ("(ocf:", "ocf: resource", "a resource driven by an OCF agent (provider:agent), e.g. IPaddr2 for the VIP"),
    ("Clone Set:", "Clone Set", "one resource run on several nodes at once (the gateway ping, on every node)"),
    ("Started", "Started", "running on the node named after it"),
    ("Stopped", "Stopped", "running nowhere"),
    ("FAILED", "FAILED", "the last operation on that node failed"),
    ("(unmanaged)", "unmanaged", "pacemaker does not start, stop or recover it"),
    ("(maintenance)", "maintenance", "in maintenance (the resource, its node or the whole cluster): unmanaged, and "
     "not monitored"),
    ("fail-count=", "fail-count", "how many times it failed on that node since the last expiry or cleanup"),
    ("migration-threshold=", "migration-threshold", "after this many failures on a node it is banned from that node"),
    ("last-failure=", "last-failure", "when it last failed there"),
)


def legend(raw: str) -> pd.DataFrame:
    """Pure: one row per part of this crm_mon text (sections and markers that occur), quoting its first line."""
    return rawview.legend(raw, SECTIONS + MARKERS, every_match=True)


def _first_answering(hosts: Mapping[str, Runner], params: Params) -> str:
    for n in params.nodes:
        h = hosts.get(n.name)
        if h is not None and h.run("true", check=False, timeout=15).ok:
            return n.name
    raise RemoteError("cluster", "true", None, "no node of the params answers over SSH")


@dataclass
class ClusterReading:
    """One ``crm_mon -1 -Af`` as it printed, its legend, and what the CIB adds (move constraints)."""

    via: str
    raw: str
    exit_code: int
    moves: list[cibstatus.MoveConstraint] = field(default_factory=list)

    @property
    def legend(self) -> pd.DataFrame:
        return legend(self.raw)

    @property
    def warnings(self) -> list[str]:
        return [leftover_warning(m) for m in self.moves]

    def text(self) -> str:
        return f"$ {CRM_MON_AF}   (on {self.via}, exit {self.exit_code})\n{self.raw}"

    def _repr_html_(self) -> str:
        warn = "".join(f"<p><b>Warning</b>: {html.escape(w)}</p>" for w in self.warnings)
        return (f"<h4><code>{CRM_MON_AF}</code> on {html.escape(self.via)}</h4><pre>{html.escape(self.raw)}</pre>"
                f"{warn}<h4>What each part means</h4>" + self.legend.to_html(index=False))

    def __str__(self) -> str:
        return self.text()


def read(hosts: Mapping[str, Runner], params: Params) -> ClusterReading:
    via = _first_answering(hosts, params)
    h = hosts[via]
    r = h.run(CRM_MON_AF, check=False, timeout=60)
    q = h.run("cibadmin --query", check=False, timeout=60)
    moves = cibstatus.move_constraints(q.stdout) if q.ok else []
    return ClusterReading(via, r.stdout + (r.stderr if not r.ok else ""), r.exit_code, moves)


def _when(t: int | None) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else ""


@dataclass
class FailCounts:
    """The failcount table, or a sentence when nothing failed."""

    frame: pd.DataFrame

    def _repr_html_(self) -> str:
        if self.frame.empty:
            return "<p>No failcount and no failed action on record: nothing to clean up.</p>"
        return "<h4>Failcounts and failed actions</h4>" + self.frame.to_html(index=False)

    def __str__(self) -> str:
        return self.frame.to_string(index=False) if not self.frame.empty else "no failcount, no failed action"


def failcount_frame(cib_xml: str, failures: tuple[FailedAction, ...]) -> pd.DataFrame:
    """Pure: every failcount on record and every failed action, with what it does to placement."""
    rows = []
    for f in cibstatus.failcounts(cib_xml):
        threshold = cibstatus.meta_attribute(cib_xml, f.resource, "migration-threshold")
        timeout = cibstatus.meta_attribute(cib_xml, f.resource, "failure-timeout")
        banned = threshold is not None and threshold.isdigit() and f.count >= int(threshold)
        effect = (f"banned from {f.node}" + (f" until the failcount expires ({timeout} after the failure) or a "
                                             "cleanup" if timeout else " until a cleanup")) if banned else \
            f"restarted in place on {f.node} (migration-threshold {threshold or 'INFINITY'})"
        rows.append({"node": f.node, "resource": f.resource, "operation": f.operation,
                     "failcount": "INFINITY" if f.count >= cibstatus.INFINITY else f.count,
                     "migration-threshold": threshold or "INFINITY (default)", "last failure": _when(f.last_failure),
                     "what it does": effect})
    for a in failures:
        rows.append({"node": a.node, "resource": a.resource, "operation": a.op_key, "failcount": "",
                     "migration-threshold": "", "last failure": a.last_rc_change,
                     "what it does": f"failed action: {a.exitstatus} {a.exitreason}".strip()})
    return pd.DataFrame(rows, columns=["node", "resource", "operation", "failcount", "migration-threshold",
                                       "last failure", "what it does"])


# Where each log is on a Debian node with the runbooks' configuration, and how to read it.
LOGS: tuple[tuple[str, str, str, str], ...] = (
    ("corosync", "/var/log/corosync/corosync.log", "journalctl -u corosync",
     "membership, knet links, quorum; the file because corosync.conf (stage 3) says to_logfile, the journal "
     "because it says to_syslog"),
    ("pacemaker", "/var/log/pacemaker/pacemaker.log", "journalctl -u pacemaker",
     "every pacemaker daemon at info level (on a lab node about seven times the lines of the journal); the "
     "journal keeps the notices and the agents' messages (apache(httpd), IPaddr2(vip)): decisions (schedulerd "
     "'Actions: Move vip'), fencing, joins"),
    ("apache", "/var/log/apache2/error.log", "",
     "Apache's own errors and starts; the cluster's start, stop and monitor of it are in pacemaker.log"),
    ("fencing", "", "stonith_admin --history '*' --verbose",
     "every fence action the cluster remembers: which node, by which node, when, and whether it worked"),
    ("all of it", "", "crm_report --from \"YYYY-MM-DD HH:MM\" /tmp/report",
     "collects the logs, the CIB and the configuration of every node for a time window into one archive"),
)


@dataclass
class LogPlaces:
    """Where the logs are, whether each file is on each node (size, last written), and the latest journal lines."""

    frame: pd.DataFrame
    tails: dict[str, str]
    lines: int

    def text(self) -> str:
        out = [self.frame.to_string(index=False), ""]
        for node, tail in self.tails.items():
            out += [f"--- {node}: journalctl -u corosync -u pacemaker -n {self.lines}", tail]
        return "\n".join(out) + "\n"

    def _repr_html_(self) -> str:
        tails = "".join(f"<h4>{html.escape(n)}: last {self.lines} lines of <code>journalctl -u corosync -u "
                        f"pacemaker</code></h4><pre>{html.escape(t)}</pre>" for n, t in self.tails.items())
        return "<h4>Where the logs are</h4>" + self.frame.to_html(index=False) + tails


def _stat(h: Runner) -> dict[str, str]:
    files = [path for _, path, _, _ in LOGS if path]
    out = h.run("for f in " + " ".join(files) + "; do stat -c '%n %s %Y' \"$f\" 2>/dev/null || echo \"$f - -\"; done",
                check=False, timeout=30).stdout
    got = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(\S+) (\S+) (\S+)", line.strip())
        if m:
            size, mtime = m.group(2), m.group(3)
            got[m.group(1)] = ("missing" if size == "-" else
                               f"{int(size) // 1024} KiB, written {_when(int(mtime))}")
    return got


def logs(hosts: Mapping[str, Runner], params: Params, lines: int = 15) -> LogPlaces:
    names = [n.name for n in params.nodes if n.name in hosts]
    stats = per_node(hosts, names, _stat)
    tails = per_node(hosts, names, lambda h: h.run(
        f"journalctl -u corosync -u pacemaker -n {int(lines)} --no-pager -o short-iso", check=False,
        timeout=30).stdout.rstrip())
    rows = []
    for what, path, command, meaning in LOGS:
        row = {"log": what, "file": path or "-", "read with": command or f"less {path}", "what is in it": meaning}
        for n in names:
            row[n] = stats[n].get(path, "-") if path else "-"
        rows.append(row)
    return LogPlaces(pd.DataFrame(rows), tails, lines)
