"""Stage 03q: the quorum device. Certificates for corosync-qdevice (model net) and corosync-qnetd,
set up the way corosync-qdevice-net-certutil documents it (its -Q quick start does the same over
ssh/scp), then qnetd running on its host and qdevice on every node, and the vote verified.

A stage of its own, run by notebook 03 right after the rings (stage 03 renders the
``quorum.device`` section and leaves two_node out; this one makes the device answer). Kept
apart from `stages.corosync` because it touches a host that is not a node and owns files
corosync.conf knows nothing of.

The flow (every file travels host -> this machine's memory -> host over SFTP, never in argv):

1. qnetd host: ``corosync-qnetd-certutil -i`` makes the qnetd CA and server certificate where no
   database exists (Debian's postinst runs the same on install); the CA's private key never
   leaves that host.
2. every node: the CA certificate (public) is copied in, ``corosync-qdevice-net-certutil -i -c``.
3. first node: ``-r -n <cluster>`` makes a key and certificate request; the request goes to the
   qnetd host, ``corosync-qnetd-certutil -s`` signs it; the signed certificate comes back and
   ``-M`` exports certificate + key as a PKCS#12 file (a secret: root-only, copied as one).
4. other nodes: the PKCS#12 file is copied in and imported with ``-m``.
5. qnetd enabled and running; qdevice (re)started and enabled on every node.

A node counts as done when its database holds the cluster certificate and was made from the CA
the qnetd host has now (the CA copy it keeps has the same sha256); when any node is not done, the
node side is redone on every node (one PKCS#12 serves the whole cluster).
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, replace

import pandas as pd

from ..facts.corosync import QUORUM_STATUS, QUORUMTOOL
from ..facts.base import Fact, read
from ..facts.errors import FactParseError
from ..facts.qnetd import QDEVICE_STATUS, QDEVICE_TOOL, QNETD_LIST, QNETD_TOOL
from ..ops import Barrier, Command, CopySecretFile, Systemctl
from ..params import Params
from ..runner import Runner
from .base import Check, Plan, Verification
from .driver import complete, per_node

STAGE = "03q quorum device"

QNETD_DIR = "/etc/corosync/qnetd"
QNETD_DB = f"{QNETD_DIR}/nssdb"
QNETD_CA = f"{QNETD_DB}/qnetd-cacert.crt"
NODE_DIR = "/etc/corosync/qdevice/net"
NODE_DB = f"{NODE_DIR}/nssdb"
NODE_CA = f"{NODE_DIR}/qnetd-cacert.crt"  # the CA certificate this node's database was made from
CRQ = f"{NODE_DB}/qdevice-net-node.crq"
P12 = f"{NODE_DB}/qdevice-net-node.p12"
CLUSTER_NICK = "Cluster Cert"  # corosync-qdevice-net-certutil's nickname of the cluster certificate
QNETD_UNIT = "corosync-qnetd"
QDEVICE_UNIT = "corosync-qdevice"
APT_ENV = "DEBIAN_FRONTEND=noninteractive"


def signed_crt(cluster: str) -> str:
    """Where corosync-qnetd-certutil -s writes the cluster's signed certificate (on the qnetd host)."""
    return f"{QNETD_DB}/cluster-{cluster}.crt"


def staged_crq(cluster: str) -> str:
    """Where the node's certificate request waits on the qnetd host to be signed."""
    return f"{QNETD_DIR}/cluster-{cluster}.crq"


def node_crt(cluster: str) -> str:
    return f"{NODE_DB}/cluster-{cluster}.crt"


def _kv(out: str) -> dict[str, str]:
    got = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            got[key.strip()] = value.strip()
    return got


def _unit_lines(unit: str) -> str:
    return (f"echo active=$(systemctl is-active {unit} 2>/dev/null); "
            f"echo enabled=$(systemctl is-enabled {unit} 2>/dev/null)")


@dataclass(frozen=True)
class QnetdFacts:
    host: str
    installed: bool
    has_db: bool
    ca_sha256: str | None
    active: bool
    enabled: bool


def parse_qnetd_facts(out: str, host: str = "") -> QnetdFacts:
    """Pure: the `QNETD_STATE` lines (key=value) -> QnetdFacts."""
    kv = _kv(out)
    if "installed" not in kv:
        raise FactParseError("qnetd host state", "no installed= line", line=out[:160])
    return QnetdFacts(host=host, installed=kv["installed"] == "yes", has_db=kv.get("db") == "yes",
                      ca_sha256=kv.get("ca") or None, active=kv.get("active") == "active",
                      enabled=kv.get("enabled") == "enabled")


