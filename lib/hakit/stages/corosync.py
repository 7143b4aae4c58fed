"""Stage 3: corosync rings. Render corosync.conf, validate it on every node, push it only
where it differs, (re)start corosync then pacemaker in a safe order, enable both at boot,
and verify both knet links, quorum and pacemaker membership.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pandas as pd

from ..facts.corosync import FactParseError, parse_cfgtool_status, parse_quorumtool_status
from ..params import Params
from ..profiles import Profile, get_profile
from ..remote import Host, RemoteError
from ..render.corosync import render_corosync_conf
from .base import Change, Plan, StageResult, Verification

STAGE = "03 corosync rings"
CONF = "/etc/corosync/corosync.conf"
AUTHKEY = "/etc/corosync/authkey"


@dataclass(frozen=True)
class NodeFacts:
    node: str
    conf_sha256: str | None  # None: no file
    conf_text: str | None
    has_authkey: bool
    corosync_active: bool
    corosync_enabled: bool
    pacemaker_active: bool
    pacemaker_enabled: bool


@dataclass(frozen=True)
class CorosyncFacts:
    nodes: dict[str, NodeFacts]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "node": f.node,
                    "corosync.conf sha256": (f.conf_sha256 or "missing")[:12],
                    "authkey": "present" if f.has_authkey else "MISSING",
                    "corosync": f"{'active' if f.corosync_active else 'inactive'}, {'enabled' if f.corosync_enabled else 'disabled'}",
                    "pacemaker": f"{'active' if f.pacemaker_active else 'inactive'}, {'enabled' if f.pacemaker_enabled else 'disabled'}",
                }
                for f in self.nodes.values()
            ]
        )

    def _repr_html_(self) -> str:
        return "<h4>Current state</h4>" + self.to_frame().to_html(index=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def desired_conf(params: Params, profile: Profile | None = None) -> str:
    return render_corosync_conf(params, profile or get_profile(params.cluster.profile))


class RenderedConf(str):
    """The rendered corosync.conf, shown as a file in notebooks."""

    def _repr_html_(self) -> str:
        return f"<h4>{CONF} (rendered)</h4><pre>{html.escape(str(self))}</pre>"


def rendered(params: Params, profile_name: str | None = None) -> RenderedConf:
    return RenderedConf(desired_conf(params, get_profile(profile_name) if profile_name else None))


def gather(hosts: dict[str, Host], params: Params) -> CorosyncFacts:
    """Read-only: current corosync.conf, authkey presence, and service states on every node."""
    out = {}
    for n in params.nodes:
        h = hosts[n.name]
        text = h.read_text(CONF)
        states = h.run(
            "for u in corosync pacemaker; do systemctl is-active $u; systemctl is-enabled $u; done; "
            f"test -s {AUTHKEY} && echo key || echo nokey",
            check=False,
        ).stdout.split()
        out[n.name] = NodeFacts(
            node=n.name,
            conf_sha256=_sha(text) if text is not None else None,
            conf_text=text,
            has_authkey=states[-1:] == ["key"],
            corosync_active=states[0:1] == ["active"],
            corosync_enabled=states[1:2] == ["enabled"],
            pacemaker_active=states[2:3] == ["active"],
            pacemaker_enabled=states[3:4] == ["enabled"],
        )
    return CorosyncFacts(out)


def plan(params: Params, facts: CorosyncFacts, profile_name: str | None = None) -> Plan:
    """Pure: what must change so every node runs the rendered config with both services up."""
    profile = get_profile(profile_name or params.cluster.profile)
    want = desired_conf(params, profile)
    want_sha = _sha(want)
    p = Plan(STAGE)
    p.notes.append(f"timing profile {profile.name!r}: {profile.summary}")
    missing_key = [f.node for f in facts.nodes.values() if not f.has_authkey]
    if missing_key:
        for node in missing_key:
            p.not_applicable[node] = f"no {AUTHKEY}: run 02_authkey first; nothing will be changed"
        p.notes.append("blocked: corosync cannot start without the shared authkey on every node")
        return p
    conf_changes = False
    for f in facts.nodes.values():
        if f.conf_sha256 != want_sha:
            conf_changes = True
            why = "no config yet" if f.conf_text is None else "content differs: " + _diffstat(f.conf_text, want)
            p.changes.append(Change(f.node, f"write {CONF}", why))
    for f in facts.nodes.values():
        if conf_changes and (f.corosync_active or f.pacemaker_active):
            p.changes.append(Change(f.node, "restart corosync and pacemaker", "the config changed; all nodes restart together"))
        elif not f.corosync_active or not f.pacemaker_active:
            p.changes.append(Change(f.node, "start corosync, then pacemaker", "not running"))
        if not f.corosync_enabled or not f.pacemaker_enabled:
            p.changes.append(Change(f.node, "enable corosync and pacemaker at boot", "disabled now"))
        if not p.for_node(f.node):
            p.no_change[f.node] = f"config identical (sha256 {want_sha[:12]}), both services active and enabled"
    return p


def _diffstat(old: str, new: str) -> str:
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    plus = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    minus = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    return f"+{plus} -{minus} lines"


def diff(params: Params, facts: CorosyncFacts, node: str) -> str:
    """Unified diff between a node's current config and the rendered one (for the notebook)."""
    cur = facts.nodes[node].conf_text or ""
    return "\n".join(
        difflib.unified_diff(cur.splitlines(), desired_conf(params).splitlines(), f"{node}:{CONF}", "rendered", lineterm="")
    )


