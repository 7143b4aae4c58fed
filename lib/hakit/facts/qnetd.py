"""`corosync-qnetd-tool -l` on a qnetd host: the clusters it serves and each connected node (pure parser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .base import Fact
from .errors import FactParseError

QNETD_TOOL = "corosync-qnetd-tool -lv"  # -v adds each client's TLS state, ring id and heartbeat interval


@dataclass(frozen=True)
class QnetdClient:
    """One node's qdevice connected to qnetd."""

    nodeid: int
    address: str = ""
    configured: tuple[int, ...] = ()
    membership: tuple[int, ...] = ()
    vote: str = ""  # e.g. "ACK (ACK)" or "No change (ACK)": the last vote sent (and, in brackets, the one in force)
    tls: str = ""  # with -v: e.g. "Yes (client certificate verified)"

    @property
    def acked(self) -> bool:
        """qnetd's vote in force for this node's partition is ACK (the bracketed part when shown)."""
        m = re.search(r"\(([^)]*)\)\s*$", self.vote)
        return (m.group(1) if m else self.vote).strip() == "ACK"

    @property
    def tls_verified(self) -> bool:
        return self.tls.startswith("Yes") and "verified" in self.tls


@dataclass(frozen=True)
class QnetdCluster:
    name: str
    algorithm: str = ""
    tie_breaker: str = ""
    clients: tuple[QnetdClient, ...] = field(default_factory=tuple)

    def client(self, nodeid: int) -> QnetdClient | None:
        return next((c for c in self.clients if c.nodeid == nodeid), None)


_CLUSTER = re.compile(r'^Cluster "(?P<name>[^"]+)":\s*$')
_NODE = re.compile(r"^\s+Node ID (?P<id>\d+):\s*$")
_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z -]*?):\s+(?P<value>.*?)\s*$")


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def parse_qnetd_list(text: str) -> dict[str, QnetdCluster]:
    """`corosync-qnetd-tool -l` -> cluster name -> QnetdCluster (an empty dict when no cluster is connected)."""
    clusters: dict[str, QnetdCluster] = {}
    name: str | None = None
    head: dict[str, str] = {}
    clients: list[dict[str, str]] = []

    def flush() -> None:
        if name is None:
            return
        cl = tuple(QnetdClient(int(c["id"]), c.get("Client address", ""), _ids(c.get("Configured node list", "")),
                               _ids(c.get("Membership node list", "")), c.get("Vote", ""), c.get("TLS active", ""))
                   for c in clients)
        clusters[name] = QnetdCluster(name, head.get("Algorithm", ""), head.get("Tie-breaker", ""), cl)

    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _CLUSTER.match(line)
        if m:
            flush()
            name, head, clients = m.group("name"), {}, []
            continue
        if name is None:
            raise FactParseError(QNETD_TOOL, "expected 'Cluster \"<name>\":' first", number, line)
        m = _NODE.match(line)
        if m:
            clients.append({"id": m.group("id")})
            continue
        m = _FIELD.match(line)
        if not m:
            raise FactParseError(QNETD_TOOL, "not 'key: value'", number, line)
        (clients[-1] if clients else head)[m.group("key")] = m.group("value")
    flush()
    return clusters


QNETD_LIST = Fact("qnetd clients", QNETD_TOOL, parse_qnetd_list)


QDEVICE_TOOL = "corosync-qdevice-tool -s"


@dataclass(frozen=True)
class QdeviceStatus:
    """`corosync-qdevice-tool -s` on a node: what its qdevice runs with and whether it reaches qnetd."""

    model: str
    algorithm: str
    qnetd_host: str
    state: str  # "Connected", "Connecting", ...

    @property
    def connected(self) -> bool:
        return self.state == "Connected"


def parse_qdevice_status(text: str) -> QdeviceStatus:
    """`corosync-qdevice-tool -s` -> QdeviceStatus (the key: value lines; the node lists are skipped)."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip() and not line.startswith((" ", "\t")):
            kv.setdefault(key.strip(), value.strip())
    if "Model" not in kv:
        raise FactParseError(QDEVICE_TOOL, "no 'Model:' line (is corosync-qdevice running?)", line=text[:160])
    return QdeviceStatus(kv["Model"], kv.get("Algorithm", ""), kv.get("QNetd host", ""), kv.get("State", ""))


QDEVICE_STATUS = Fact("qdevice status", QDEVICE_TOOL, parse_qdevice_status)
