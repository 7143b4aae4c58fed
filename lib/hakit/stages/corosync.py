"""Stage 3: corosync rings. Render corosync.conf, validate it on every node, push it only
where it differs, (re)start corosync then pacemaker in a safe order, enable both at boot,
and verify both knet links, quorum and pacemaker membership.

On a cold start (pacemaker never ran on a node and runs on none), each such node's CIB is
seeded with the profile's dc-deadtime before pacemaker's first start: stage 4 owns that
property, but without it the first DC election waits pacemaker's default 20 s.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from ..facts.base import Fact, read
from ..facts.corosync import CFGTOOL, CFGTOOL_STATUS, QUORUM_STATUS, QUORUMTOOL, parse_conf
from ..facts.errors import FactParseError
from ..facts.pacemaker import CRM_MON
from ..facts.systemd import state_of, unit_states
from ..ops import CLUSTER, ApplyContext, Barrier, Command, Op, OperationError, Systemctl, WriteFile
from ..params import Params
from ..paths import AUTHKEY, CIB_DIR, CIB_XML, COROSYNC_CONF
from ..profiles import Profile, get_profile
from ..render.cib import DC_DEADTIME
from ..render.corosync import render_corosync_conf
from ..runner import Runner
from .base import Check, Plan, Verification
from .driver import per_node

STAGE = "03 corosync rings"
CONF = COROSYNC_CONF


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
    runtime: Mapping[str, str] = field(default_factory=dict)  # totem timing corosync runs with now (if active)
    cib_dir: tuple[str, ...] | None = None  # what pacemaker's CIB directory holds (None: no directory)

    @property
    def pacemaker_never_ran(self) -> bool:
        """Pacemaker's CIB directory exists and is empty: no CIB, no backup of one."""
        return self.cib_dir == ()


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
                    "pacemaker CIB": _cib_dir_text(f.cib_dir),
                }
                for f in self.nodes.values()
            ]
        )

    def _repr_html_(self) -> str:
        return "<h4>Current state</h4>" + self.to_frame().to_html(index=False)


def _cib_dir_text(entries: tuple[str, ...] | None) -> str:
    if entries is None:
        return f"no {CIB_DIR}"
    if not entries:
        return "none yet (pacemaker never ran)"
    return "cib.xml" if "cib.xml" in entries else f"no cib.xml ({len(entries)} other file(s))"


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


UNITS = ("corosync", "pacemaker")
SERVICES = unit_states(*UNITS)
HAS_AUTHKEY = Fact("authkey present", f"test -s {AUTHKEY} && echo key || echo nokey", lambda out: out.split() == ["key"])
STAGED = f"{CONF}.hakit-new"
# A full restart of the 2-node lab cluster, corosync stop to the service answering again (see README).
RESTART_OUTAGE_S = 30
PREV = f"{CONF}.hakit-prev"


# Options corosync applies at runtime on `corosync-cfgtool -R` (every node reloads its file); each is
# checked after the reload in `runtime.config.totem.<key>` (seen on the lab's corosync 3.1).
RUNTIME_TOTEM = ("token", "consensus", "join", "max_messages", "token_retransmits_before_loss_const")
RUNTIME_PREFIXES = ("logging.",)  # logging options reload too and need no agreement
# A node added to or removed from the nodelist, and the quorum settings that follow the node count
# (`two_node`), reload too (corosync 3 with knet; seen on the lab's corosync 3.1.9: after one
# `corosync-cfgtool -R`, 2 -> 3 nodes gave runtime.votequorum.two_node 0 and expected votes 3,
# 3 -> 2 gave two_node 1 and expected votes 2, the running nodes quorate throughout).
# A changed address or id of a node that stays is not in this class (see `nodelist_delta`).
MEMBERSHIP_PREFIXES = ("nodelist.node[",)
MEMBERSHIP_KEYS = ("quorum.two_node",)