def apply(
    hosts: dict[str, Host], params: Params, plan_: Plan, dry_run: bool = True, profile_name: str | None = None
) -> StageResult:
    """Validate everywhere first, then write, then restart in a safe order. Nothing changes if validation fails."""
    res = StageResult(STAGE, dry_run=dry_run)
    if plan_.not_applicable:
        raise RuntimeError(
            "stage blocked before any change: "
            + "; ".join(f"{n}: {why}" for n, why in plan_.not_applicable.items())
        )
    if dry_run:
        for n in params.nodes:
            acts = [c.action for c in plan_.for_node(n.name)]
            res.add(n.name, "not applied" if acts else "unchanged", f"dry run; would: {', '.join(acts)}" if acts else "")
        return res
    want = desired_conf(params, get_profile(profile_name) if profile_name else None).encode()
    writes = [c.node for c in plan_.changes if c.action.startswith("write")]
    # 1. Validate the new file on every node that gets it, before touching the live config.
    staged = f"{CONF}.hakit-new"
    try:
        for node in writes:
            hosts[node].write_bytes(staged, want, mode=0o644)
            hosts[node].run(["corosync", "-t", "-c", staged], hint="corosync rejected the rendered config; nothing was changed")
    except RemoteError:
        for node in writes:
            hosts[node].run(["rm", "-f", staged], check=False)
        raise
    # 2. Install it (keeping the previous file) where it differs.
    for node in writes:
        hosts[node].run(f"if [ -f {CONF} ]; then cp -p {CONF} {CONF}.hakit-prev; fi; mv -f {staged} {CONF}")
    # 3. Services: a changed config means a cluster-wide restart; pacemaker stops first, starts last.
    restart = any(c.action.startswith("restart") for c in plan_.changes)
    start = [c.node for c in plan_.changes if c.action.startswith(("start", "restart"))]
    if restart:
        for n in params.nodes:
            hosts[n.name].run("systemctl stop pacemaker; systemctl stop corosync", timeout=180)
        start = [n.name for n in params.nodes]
    for node in start:
        hosts[node].run("systemctl start corosync", timeout=120)
    for node in start:
        hosts[node].run("systemctl start pacemaker", timeout=120)
    for c in plan_.changes:
        if c.action.startswith("enable"):
            hosts[c.node].run("systemctl enable corosync pacemaker")
    for n in params.nodes:
        acts = [c.action for c in plan_.for_node(n.name)]
        if restart and not acts:
            acts = ["restart corosync and pacemaker (cluster-wide)"]
        res.add(n.name, "changed" if acts else "unchanged", "; ".join(acts))
    return res


def pacemaker_nodes(xml_text: str) -> dict[str, bool]:
    """Node name -> online, from `crm_mon --output-as=xml`."""
    root = ET.fromstring(xml_text)
    # Only <nodes><node>: resources list their hosts as <node name=... cached=...> with no `online`.
    return {n.get("name", "?"): n.get("online") == "true" for n in root.findall("./nodes/node") if n.get("name")}


