"""The operator's own commands, as they print, beside the parsed tables: with a legend of each part.

A notebook shows what hakit parsed (tables); an admin at 3 a.m. reads the tools' own output. One
call per view runs the real command read-only on the nodes and shows its text unchanged, then a
legend that explains only the parts this very output contains, quoting the line each is about.
Every legend entry was written against output seen on the lab's nodes (Debian 12 and 13).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from .runner import Runner

# (text a line contains, the part's name, what it means). First match per line; each part once.
Legend = Sequence[tuple[str, str, str]]

CFGTOOL: Legend = (
    ("Local node ID", "Local node ID", "this node's nodeid in the nodelist, and the transport (knet: corosync 3's)"),
    ("LINK ID 0", "link 0 (ring0)", "the first knet link: ring0_addr, the private network; 'udp' is knet's transport"),
    ("LINK ID 1", "link 1 (ring1)", "the second knet link: ring1_addr, the public network, the backup ring"),
    ("addr", "addr", "this node's own address on that link"),
    ("localhost", "localhost", "the row of the node itself"),
    ("disconnected", "disconnected", "knet hears nothing from that node on this link (a cable, port or filter): "
     "corosync carries on over the other link, so the cluster sees no change"),
    ("connected", "connected", "knet hears that node on this link"),
)
QUORUMTOOL: Legend = (
    ("Quorum provider:", "Quorum provider", "votequorum: corosync counts the votes, pacemaker asks it"),
    ("Ring ID:", "Ring ID", "the current membership: <node id of its representative>.<sequence>; it changes each "
     "time a node joins or leaves"),
    ("Quorate:", "Quorate", "whether this node's partition has quorum now"),
    ("Expected votes:", "Expected votes", "one vote per node of the nodelist (plus a quorum device's, if any)"),
    ("Total votes:", "Total votes", "the votes present in this partition now"),
    ("Quorum:", "Quorum", "the votes needed: more than half; with two_node it is 1, so either node alone stays "
     "quorate (and fencing settles who runs the service)"),
    ("2Node", "Flags", "2Node: two_node is on (corosync.conf, only for two nodes); WaitForAll, which two_node "
     "turns on: after a full stop, quorum waits until every node was seen once; Quorate: quorum now"),
    ("WaitForAll", "Flags ", "after a full stop, quorum waits until every node was seen once (two_node "
     "turns it on): a node booting alone does not claim quorum"),
    ("(local)", "Membership", "the nodes in this membership with their votes; (local) is this node"),
)
CRM_SHOW: Legend = (
    ("stonith:", "primitive ... stonith:", "a fence device (agent fence_ipmilan) and how it reaches the node's BMC; "
     "pcmk_host_list names the node it powers off"),
    ("pcmk_delay_base", "pcmk_delay_base", "a fixed wait before this device fences: on the preferred node's device, "
     "so in a two-node fence race the other side shoots first and the preferred node survives"),
    ("primitive", "primitive", "a resource: its name, agent (crmsh shortens ocf:heartbeat:IPaddr2 to IPaddr2), "
     "params and operations"),
    ("op monitor", "op monitor", "how often pacemaker checks the resource (interval) and how long a check may take"),
    ("op start", "op start / stop", "how long a start or stop may take before pacemaker counts it failed"),
    ("meta ", "meta", "the resource's options: migration-threshold, failure-timeout, resource-stickiness"),
    ("clone ", "clone", "one resource run on every node (the gateway ping; Apache too in the cloned-apache layout)"),
    ("colocation vip-with-httpd", "colocation vip-with-httpd", "the VIP runs only where an Apache instance runs "
     "(cloned-apache layout: Apache on every node, the VIP moves alone)"),
    ("colocation", "colocation", "httpd runs where the VIP runs (inf: always together)"),
    ("location preferred-node", "location ... 100:", "the VIP prefers the first node with score 100"),
    ("rule -inf:", "rule", "the VIP is banned where pingd is missing or 0: where the gateway does not answer"),
    ("-inf:", "location -inf", "never on that node (a fence device never runs on the node it powers off)"),
    ("property", "property", "cluster options (stage 4); dc-version and cluster-infrastructure are written by "
     "pacemaker itself"),
    ("node ", "node", "the nodes pacemaker knows: corosync's nodeid and name"),  # last: other lines name nodes too
)

BONDING: Legend = (
    ("Bonding Mode:", "Bonding Mode", "active-backup: one slave carries traffic, the other waits"),
    ("Primary Slave:", "Primary Slave", "the preferred slave (bond-primary); traffic returns to it when it is back"),
    ("Currently Active Slave:", "Currently Active Slave", "the slave carrying traffic now"),
    ("MII Polling Interval", "MII Polling Interval", "miimon: how often each slave's link is checked (ms)"),
    ("Up Delay", "Up Delay", "updelay: a link must stay up this long before it is used again"),
    ("Down Delay", "Down Delay", "downdelay: a link must stay down this long before the bond gives up on it"),
    ("Slave Interface:", "Slave Interface", "one NIC of the bond and its own link state"),
    ("Link Failure Count:", "Link Failure Count", "how often this slave's link failed since the bond came up"),
)


@dataclass(frozen=True)
class View:
    """One read-only command and how to read it."""

    title: str
    command: str
    legend: Legend
    every_node: bool  # True: each node's own view (links, bonds); False: one node speaks for the cluster
    empty: str = "(no output)"  # shown when the command prints nothing


VIEWS: dict[str, View] = {
    "cfgtool": View("knet links, as each node sees them", "corosync-cfgtool -s", CFGTOOL, True),
    "quorumtool": View("quorum and membership", "corosync-quorumtool -s", QUORUMTOOL, False),
    "crm-show": View("the CIB's configuration, as crmsh prints it", "crm configure show", CRM_SHOW, False),
    "bonding": View("the kernel's bonds", "for b in /proc/net/bonding/*; do [ -e \"$b\" ] && echo \"== $b\" && cat \"$b\"; done; true",
                    BONDING, True, "(no /proc/net/bonding here: this node has no kernel bond; stage 1 says why)"),
}


def legend(raw: str, entries: Legend, every_match: bool = False) -> pd.DataFrame:
    """Pure: one row per part that occurs in ``raw`` (first line quoted), in the order the text shows them.

    A line names the first part it matches, or with ``every_match`` each part it contains."""
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for line in raw.splitlines():
        text = line.strip()
        if not text:
            continue
        for needle, part, meaning in entries:
            if needle not in text:
                continue
            if part not in seen:
                seen.add(part)
                rows.append({"part": part, "seen here": text.lstrip("* ").replace("\t", " "), "what it means": meaning})
            if not every_match:
                break
    return pd.DataFrame(rows, columns=["part", "seen here", "what it means"])


@dataclass
class Output:
    node: str
    command: str
    text: str
    exit_code: int


@dataclass
class Shown:
    """A view's outputs (one per node, or one) and its legend; shows itself in a notebook."""

    view: View
    outputs: list[Output]

    @property
    def legend(self) -> pd.DataFrame:
        return legend("\n".join(o.text for o in self.outputs), self.view.legend)

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self.view.title)}: <code>{html.escape(self.view.command)}</code></h4>"]
        for o in self.outputs:
            status = "" if o.exit_code == 0 else f" (exit {o.exit_code})"
            parts.append(f"<p>on <b>{html.escape(o.node)}</b>{status}</p><pre>{html.escape(o.text)}</pre>")
        lg = self.legend
        if len(lg):
            parts += ["<h4>How to read it</h4>", lg.to_html(index=False)]
        return "".join(parts)

    def __str__(self) -> str:
        return "\n".join(f"$ {o.command}   (on {o.node}, exit {o.exit_code})\n{o.text}" for o in self.outputs)


def show(hosts: Mapping[str, Runner], name: str, nodes: Sequence[str] | None = None) -> Shown:
    """Run view ``name`` (one of VIEWS) read-only: on every node, or on the first that answers."""
    try:
        view = VIEWS[name]
    except KeyError:
        raise ValueError(f"no view {name!r}; use one of {', '.join(VIEWS)}") from None
    names = list(nodes or hosts)
    outputs = []
    for n in names:
        r = hosts[n].run(view.command, check=False, timeout=60)
        text = r.stdout if r.stdout.strip() else (r.stderr or view.empty)
        outputs.append(Output(n, view.command, text.rstrip("\n"), r.exit_code))
        if not view.every_node and r.exit_code == 0:
            break
    return Shown(view, outputs)