QNETD_STATE = Fact(
    "qnetd host state",
    "dpkg-query -W -f='${db:Status-Abbrev}' corosync-qnetd 2>/dev/null | grep -q '^ii' && echo installed=yes "
    f"|| echo installed=no; test -f {QNETD_DB}/cert9.db && test -f {QNETD_CA} && echo db=yes || echo db=no; "
    f"echo ca=$(sha256sum {QNETD_CA} 2>/dev/null | cut -d' ' -f1); " + _unit_lines(QNETD_UNIT),
    parse_qnetd_facts,
)


@dataclass(frozen=True)
class NodeFacts:
    node: str
    installed: bool
    has_db: bool
    ca_sha256: str | None  # of the CA copy the database was made from
    has_cluster_cert: bool
    active: bool
    enabled: bool
    device_model: str | None  # quorum.device.model corosync runs with (None: no device configured)

    def done(self, ca_sha256: str | None) -> bool:
        return self.has_db and self.has_cluster_cert and ca_sha256 is not None and self.ca_sha256 == ca_sha256


def parse_node_facts(out: str, node: str = "") -> NodeFacts:
    kv = _kv(out)
    if "installed" not in kv:
        raise FactParseError("qdevice node state", "no installed= line", line=out[:160])
    return NodeFacts(node=node, installed=kv["installed"] == "yes", has_db=kv.get("db") == "yes",
                     ca_sha256=kv.get("ca") or None, has_cluster_cert=kv.get("cert") == "yes",
                     active=kv.get("active") == "active", enabled=kv.get("enabled") == "enabled",
                     device_model=kv.get("model") or None)


NODE_STATE = Fact(
    "qdevice node state",
    "dpkg-query -W -f='${db:Status-Abbrev}' corosync-qdevice 2>/dev/null | grep -q '^ii' && echo installed=yes "
    f"|| echo installed=no; test -f {NODE_DB}/cert9.db && echo db=yes || echo db=no; "
    f"echo ca=$(sha256sum {NODE_CA} 2>/dev/null | cut -d' ' -f1); "
    f"certutil -L -d {NODE_DB} -n '{CLUSTER_NICK}' >/dev/null 2>&1 && echo cert=yes || echo cert=no; "
    "echo model=$(corosync-cmapctl -g quorum.device.model 2>/dev/null | sed 's/.*= //'); "
    + _unit_lines(QDEVICE_UNIT),
    parse_node_facts,
)


@dataclass(frozen=True)
class QdeviceFacts:
    qnetd: QnetdFacts
    nodes: dict[str, NodeFacts]

    def to_frame(self) -> pd.DataFrame:
        q = self.qnetd
        rows = [{"host": q.host, "role": "qnetd", "package": "installed" if q.installed else "MISSING",
                 "certificates": f"qnetd CA sha256 {q.ca_sha256[:12]}" if q.has_db and q.ca_sha256 else "no database yet",
                 "daemon": f"{'active' if q.active else 'inactive'}, {'enabled' if q.enabled else 'disabled'}"}]
        for f in self.nodes.values():
            certs = ("cluster certificate, from this CA" if f.done(q.ca_sha256) else
                     "cluster certificate, from ANOTHER CA" if f.has_cluster_cert else
                     "database, no cluster certificate" if f.has_db else "no database yet")
            rows.append({"host": f.node, "role": "qdevice", "package": "installed" if f.installed else "MISSING",
                         "certificates": certs,
                         "daemon": f"{'active' if f.active else 'inactive'}, {'enabled' if f.enabled else 'disabled'}"})
        return pd.DataFrame(rows, columns=["host", "role", "package", "certificates", "daemon"])

    def _repr_html_(self) -> str:
        return "<h4>Current state</h4>" + self.to_frame().to_html(index=False)


def ensure_qnetd_host(hosts: MutableMapping[str, Runner], params: Params) -> str:
    """The qnetd host's connection in ``hosts`` (connected here if it is not there yet); its name."""
    qd = params.quorum_device
    assert qd is not None
    if qd.host not in hosts:
        from ..remote import connect_qnetd  # late: unit tests pass fake runners and never import Fabric's side

        hosts[qd.host] = connect_qnetd(params)
    return qd.host