def verify(hosts: dict[str, Host], params: Params, wait_s: float = 60) -> Verification:
    """Read-only: both links connected to every peer, quorate with all members, pacemaker sees all online.

    Links, quorum and pacemaker's view settle within seconds of a start; poll up to wait_s.
    """
    deadline = time.monotonic() + wait_s
    while True:
        v = _verify_once(hosts, params)
        if v.ok or time.monotonic() > deadline:
            return v
        time.sleep(1)


def _verify_once(hosts: dict[str, Host], params: Params) -> Verification:
    v = Verification(STAGE)
    names = [n.name for n in params.nodes]
    ids = {n.nodeid for n in params.nodes}
    for n in params.nodes:
        h = hosts[n.name]
        active = h.run("systemctl is-active corosync pacemaker", check=False).stdout.split()
        v.add(n.name, "corosync and pacemaker active", active == ["active", "active"], " / ".join(active))
        try:
            links = parse_cfgtool_status(h.run("corosync-cfgtool -s", check=False).stdout)
            for link_id in (0, 1):
                ln = links.link(link_id)
                peers = ids - {n.nodeid}
                bad = sorted(p for p in peers if not ln.peer(p).is_connected)
                v.add(n.name, f"link {link_id} ({'private' if link_id == 0 else 'public'}) to all peers", not bad,
                      f"{ln.addr}; " + ("all connected" if not bad else f"not connected to node(s) {bad}"))
        except (FactParseError, KeyError, LookupError) as e:
            v.add(n.name, "knet links", False, f"corosync-cfgtool -s unreadable: {e}")
        try:
            q = parse_quorumtool_status(h.run("corosync-quorumtool -s", check=False).stdout)
            members = set(q.member_names())
            v.add(n.name, "quorate with every node a member", q.quorate and len(q.members) == len(names),
                  f"quorate={q.quorate}, members={len(q.members)}/{len(names)} ({', '.join(sorted(members))})")
        except FactParseError as e:
            v.add(n.name, "quorum", False, f"corosync-quorumtool -s unreadable: {e}")
        r = h.run("crm_mon -1 --output-as=xml", check=False)
        try:
            online = pacemaker_nodes(r.stdout)
            missing = [x for x in names if not online.get(x)]
            v.add(n.name, "pacemaker sees all nodes online", not missing,
                  "all online" if not missing else f"not online: {', '.join(missing)}")
        except ET.ParseError:
            v.add(n.name, "pacemaker sees all nodes online", False, (r.stderr or r.stdout).strip()[-200:] or "no output")
    return v


def option_mapping() -> pd.DataFrame:
    """The article's corosync 1.x options and what corosync 3 (Debian 12) uses instead."""
    rows = [
        ("aisexec { user, group }", "(gone)", "corosync 3 runs as root; no plugin executive to configure"),
        ("service { name: pacemaker; ver: 0 }", "(gone): pacemaker.service", "pacemaker is no longer a corosync plugin; it is its own daemon and systemd unit, started after corosync"),
        ("amf { mode: disabled }", "(gone)", "the AMF service was removed from corosync"),
        ("totem { rrp_mode: passive }", "totem { link_mode: passive }", "knet replaces the redundant ring protocol; passive uses one link at a time, by priority"),
        ("interface { ringnumber: 0; bindnetaddr; mcastaddr; mcastport }", "nodelist { node { ring0_addr; ring1_addr } } + interface { linknumber }", "knet talks unicast to every node address; no multicast group or bind network"),
        ("totem { secauth: on }", "totem { crypto_cipher: aes256; crypto_hash: sha256 }", "encryption and authentication are chosen explicitly; the key is still /etc/corosync/authkey"),
        ("totem { threads: N }", "(gone)", "encryption worker threads were removed; knet handles its own threads"),
        ("totem { transport: udp (multicast) }", "totem { transport: knet }", "knet: several links per node, link monitoring, failover between them"),
        ("quorum: (pacemaker no-quorum-policy=ignore on two nodes)", "quorum { provider: corosync_votequorum; two_node: 1 }", "votequorum keeps a lone survivor of a 2-node cluster quorate (and adds wait_for_all)"),
        ("token, consensus, join, max_messages, token_retransmits_before_loss_const", "same names", "same meaning; corosync 3 adds token_coefficient per node beyond two (we pin it to 0)"),
    ]
    return pd.DataFrame(rows, columns=["corosync 1.x (the article)", "corosync 3 (this runbook)", "why"])
