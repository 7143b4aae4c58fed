"""Parse corosync 3.1 status tools: ``corosync-cfgtool -s`` and ``corosync-quorumtool -s``.

Formats follow corosync 3.1's tools/corosync-cfgtool.c and
tools/corosync-quorumtool.c (Debian 12 ships 3.1.7, Debian 13 3.1.9: same output,
checked on captures from both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from hakit.facts.base import Fact
from hakit.facts.errors import FactParseError

CFGTOOL = "corosync-cfgtool -s"
QUORUMTOOL = "corosync-quorumtool -s"

PeerState = Literal["localhost", "connected", "disconnected"]

_LOCAL_RE = re.compile(r"^Local node ID (\d+), transport (\S+)$")
_LINK_RE = re.compile(r"^LINK ID (\d+)(?: (\S*))?$")
_ADDR_RE = re.compile(r"^addr\s*=\s*(\S+)$")
_PEER_RE = re.compile(r"^nodeid:\s*(\d+):\s*(localhost|connected|disconnected)$")
_BRIEF_RE = re.compile(r"^status\s*=\s*\S*$")


@dataclass(frozen=True)
class LinkPeer:
    """One node's state on one knet link, as seen from the local node."""

    nodeid: int
    state: PeerState

    @property
    def is_local(self) -> bool:
        return self.state == "localhost"

    @property
    def is_connected(self) -> bool:
        """True for a reachable peer and for the local node itself."""
        return self.state != "disconnected"


@dataclass(frozen=True)
class LinkStatus:
    """One knet link (ring): its local address and every node's state on it."""

    link_id: int
    transport: str
    addr: str
    peers: tuple[LinkPeer, ...]

    def peer(self, nodeid: int) -> LinkPeer:
        for p in self.peers:
            if p.nodeid == nodeid:
                return p
        raise KeyError(
            f"link {self.link_id} lists no node {nodeid}; it lists: "
            f"{', '.join(str(p.nodeid) for p in self.peers)}"
        )

    @property
    def disconnected(self) -> tuple[int, ...]:
        """Node ids this node cannot reach over this link."""
        return tuple(p.nodeid for p in self.peers if not p.is_connected)

    @property
    def all_connected(self) -> bool:
        return not self.disconnected


@dataclass(frozen=True)
class LinkReport:
    """Parsed ``corosync-cfgtool -s``: the local node id and each link's peers."""

    local_nodeid: int
    transport: str
    links: tuple[LinkStatus, ...]

    def link(self, link_id: int) -> LinkStatus:
        for link in self.links:
            if link.link_id == link_id:
                return link
        raise KeyError(
            f"no link {link_id} in {CFGTOOL} output; links: "
            f"{', '.join(str(x.link_id) for x in self.links) or 'none'}"
        )

    @property
    def all_connected(self) -> bool:
        """Every configured node reachable over every link."""
        return all(link.all_connected for link in self.links)

    def reachable_nodeids(self) -> frozenset[int]:
        """Peers reachable over at least one link (the cluster still talks to them)."""
        return frozenset(
            p.nodeid for link in self.links for p in link.peers if p.is_connected and not p.is_local
        )