def gather(hosts: MutableMapping[str, Runner], params: Params) -> QdeviceFacts:
    """Read-only: the qnetd host's package, CA and daemon; each node's certificates and qdevice daemon."""
    name = ensure_qnetd_host(hosts, params)
    q = replace(read(hosts[name], QNETD_STATE), host=name)
    nodes = per_node(hosts, [n.name for n in params.nodes], lambda h: read(h, NODE_STATE))
    return QdeviceFacts(q, {n: replace(f, node=n) for n, f in nodes.items()})


def plan(params: Params, facts: QdeviceFacts) -> Plan:
    """Pure: the operations that give every node a working qdevice against the qnetd host."""
    qd = params.quorum_device
    assert qd is not None
    names = [n.name for n in params.nodes]
    q = facts.qnetd
    cluster = params.cluster.name
    p = Plan(STAGE, order=[*names, q.host])
    p.notes.append(f"quorum device: qnetd on {q.host} ({qd.address}:{qd.port}), algorithm {qd.algorithm}, tls {qd.tls}")
    for n in names:
        f = facts.nodes[n]
        if not f.installed:
            p.blocked[n] = "corosync-qdevice is not installed: run 00_packages with these params first"
        elif f.device_model != "net":
            p.blocked[n] = ("corosync runs without a quorum device (quorum.device.model unset): run stage 03 with "
                            "these params first; nothing will be changed")
    if p.blocked:
        return p
    ca_known = q.ca_sha256 if q.has_db else None
    if not q.installed:
        p.ops.append(Command(node=q.host, argv=f"apt-get update -q && {APT_ENV} apt-get install -y -q corosync-qnetd",
                             timeout=600,
                             label="install corosync-qnetd",
                             reason="the qnetd host runs the server; its postinst makes the qnetd CA"))
        ca_known = None
    elif not q.has_db:
        p.ops.append(Command(
            node=q.host, argv=(f"corosync-qnetd-certutil -i -G && chgrp coroqnetd {QNETD_DB} {QNETD_DB}/cert9.db "
                               f"{QNETD_DB}/key4.db"),
            label="make the qnetd CA and server certificate (corosync-qnetd-certutil -i)",
            reason=f"no certificate database in {QNETD_DB}; the CA's private key stays on this host"))
    redo = [facts.nodes[n] for n in names if not facts.nodes[n].done(ca_known)]
    if redo or not q.active:
        verb = "restart" if q.active and (not q.has_db or not q.installed) else "start"
        if not q.active or verb == "restart":
            p.ops.append(Systemctl(node=q.host, verb=verb, units=(QNETD_UNIT,), timeout=60,
                                   reason="qnetd serves the vote" if not q.active else "its certificates changed"))
    if not q.enabled or not q.installed:
        p.ops.append(Systemctl(node=q.host, verb="enable", units=(QNETD_UNIT,), reason="qnetd starts at boot"))
    if p.ops:
        p.ops.append(Barrier(text=f"qnetd has its CA and runs on {q.host}"))
    if redo:
        why = "; ".join(f"{f.node}: " + ("no database" if not f.has_db else "made from another CA" if f.has_cluster_cert
                                           else "no cluster certificate") for f in redo)
        p.notes.append(f"certificates: {why}; the node side is made again on every node (one PKCS#12 for the cluster)")
        first, others = names[0], names[1:]
        for n in names:
            p.ops.append(Command(node=n, argv=f"rm -rf {NODE_DB} && mkdir -p {NODE_DIR}",
                                 label="clear the qdevice certificate database",
                                 reason="it is made again from the qnetd host's CA"))
            p.ops.append(CopySecretFile(node=n, src_node=q.host, src_path=QNETD_CA, path=NODE_CA, mode=0o644,
                                        expect_sha256=ca_known, made_above="the CA made above",
                                        label="copy the qnetd CA certificate",
                                        reason="public: the node trusts qnetd's server certificate by it"))
            p.ops.append(Command(node=n, argv=("corosync-qdevice-net-certutil", "-i", "-c", NODE_CA),
                                 label="make the qdevice certificate database (-i)",
                                 reason="a database that trusts the qnetd CA"))
        p.ops.append(Barrier(text="every node has a database that trusts the qnetd CA"))
        p.ops.append(Command(node=first, argv=("corosync-qdevice-net-certutil", "-r", "-n", cluster),
                             label="make the cluster key and certificate request (-r)",
                             reason=f"the key stays in {NODE_DB}; the request goes to qnetd to be signed"))
        p.ops.append(Barrier(text="the certificate request exists"))
        p.ops.append(CopySecretFile(node=q.host, src_node=first, src_path=CRQ, path=staged_crq(cluster), mode=0o600,
                                    made_above="the request made above", label="copy the certificate request", reason="qnetd's CA signs it"))
        p.ops.append(Command(node=q.host, argv=(f"corosync-qnetd-certutil -s -c {staged_crq(cluster)} -n {cluster} "
                                                f"&& rm -f {staged_crq(cluster)}"),
                             label="sign the cluster certificate (corosync-qnetd-certutil -s)",
                             reason=f"writes {signed_crt(cluster)}"))
        p.ops.append(Barrier(text="qnetd signed the cluster certificate"))
        p.ops.append(CopySecretFile(node=first, src_node=q.host, src_path=signed_crt(cluster), path=node_crt(cluster),
                                    mode=0o644, made_above="the certificate signed above",
                                    label="copy the signed cluster certificate",
                                    reason="imported with its key into a PKCS#12 file"))
        p.ops.append(Command(node=first, argv=f"corosync-qdevice-net-certutil -M -c {node_crt(cluster)} && chmod 0600 {P12}",
                             label="import it and export certificate + key as PKCS#12 (-M)",
                             reason="one PKCS#12 file (root-only: it holds the private key) serves every node"))
        if others:
            p.ops.append(Barrier(text=f"the PKCS#12 file exists on {first}"))
        for n in others:
            p.ops.append(CopySecretFile(node=n, src_node=first, path=P12, mode=0o600, made_above="the file made above",
                                        label="copy the cluster PKCS#12 file (secret: through memory, SFTP)",
                                        reason="certificate and key of the cluster"))
            p.ops.append(Command(node=n, argv=("corosync-qdevice-net-certutil", "-m", "-c", P12),
                                 label="import the cluster certificate and key (-m)", reason="qdevice presents them to qnetd"))
        p.ops.append(Barrier(text="every node holds the cluster certificate"))
    for n in names:
        f = facts.nodes[n]
        if redo and f.active:  # every node's database was made again: no qdevice may keep the old one open
            p.ops.append(Systemctl(node=n, verb="restart", units=(QDEVICE_UNIT,), timeout=60,
                                   reason="its certificates were made again"))
        elif not f.active:
            p.ops.append(Systemctl(node=n, verb="start", units=(QDEVICE_UNIT,), timeout=60,
                                   reason="qdevice gives corosync the device's vote"))
        if not f.enabled:
            p.ops.append(Systemctl(node=n, verb="enable", units=(QDEVICE_UNIT,), reason="qdevice starts at boot"))
    for n in [*names, q.host]:
        if not p.ops_for(n):
            p.no_change[n] = ("qnetd installed, its CA made, running and enabled" if n == q.host else
                              "certificates from the qnetd CA, qdevice active and enabled")
    return p