@dataclass(frozen=True)
class ConfChange:
    key: str
    old: str | None
    new: str | None

    @property
    def runtime(self) -> bool:
        return self.key in {f"totem.{k}" for k in RUNTIME_TOTEM} or self.key.startswith(RUNTIME_PREFIXES) or (
            self.membership)

    @property
    def membership(self) -> bool:
        """A key of the nodelist or of the quorum settings that follow the node count."""
        return self.key.startswith(MEMBERSHIP_PREFIXES) or self.key in MEMBERSHIP_KEYS

    def __str__(self) -> str:
        return f"{self.key} {self.old if self.old is not None else '(unset)'} -> {self.new if self.new is not None else '(unset)'}"


def conf_changes(old_text: str, new_text: str) -> list[ConfChange]:
    """Pure: the options that differ between two corosync.conf texts, key by key (comments ignored)."""
    old, new = parse_conf(old_text), parse_conf(new_text)
    return [ConfChange(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def nodelist_names(text: str) -> dict[str, str]:
    """Pure: nodeid -> name of every node in a corosync.conf's nodelist."""
    conf = parse_conf(text)
    return {k.split("[", 1)[1].split("]", 1)[0]: v for k, v in conf.items()
            if k.startswith("nodelist.node[") and k.endswith("].name")}


@dataclass(frozen=True)
class NodelistDelta:
    added: tuple[str, ...]  # node names in the new nodelist only
    removed: tuple[str, ...]  # node names in the old nodelist only
    altered: tuple[str, ...]  # nodes in both whose entry differs (an address or name changed: not a reload)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.altered)


def nodelist_delta(old_text: str, new_text: str) -> NodelistDelta:
    """Pure: which nodes a new corosync.conf adds to or removes from the nodelist, and which it alters.

    Entries are matched by nodeid (the renderer keys them so): a node added or removed reloads
    at runtime; a node that stays but whose entry changes needs a restart."""
    old, new = parse_conf(old_text), parse_conf(new_text)
    old_ids, new_ids = nodelist_names(old_text), nodelist_names(new_text)

    def entry(conf: dict[str, str], nid: str) -> dict[str, str]:
        return {k: v for k, v in conf.items() if k.startswith(f"nodelist.node[{nid}].")}

    return NodelistDelta(
        added=tuple(new_ids[i] for i in new_ids if i not in old_ids),
        removed=tuple(old_ids[i] for i in old_ids if i not in new_ids),
        altered=tuple(new_ids[i] for i in new_ids if i in old_ids and entry(old, i) != entry(new, i)))


def _changes(old_text: str, new_text: str) -> list[ConfChange]:
    try:
        return conf_changes(old_text, new_text)
    except FactParseError:  # a live file corosync itself may not read: only a restart is certain
        return [ConfChange("(the live file, which does not parse as corosync.conf)", None, None)]


@dataclass(frozen=True, kw_only=True)
class ExpectRuntime(Op):
    """Read-only: corosync runs with this totem value now (``corosync-cmapctl -g runtime.config.totem.<key>``)."""

    key: str
    value: str
    mutates: ClassVar[bool] = False

    def describe(self) -> str:
        return f"check runtime.config.totem.{self.key} = {self.value}"

    def execute(self, ctx: ApplyContext) -> str:
        out = ctx.host(self.node).run(["corosync-cmapctl", "-g", f"runtime.config.totem.{self.key}"]).stdout
        got = out.rsplit("=", 1)[-1].strip()
        if got != self.value:
            raise OperationError(f"{self.node}: after the reload corosync runs with totem.{self.key} = {got}, "
                                 f"not {self.value}; the files are installed: run `corosync-cfgtool -R` again "
                                 "or restart corosync on every node together")
        return f"totem.{self.key} = {got} at runtime"


def parse_runtime(out: str) -> dict[str, str]:
    """Pure: ``corosync-cmapctl runtime.config.totem.`` -> the `RUNTIME_TOTEM` values, e.g. {"token": "1000"}."""
    got = {}
    for line in out.splitlines():
        key, sep, value = line.partition(" = ")
        name = key.split(" ", 1)[0].removeprefix("runtime.config.totem.")
        if sep and name in RUNTIME_TOTEM:
            got[name] = value.strip()
    return got


RUNTIME = Fact("corosync runtime timing", "corosync-cmapctl runtime.config.totem.", parse_runtime)


def parse_cib_dir(out: str) -> tuple[str, ...] | None:
    """Pure: the `CIB_FILES` output -> the directory's entries, () when empty, None without the directory."""
    lines = out.splitlines()
    if lines[:1] == ["nodir"]:
        return None
    if lines[:1] != ["dir"]:
        raise FactParseError(CIB_DIR, "expected 'dir' or 'nodir' first", line=out[:160])
    return tuple(sorted(ln for ln in lines[1:] if ln))


CIB_FILES = Fact("pacemaker's CIB directory", f"if test -d {CIB_DIR}; then echo dir; ls -A {CIB_DIR}; else echo nodir; fi",
                 parse_cib_dir)


def seed_ops(node: str, properties: Mapping[str, str]) -> list[Op]:
    """A CIB holding only ``properties`` (crm_config), made where pacemaker never ran, before its first start.

    ``cibadmin --empty`` writes the empty CIB of the node's own pacemaker (its schema version);
    ``set -C`` refuses to write over a file, so an existing CIB is never touched. Each value goes
    in with ``CIB_file`` naming the live path, which writes cib.xml.sig beside it as pacemaker does.
    """
    ops: list[Op] = [Command(
        node=node, argv=(f'test -z "$(ls -A {CIB_DIR})" && (umask 077 && set -C && cibadmin --empty > {CIB_XML}) '
                         f"&& chown hacluster:haclient {CIB_XML}"),
        label=f"seed {CIB_XML}: an empty CIB",
        hint=f"{CIB_DIR} was not empty (pacemaker ran here since the plan?) or cibadmin failed; plan again",
        reason="pacemaker never ran here: its first CIB is made now, by its own cibadmin")]
    for name, value in properties.items():
        ops.append(Command(
            node=node, argv=("env", f"CIB_file={CIB_XML}", "crm_attribute", "--type", "crm_config", "--name", name,
                             "--update", value),
            label=f"seed {CIB_XML}: {name}={value}",
            reason=f"stage 4 owns {name}; set before the first start, it governs the first DC election too"))
    return ops


def stale_runtime(f: NodeFacts, conf_text: str) -> list[ConfChange]:
    """Pure: the timing options ``conf_text`` sets that corosync on this node does not run with now
    (a reload that failed or never ran): old = the runtime value, new = the file's."""
    want = parse_conf(conf_text)
    return [ConfChange(f"totem.{k}", f.runtime[k], want[f"totem.{k}"]) for k in RUNTIME_TOTEM
            if f.corosync_active and k in f.runtime and f"totem.{k}" in want and f.runtime[k] != want[f"totem.{k}"]]


def _gather_node(h: Runner) -> NodeFacts:
    text = h.read_text(CONF)
    units = read(h, SERVICES)
    co, pm = state_of(units, "corosync"), state_of(units, "pacemaker")
    return NodeFacts(
        node=h.name,
        conf_sha256=_sha(text) if text is not None else None,
        conf_text=text,
        has_authkey=read(h, HAS_AUTHKEY),
        corosync_active=co.is_active,
        corosync_enabled=co.is_enabled,
        pacemaker_active=pm.is_active,
        pacemaker_enabled=pm.is_enabled,
        runtime=read(h, RUNTIME) if co.is_active else {},
        cib_dir=read(h, CIB_FILES),
    )


def gather(hosts: Mapping[str, Runner], params: Params) -> CorosyncFacts:
    """Read-only: current corosync.conf, authkey presence, service states and whether pacemaker ever ran,
    on every node (in parallel)."""
    return CorosyncFacts(per_node(hosts, [n.name for n in params.nodes], _gather_node))


def plan(params: Params, facts: CorosyncFacts, profile_name: str | None = None, allow_restart: bool = False,
         removing: tuple[str, ...] = ()) -> Plan:
    """Pure: the operations that make every node run the rendered config with both services up.

    Order: stage and check the new file on every node that gets it (``corosync -t``), a barrier,
    install it (keeping the previous one). Under a running cluster the change is classed by
    what corosync allows: options it applies at runtime get one ``corosync-cfgtool -R`` and a
    check of the runtime values (no outage); anything else needs every node restarted together
    (nodes with different ring or crypto settings cannot talk), which is refused unless
    ``allow_restart``. Then corosync starts everywhere before pacemaker anywhere, and both are
    enabled at boot. On a cold start (pacemaker runs on no node), each node where it never ran
    first gets a CIB seeded with the profile's dc-deadtime (`seed_ops`).

    A node added to the params joins a running cluster without an outage (class: nodelist
    change): the running nodes reload the new nodelist, then corosync and pacemaker start on
    the new node only. A node in the live nodelist but not in the params is never dropped
    silently: the stage is blocked unless it is named in ``removing`` (`hakit.membership`
    drains and stops it first).
    """
    profile = get_profile(profile_name or params.cluster.profile)
    want = desired_conf(params, profile)
    want_sha = _sha(want)
    names = [n.name for n in params.nodes]
    p = Plan(STAGE, order=names)
    p.notes.append(f"timing profile {profile.name!r}: {profile.summary}")
    missing_key = [f.node for f in facts.nodes.values() if not f.has_authkey]
    if missing_key:
        for node in missing_key:
            p.blocked[node] = f"no {AUTHKEY}: run 02_authkey first; nothing will be changed"
        p.notes.append("blocked: corosync cannot start without the shared authkey on every node")
        return p
    nodes = [facts.nodes[n] for n in names]
    running = [f for f in nodes if f.corosync_active or f.pacemaker_active]
    leaving = sorted(set(_live_nodelist(running)) - set(names) - set(removing))
    if leaving:
        p.blocked[CLUSTER] = (
            f"{', '.join(leaving)} {'is' if len(leaving) == 1 else 'are'} in the nodelist the cluster runs with, but "
            "not in the params; this stage never drops a node by itself. To remove a node, run "
            f"`hakit node remove {leaving[0]} --params <the params that still list it>` (it drains the node, stops it "
            "and takes it out of the CIB and the nodelist); if the params lost it by mistake, put it back. "
            "Nothing was changed")
        p.notes.append("blocked: a running node would leave the nodelist")
        return p
    writes = [f for f in nodes if f.conf_sha256 != want_sha]
    data = want.encode()
    for f in writes:
        why = "no config yet" if f.conf_text is None else "content differs: " + _diffstat(f.conf_text, want)
        p.ops.append(WriteFile(node=f.node, path=STAGED, content=data, label=f"write {CONF}", reason=why))
        p.ops.append(Command(node=f.node, argv=("corosync", "-t", "-c", STAGED), read_only=True,
                             hint="corosync rejected the rendered config; the live file was not touched",
                             reason="corosync checks the new file before the live one is replaced"))
        p.undo.append(Command(node=f.node, argv=("rm", "-f", STAGED), reason="remove the staged file"))
    if writes:
        p.ops.append(Barrier(text="`corosync -t` accepted the new file on every node that gets it"))
        for f in writes:
            p.ops.append(Command(
                node=f.node, argv=f"{{ [ ! -f {CONF} ] || cp -p {CONF} {PREV}; }} && mv -f {STAGED} {CONF}",
                label=f"install {CONF}", reason=f"the checked file replaces the live one (previous kept as {PREV})"))
    # Only the nodes that run decide the class: a stopped node starts with the new file anyway.
    live_writes = [f for f in writes if f in running]
    changes = {f.node: _changes(f.conf_text, want) for f in live_writes if f.conf_text is not None}
    delta = _delta(running, want)
    # A node whose file is already the wanted one but whose corosync still runs other timing
    # (an earlier run installed the file, then its reload failed): one reload puts it right.
    stale = {f.node: cs for f in nodes if f not in writes and (cs := stale_runtime(f, want))}
    reload = bool(running) and (bool(live_writes) or bool(stale)) and len(changes) == len(live_writes) and all(
        c.runtime for cs in changes.values() for c in cs) and not delta.altered
    restart = bool(live_writes) and not reload
    if reload:
        keys = sorted({c.key for cs in (*changes.values(), *stale.values()) for c in cs})
        if live_writes:
            first = changes[live_writes[0].node]
            other = [c for c in first if not c.membership]
            if delta:
                p.notes.append(_membership_note(delta, first, running, nodes))
            if other or not delta:
                what = "; ".join(str(c) for c in other)
                p.notes.append(f"class: runtime change, no outage ({what}): every node reloads the file on one "
                               "`corosync-cfgtool -R`")
            p.ops.append(Barrier(text="the new file is installed on every node"))
        if stale:
            behind = "; ".join(f"{n}: {', '.join(str(c) for c in cs)}" for n, cs in stale.items())
            p.notes.append(f"corosync runs older timing than its file ({behind}; runtime -> file): an earlier "
                           "reload failed or never ran. One `corosync-cfgtool -R` applies the file, no outage")
        why = (f"{', '.join(keys)} change at runtime; corosync reloads on every node at once" if writes else
               f"the installed file sets {', '.join(keys)}, which corosync does not run with yet")
        p.ops.append(Command(node=running[0].node, argv=("corosync-cfgtool", "-R"),
                             label="reload corosync.conf on every node (corosync-cfgtool -R)", reason=why))
        p.ops.append(Barrier(text="every node reloaded"))
        for f in running:
            for k in RUNTIME_TOTEM:
                if f"totem.{k}" in keys:
                    p.ops.append(ExpectRuntime(node=f.node, key=k, value=parse_conf(want)[f"totem.{k}"],
                                               reason="the reload took effect"))
            if any(k.startswith(MEMBERSHIP_PREFIXES) or k in MEMBERSHIP_KEYS for k in keys):
                p.ops.append(ExpectMembership(node=f.node, names=tuple(names),
                                              two_node="quorum.two_node" in parse_conf(want),
                                              reason="the reload took effect: corosync runs the new nodelist"))
    if restart:
        why_keys = sorted({c.key for cs in changes.values() for c in cs if not c.runtime}) or ["(a node has no file)"]
        message = (f"this change stops the service for about {RESTART_OUTAGE_S} s: corosync and pacemaker stop on "
                   f"every node and start again, because {', '.join(why_keys)} cannot change at runtime and "
                   "every node must agree")
        if not allow_restart:
            p.blocked[CLUSTER] = message + ". Nothing was changed; run with allow_restart=True to accept the outage"
            p.notes.append("class: full restart (refused without allow_restart)")
            p.ops.clear()
            p.undo.clear()
            return p
        p.notes.append(f"class: full restart, allowed: {message}")
        p.ops.append(Barrier(text="the new config is installed on every node"))
        why = "the config changed while the cluster runs: all nodes restart together"
        for f in nodes:
            p.ops.append(Systemctl(node=f.node, verb="stop", units=("pacemaker",), timeout=180, reason=why))
        p.ops.append(Barrier(text="pacemaker stopped on every node (its resources too) before any corosync stops"))
        for f in nodes:
            p.ops.append(Systemctl(node=f.node, verb="stop", units=("corosync",), timeout=180, reason=why))
        p.ops.append(Barrier(text="pacemaker and corosync stopped on every node"))
        start = nodes
    else:
        start = [f for f in nodes if not (f.corosync_active and f.pacemaker_active)]
    installed = {f.node: f.conf_text is not None for f in writes}  # node -> a previous file was kept
    _plan_seeds(p, profile, nodes, start)
    for f in start:
        p.ops.append(Systemctl(node=f.node, verb="start", units=("corosync",), timeout=120,
                               hint=start_hint("corosync", f.node, installed.get(f.node)),
                               reason="restart with the new config" if restart else "not running"))
    if start:
        p.ops.append(Barrier(text="corosync started on every node that starts"))
    if any(f.pacemaker_active for f in nodes):
        for f in [f for f in start if f.node in delta.added or f.pacemaker_never_ran]:  # new to a running cluster
            p.ops.append(Command(
                node=f.node, argv=STOP_APACHE, label="stop and disable apache2.service (if installed)",
                reason="the node joins a running cluster: pacemaker's first probe there must not find an Apache "
                       "started at boot, or it sees httpd active twice and restarts it where it serves"))
    for f in start:
        p.ops.append(Systemctl(node=f.node, verb="start", units=("pacemaker",), timeout=120,
                               hint=start_hint("pacemaker", f.node, installed.get(f.node)),
                               reason="pacemaker needs corosync's membership, so it starts second"))
    for f in nodes:
        if not f.corosync_enabled or not f.pacemaker_enabled:
            p.ops.append(Systemctl(node=f.node, verb="enable", units=UNITS, reason="disabled now"))
    for f in nodes:
        if not p.ops_for(f.node):
            p.no_change[f.node] = f"config identical (sha256 {want_sha[:12]}), both services active and enabled"
    return p


STOP_APACHE = ("if systemctl cat apache2.service >/dev/null 2>&1; then systemctl disable --now --quiet apache2.service; "
               "fi")


def _live_nodelist(running: list[NodeFacts]) -> list[str]:
    """The node names in the nodelist files of the nodes that run (a file that does not parse: none)."""
    out: list[str] = []
    for f in running:
        try:
            out += [n for n in nodelist_names(f.conf_text or "").values() if n not in out]
        except FactParseError:
            pass
    return out


def _delta(running: list[NodeFacts], want: str) -> NodelistDelta:
    """The nodelist change from what the running nodes have (the first that parses) to ``want``."""
    for f in running:
        if f.conf_text is None:
            continue
        try:
            return nodelist_delta(f.conf_text, want)
        except FactParseError:
            continue
    return NodelistDelta((), (), ())


def _membership_note(delta: NodelistDelta, changes: list[ConfChange], running: list[NodeFacts],
                     nodes: list[NodeFacts]) -> str:
    parts = []
    if delta.added:
        parts.append(f"{', '.join(delta.added)} join{'s' if len(delta.added) == 1 else ''} the nodelist")
    if delta.removed:
        parts.append(f"{', '.join(delta.removed)} leave{'s' if len(delta.removed) == 1 else ''} the nodelist")
    quorum = [str(c) for c in changes if c.key in MEMBERSHIP_KEYS]
    count = len(nodes)
    votes = (f"{count} votes, quorum {count // 2 + 1}" if count != 2 else
             "two_node: the survivor of the two keeps quorum alone")
    new = [f.node for f in nodes if f not in running]
    then = (f"; then corosync and pacemaker start on {', '.join(new)} only" if new else "")
    return (f"class: nodelist change, no outage ({'; '.join(parts)}{'; ' + '; '.join(quorum) if quorum else ''}; "
            f"votequorum counts {votes}): the running nodes ({', '.join(f.node for f in running)}) reload the file "
            f"on one `corosync-cfgtool -R`{then}; nothing restarts on the nodes that run")


@dataclass(frozen=True, kw_only=True)
class ExpectMembership(Op):
    """Read-only: corosync on this node runs with exactly these nodelist names and this two_node."""

    names: tuple[str, ...]
    two_node: bool
    mutates: ClassVar[bool] = False

    def describe(self) -> str:
        return f"check the runtime nodelist = {', '.join(self.names)}, runtime.votequorum.two_node = {int(self.two_node)}"

    def execute(self, ctx: ApplyContext) -> str:
        h = ctx.host(self.node)
        got = parse_runtime_nodelist(h.run(["corosync-cmapctl", "nodelist.node."]).stdout)
        tn = h.run(["corosync-cmapctl", "-g", "runtime.votequorum.two_node"]).stdout.rsplit("=", 1)[-1].strip()
        if sorted(got) != sorted(self.names) or tn != str(int(self.two_node)):
            raise OperationError(f"{self.node}: after the reload corosync runs the nodelist {', '.join(got) or '(none)'} "
                                 f"with two_node {tn}, not {', '.join(self.names)} with two_node {int(self.two_node)}; "
                                 "the files are installed: run `corosync-cfgtool -R` again")
        return f"nodelist {', '.join(got)}, two_node {tn} at runtime"


def parse_runtime_nodelist(out: str) -> list[str]:
    """Pure: ``corosync-cmapctl nodelist.node.`` -> the node names, in cmap order."""
    names = []
    for line in out.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key.split(" ", 1)[0].endswith(".name"):
            names.append(value.strip())
    return names


def start_hint(unit: str, node: str, kept_prev: bool | None) -> str:
    """What to do when ``unit`` does not start on ``node`` (the failed stage's message ends with it).
    ``kept_prev``: None when this run installed no file there, else whether the old one was kept."""
    conf = "" if kept_prev is None else f" with the new {CONF} installed" + (
        f" (the previous one kept as {PREV})" if kept_prev else " (there was none before)")
    return (f"{unit} did not start on {node}{conf}: `journalctl -u {unit}` on {node} says why. Fix that and run "
            "this stage again: it starts what is not running")


def _plan_seeds(p: Plan, profile: Profile, nodes: list[NodeFacts], start: list[NodeFacts]) -> None:
    """Append the CIB seeds for a cold start (and their barrier) to ``p``, or a note saying why none."""
    fresh = [f.node for f in start if f.pacemaker_never_ran]
    if not fresh:
        return
    value = profile.dc_deadtime_value
    if value is None:
        p.notes.append(f"pacemaker never ran on {', '.join(fresh)}: profile {profile.name!r} keeps pacemaker's default "
                       "dc-deadtime (20 s), so the first DC election comes about 20 s after pacemaker starts")
        return
    if any(f.pacemaker_active for f in nodes):
        p.notes.append(f"pacemaker never ran on {', '.join(fresh)}, but it runs on another node: a node that joins "
                       "gets the cluster's CIB from its DC, so nothing is seeded")
        return
    p.notes.append(f"cold start: pacemaker never ran on {', '.join(fresh)}; each gets a CIB holding only "
                   f"dc-deadtime={value} before its first start (stage 4 keeps it), so the first DC election "
                   "comes after that, not after pacemaker's default 20 s")
    for node in fresh:
        p.ops += seed_ops(node, {DC_DEADTIME: value})
    p.ops.append(Barrier(text="the CIB is seeded on every node where pacemaker never ran"))


class CorosyncStage:
    """Stage 3 with its params and timing profile bound (see `stages.driver.Stage`)."""

    name = STAGE

    def __init__(self, params: Params, profile: str | None = None, wait_s: float = 60, allow_restart: bool = False,
                 removing: tuple[str, ...] = ()):
        self.params = params
        self.profile = get_profile(profile or params.cluster.profile)
        self.wait_s = wait_s
        self.allow_restart = allow_restart
        self.removing = removing

    def gather(self, hosts: Mapping[str, Runner]) -> CorosyncFacts:
        return gather(hosts, self.params)

    def plan(self, facts: CorosyncFacts) -> Plan:
        return plan(self.params, facts, self.profile.name, allow_restart=self.allow_restart, removing=self.removing)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params, wait_s=self.wait_s if wait else 0)

    def rendered(self) -> "RenderedConf":
        return RenderedConf(desired_conf(self.params, self.profile))

    def artifacts(self) -> dict[str, object]:
        return {"corosync.conf": self.rendered()}


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


def verify(hosts: Mapping[str, Runner], params: Params, wait_s: float = 60) -> Verification:
    """Read-only: both links connected to every peer, quorate with all members, pacemaker sees all online.

    Links, quorum and pacemaker's view settle within seconds of a start; poll up to wait_s.
    """
    deadline = time.monotonic() + wait_s
    while True:
        v = Verification(STAGE)
        for checks in per_node(hosts, [n.name for n in params.nodes], lambda h: _verify_node(h, params)).values():
            v.checks += checks
        if v.ok or time.monotonic() > deadline:
            return v
        time.sleep(1)


def _verify_node(h: Runner, params: Params) -> list[Check]:
    out: list[Check] = []
    node = params.node(h.name)
    names = [n.name for n in params.nodes]
    ids = {n.nodeid for n in params.nodes}
    units = read(h, SERVICES)
    active = [state_of(units, u).active for u in UNITS]
    out.append(Check(h.name, "corosync and pacemaker active", active == ["active", "active"], " / ".join(active)))
    text = h.read_text(CONF) if active[0] == "active" else None
    runtime = read(h, RUNTIME) if text is not None else {}
    if runtime:
        f = NodeFacts(node=h.name, conf_sha256=None, conf_text=text, has_authkey=True, corosync_active=True,
                      corosync_enabled=True, pacemaker_active=False, pacemaker_enabled=False, runtime=runtime)
        try:
            behind = stale_runtime(f, text or "")
        except FactParseError:
            behind = []  # a file corosync itself may not read: the other checks say what is wrong
        out.append(Check(h.name, "corosync runs the timing its file sets", not behind,
                         "; ".join(f"{c.key}: runs {c.old}, file {c.new}" for c in behind) + "; run this stage again"
                         if behind else ", ".join(f"{k} {v}" for k, v in sorted(runtime.items()) if k in ("token", "consensus"))))
    try:
        links = read(h, CFGTOOL_STATUS)
        for link_id in (0, 1):
            ln = links.link(link_id)
            bad = sorted(p for p in ids - {node.nodeid} if not ln.peer(p).is_connected)
            out.append(Check(h.name, f"link {link_id} ({'private' if link_id == 0 else 'public'}) to all peers", not bad,
                             f"{ln.addr}; " + ("all connected" if not bad else f"not connected to node(s) {bad}")))
    except (FactParseError, KeyError, LookupError) as e:
        out.append(Check(h.name, "knet links", False, f"{CFGTOOL} unreadable: {e}"))
    try:
        q = read(h, QUORUM_STATUS)
        members = set(q.member_names())
        out.append(Check(h.name, "quorate with every node a member", q.quorate and len(q.members) == len(names),
                         f"quorate={q.quorate}, members={len(q.members)}/{len(names)} ({', '.join(sorted(members))})"))
    except FactParseError as e:
        out.append(Check(h.name, "quorum", False, f"{QUORUMTOOL} unreadable: {e}"))
    try:
        st = read(h, CRM_MON)
        missing = [x for x in names if not (st.nodes.get(x) and st.nodes[x].online)]
        out.append(Check(h.name, "pacemaker sees all nodes online", not missing,
                         "all online" if not missing else f"not online: {', '.join(missing)}"))
    except (FactParseError, ValueError) as e:
        out.append(Check(h.name, "pacemaker sees all nodes online", False, str(e)[-200:] or "no output"))
    return out


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