def parse_cfgtool_status(text: str) -> LinkReport:
    """Parse corosync 3.1 ``corosync-cfgtool -s`` (knet) into a LinkReport.

    Format (tabs as in the C source)::

        Local node ID 1, transport knet
        LINK ID 0 udp
        \\taddr\\t= 10.77.0.11
        \\tstatus:
        \\t\\tnodeid: %10u:\\tlocalhost | connected | disconnected
    """
    local: tuple[int, str] | None = None
    links: list[LinkStatus] = []
    link_id: int | None = None
    transport = ""
    addr: str | None = None
    peers: list[LinkPeer] = []
    in_status = False

    def finish(line_no: int) -> None:
        if link_id is None:
            return
        if addr is None:
            raise FactParseError(CFGTOOL, f"link {link_id} has no 'addr = ...' line", line_no)
        if not in_status:
            raise FactParseError(CFGTOOL, f"link {link_id} has no 'status:' section", line_no)
        links.append(LinkStatus(link_id, transport, addr, tuple(peers)))

    lines = text.splitlines()
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("Printing "):
            continue
        if m := _LOCAL_RE.match(line):
            if local is not None:
                raise FactParseError(CFGTOOL, "a second 'Local node ID' line", no, raw)
            local = (int(m.group(1)), m.group(2))
            continue
        if local is None:
            raise FactParseError(CFGTOOL, "expected 'Local node ID <n>, transport <t>' first", no, raw)
        if m := _LINK_RE.match(line):
            finish(no)
            link_id, transport = int(m.group(1)), m.group(2) or ""
            addr, peers, in_status = None, [], False
            continue
        if link_id is None:
            raise FactParseError(CFGTOOL, "expected 'LINK ID <n> <transport>'", no, raw)
        if m := _ADDR_RE.match(line):
            addr = m.group(1)
        elif line == "status:":
            in_status = True
        elif in_status and (m := _PEER_RE.match(line)):
            peers.append(LinkPeer(int(m.group(1)), m.group(2)))  # type: ignore[arg-type]
        elif _BRIEF_RE.match(line):
            raise FactParseError(
                CFGTOOL, "brief output (-b) names no node ids; run corosync-cfgtool -s without -b", no, raw
            )
        else:
            raise FactParseError(CFGTOOL, f"unexpected line in link {link_id}", no, raw)
    finish(len(lines))
    if local is None:
        raise FactParseError(CFGTOOL, "no 'Local node ID' line: empty output, or corosync is not running")
    return LinkReport(local[0], local[1], tuple(links))


@dataclass(frozen=True)
class QuorumMember:
    """One row of the membership table."""

    nodeid: int
    votes: int | None
    name: str
    is_local: bool = False
    qdevice: str | None = None


@dataclass(frozen=True)
class QuorumReport:
    """Parsed ``corosync-quorumtool -s``: quorum state, votes, flags and members."""

    provider: str
    nodes: int
    node_id: int
    ring_id: str
    quorate: bool
    date: str | None = None
    expected_votes: int | None = None
    highest_expected: int | None = None
    total_votes: int | None = None
    quorum: int | None = None
    activity_blocked: bool = False
    flags: tuple[str, ...] = ()
    members: tuple[QuorumMember, ...] = ()
    qdevice: QuorumMember | None = field(default=None)

    @property
    def two_node(self) -> bool:
        return "2Node" in self.flags

    @property
    def wait_for_all(self) -> bool:
        return "WaitForAll" in self.flags

    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def member(self, name: str) -> QuorumMember:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"{name!r} is not a member; members: {', '.join(self.member_names()) or 'none'}")


# "Label:" in the tool's output -> QuorumReport attribute
_QUORUM_FIELDS = {
    "Date": "date",
    "Quorum provider": "provider",
    "Nodes": "nodes",
    "Node ID": "node_id",
    "Ring ID": "ring_id",
    "Quorate": "quorate",
    "Expected votes": "expected_votes",
    "Highest expected": "highest_expected",
    "Total votes": "total_votes",
    "Quorum": "quorum",
    "Flags": "flags",
}
_INT_FIELDS = {"nodes", "node_id", "expected_votes", "highest_expected", "total_votes"}
_SECTIONS = {"Quorum information", "Votequorum information", "Membership information"}


def parse_quorumtool_status(text: str) -> QuorumReport:
    """Parse corosync 3.1 ``corosync-quorumtool -s`` into a QuorumReport.

    The tool exits 2 when the node is not quorate; its output is still valid.
    """
    values: dict[str, object] = {}
    members: list[QuorumMember] = []
    qdevice: QuorumMember | None = None
    columns: list[str] | None = None
    section = ""
    lines = text.splitlines()
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or set(line) == {"-"}:
            continue
        if line in _SECTIONS:
            section = line
            continue
        if section == "Membership information":
            if columns is None:
                columns = line.split()
                if columns[:1] != ["Nodeid"] or columns[-1:] != ["Name"]:
                    raise FactParseError(QUORUMTOOL, "expected the 'Nodeid ... Name' header", no, raw)
                continue
            row = _member_row(line, columns, no, raw)
            if row.nodeid == 0:
                qdevice = row  # votequorum's pseudo node for a quorum device
            else:
                members.append(row)
            continue
        if not section:
            raise FactParseError(QUORUMTOOL, "expected 'Quorum information' first", no, raw)
        label, sep, value = line.partition(":")
        attr = _QUORUM_FIELDS.get(label.strip())
        if not sep or attr is None:
            raise FactParseError(QUORUMTOOL, f"unknown line in {section!r}", no, raw)
        values[attr] = _convert(attr, value.strip(), no, raw)
        if attr == "quorum":  # "Quorum:  2 Activity blocked" when not quorate
            values["activity_blocked"] = "Activity blocked" in value
    for required in ("provider", "nodes", "node_id", "ring_id", "quorate"):
        if required not in values:
            label = next(k for k, v in _QUORUM_FIELDS.items() if v == required)
            raise FactParseError(QUORUMTOOL, f"no '{label}:' line: empty output, or corosync is not running")
    return QuorumReport(**values, members=tuple(members), qdevice=qdevice)  # type: ignore[arg-type]