def verify(hosts: MutableMapping[str, Runner], params: Params, wait_s: float = 60) -> Verification:
    """Read-only: qdevice active on every node and its vote counted (``corosync-quorumtool -s`` shows the
    Qdevice row with a vote); qnetd active and ``corosync-qnetd-tool -l`` lists the cluster with every node."""
    qd = params.quorum_device
    assert qd is not None
    name = ensure_qnetd_host(hosts, params)
    names = [n.name for n in params.nodes]
    deadline = time.monotonic() + wait_s
    while True:
        v = Verification(STAGE)
        for checks in per_node(hosts, names, lambda h: _verify_node(h, params)).values():
            v.checks += checks
        v.checks += _verify_qnetd(hosts[name], params)
        if v.ok or time.monotonic() > deadline:
            return v
        time.sleep(1)


def _verify_node(h: Runner, params: Params) -> list[Check]:
    out = []
    r = h.run(f"systemctl is-active {QDEVICE_UNIT}", check=False)
    out.append(Check(h.name, "corosync-qdevice active", r.stdout.strip() == "active", r.stdout.strip() or "-"))
    qd = params.quorum_device
    assert qd is not None
    try:
        st = read(h, QDEVICE_STATUS)
        out.append(Check(h.name, "qdevice connected to qnetd", st.connected and st.qnetd_host == f"{qd.address}:{qd.port}",
                         f"{st.state} to {st.qnetd_host or '-'}, algorithm {st.algorithm or '-'}"))
    except FactParseError as e:
        out.append(Check(h.name, "qdevice connected to qnetd", False, f"{QDEVICE_TOOL} unreadable: {e}"))
    try:
        q = read(h, QUORUM_STATUS)
        dev = q.qdevice
        want = len(params.nodes) + (dev.votes if dev else 0)
        out.append(Check(h.name, "the quorum device's vote counts", dev is not None and dev.votes > 0 and q.quorate
                         and q.total_votes == want,
                         f"Qdevice {'row with ' + str(dev.votes) + ' vote(s)' if dev else 'row MISSING'}, total votes "
                         f"{q.total_votes}, expected {q.expected_votes}, quorate={q.quorate}"))
        flags = [m.qdevice for m in q.members]
        out.append(Check(h.name, "every member votes with the device (A,V)", all(f and "A,V" in f for f in flags),
                         ", ".join(f"{m.name}: {m.qdevice}" for m in q.members)))
    except FactParseError as e:
        out.append(Check(h.name, "quorum", False, f"{QUORUMTOOL} unreadable: {e}"))
    return out