def _convert(attr: str, value: str, no: int, raw: str) -> object:
    try:
        if attr in _INT_FIELDS:
            return int(value, 0)
        if attr == "quorate":
            if value not in ("Yes", "No"):
                raise ValueError
            return value == "Yes"
        if attr == "quorum":
            return int(value.split()[0])
        if attr == "flags":
            return tuple(value.split())
    except (ValueError, IndexError):
        raise FactParseError(QUORUMTOOL, f"cannot read the value of {attr!r}", no, raw) from None
    return value


def _member_row(line: str, columns: list[str], no: int, raw: str) -> QuorumMember:
    parts = line.split()
    try:
        nodeid = int(parts[0], 0)
        if nodeid == 0:  # "0  <votes>  Qdevice": the device row leaves the Qdevice column empty
            return QuorumMember(0, int(parts[1]), " ".join(parts[2:]))
        votes = int(parts[1]) if "Votes" in columns else None
        fixed = len(columns) - 1  # every column before Name is one token
        name_parts = parts[fixed:]
        qdevice = parts[columns.index("Qdevice")] if "Qdevice" in columns else None
    except (ValueError, IndexError):
        raise FactParseError(QUORUMTOOL, "cannot read a membership row", no, raw) from None
    is_local = name_parts[-1:] == ["(local)"]
    if is_local:
        name_parts = name_parts[:-1]
    if not name_parts:
        raise FactParseError(QUORUMTOOL, "membership row has no node name", no, raw)
    return QuorumMember(nodeid, votes, " ".join(name_parts), is_local, qdevice)


# The facts (command + parser) the stages read through `facts.base.read`.
CFGTOOL_STATUS: Fact[LinkReport] = Fact("knet links", CFGTOOL, parse_cfgtool_status)
QUORUM_STATUS: Fact[QuorumReport] = Fact("quorum", QUORUMTOOL, parse_quorumtool_status)


def parse_conf(text: str) -> dict[str, str]:
    """corosync.conf -> flat ``section.key`` -> value (comments dropped).

    Repeated sections are told apart by their own key: ``totem.interface[0].knet_link_priority``
    (by ``linknumber``) and ``nodelist.node[2].ring0_addr`` (by ``nodeid``), so two files compare
    key by key whatever their order. Raises FactParseError on unbalanced braces or a stray line.
    """
    stack: list[tuple[str, dict[str, str]]] = [("", {})]
    out: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            stack.append((line[:-1].strip(), {}))
        elif line == "}":
            if len(stack) == 1:
                raise FactParseError("corosync.conf", "'}' without an open section", no, raw)
            name, items = stack.pop()
            ident = items.get("linknumber") or items.get("nodeid")
            prefix = ".".join([s for s, _ in stack[1:]] + [f"{name}[{ident}]" if ident is not None and name in
                                                          ("interface", "node") else name])
            for k, v in items.items():
                out[f"{prefix}.{k}"] = v
        elif ":" in line:
            key, _, value = line.partition(":")
            stack[-1][1][key.strip()] = value.strip()
        else:
            raise FactParseError("corosync.conf", "neither 'key: value', 'section {' nor '}'", no, raw)
    if len(stack) != 1:
        raise FactParseError("corosync.conf", f"section {stack[-1][0]!r} is not closed")
    return out