def _verify_qnetd(h: Runner, params: Params) -> list[Check]:
    out = []
    r = h.run(f"systemctl is-active {QNETD_UNIT}", check=False)
    out.append(Check(h.name, "corosync-qnetd active", r.stdout.strip() == "active", r.stdout.strip() or "-"))
    try:
        clusters = read(h, QNETD_LIST)
        c = clusters.get(params.cluster.name)
        ids = sorted(n.nodeid for n in params.nodes)
        got = sorted(x.nodeid for x in c.clients) if c else []
        out.append(Check(h.name, f"qnetd lists cluster {params.cluster.name} with every node", got == ids,
                         f"node ids {got}" + (f", algorithm {c.algorithm}" if c else "")
                         + ("" if got == ids else f"; expected {ids}")))
        if c is not None:
            bad = [x.nodeid for x in c.clients if not x.tls_verified]
            out.append(Check(h.name, "every node talks TLS with a verified client certificate", not bad and bool(c.clients),
                             "; ".join(f"node {x.nodeid}: {x.tls}" for x in c.clients)))
    except FactParseError as e:
        out.append(Check(h.name, "qnetd clients", False, f"{QNETD_TOOL} unreadable: {e}"))
    return out


class QdeviceStage:
    """Stage 03q with its params bound (see `stages.driver.Stage`); only for params with a quorum_device."""

    name = STAGE

    def __init__(self, params: Params, wait_s: float = 60):
        if params.quorum_device is None:
            raise ValueError("these params have no quorum_device; stage 03q has nothing to do")
        self.params = params
        self.wait_s = wait_s

    def gather(self, hosts: MutableMapping[str, Runner]) -> QdeviceFacts:  # type: ignore[override]
        return gather(hosts, self.params)

    def plan(self, facts: QdeviceFacts) -> Plan:
        return plan(self.params, facts)

    def verify(self, hosts: MutableMapping[str, Runner], wait: bool = True) -> Verification:  # type: ignore[override]
        return verify(hosts, self.params, wait_s=self.wait_s if wait else 0)


def stage_run(params: Params, hosts: MutableMapping[str, Runner], dry_run: bool = True, record_dir: str = ""):
    """Notebook 03's quorum-device part: a StageRun of stage 03q, or None when the params have no quorum device."""
    from .driver import StageRun

    if params.quorum_device is None:
        return None
    return StageRun(QdeviceStage(params), hosts, dry_run=dry_run, record_dir=record_dir)


__all__ = ["QdeviceStage", "gather", "plan", "verify", "stage_run"]


def notebook_run(params: Params, hosts: MutableMapping[str, Runner], dry_run: bool = True, record_dir: str = ""):
    """Notebook 03's quorum-device cell: gather, plan, dry run or apply, verify and record stage 03q (its
    record in ``<record_dir>/qdevice``); a real run raises if verify fails. Without a quorum device: a note."""
    run = stage_run(params, hosts, dry_run=dry_run, record_dir=f"{record_dir}/qdevice" if record_dir else "")
    if run is None:
        return NoDevice()
    return complete(run)


class NoDevice(str):
    """What notebook 03 shows when the params name no quorum device."""

    def __new__(cls) -> "NoDevice":
        return super().__new__(cls, "no quorum_device in these params: stage 03q has nothing to do; with two nodes, "
                                    "two_node: 1 keeps a lone node quorate (the quorum section rendered above)")
