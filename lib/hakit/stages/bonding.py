"""Stage 1: the article's two active-backup bonds (bond0 private, bond1 public), via ifupdown.

`BondingStage` gathers (one read-only probe per node, `facts.bonding.probe`),
plans (pure) and verifies; the driver applies. A plan holds two kinds of
operation: `ValidateInterfaces` (ifupdown's own parser checks the rendered files
in a private temp dir; read-only) and `SafeApplyBonds` (the files installed under
a revert timer, because re-plumbing the network can cut the SSH session doing
it). Where a node cannot bond (the container lab: one plain link per network
named like the bond, no NICs to enslave, whatever the host kernel; or a kernel
without a bonding driver) it only gets the validation and is recorded as
"not applied" with the reason.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd

from ..errors import HakitError
from ..facts import bonding as bondfacts
from ..facts.base import Fact, read
from ..facts.bonding import BondStatus, Declaration, Link, Probe, parse_ifquery
from ..facts.errors import FactParseError
from ..ops import ApplyContext, Barrier, Op, OperationError, sha256, short
from ..params import Network, Node, Params, PublicNetwork
from ..remote import connect as ssh_connect
from ..render.interfaces import FILE_PREFIX, INTERFACES_DIR, BondOptions, render_all_interfaces
from ..runner import RemoteError, Result, Runner
from .base import Check, Plan, Verification
from .driver import per_node

STAGE = "01 bonding"
NO_DRIVER = "not applied: this kernel has no bonding driver"
NO_NICS = "not applied: no NICs to bond on this node"
MAIN_FILE = "/etc/network/interfaces"
WORK_DIR = "/var/lib/hakit/bonding"  # on the node: staged files, backup, apply and revert scripts
REVERT_UNIT = "hakit-bonding-revert"
APPLY_UNIT = "hakit-bonding-apply"
MIN_REVERT_S = 20  # time to reconnect and read the bonds before the timer fires
CONFIRM_MARGIN_S = 5  # stop trying to confirm this long before the timer would fire
REVERT_GRACE_S = 60  # after the timer fires: time for the revert to finish and SSH to come back
ADDRESSES_FILE = "addresses.sh"  # in the backup: puts back the slaves' own addresses and default route
REVERTED_FILE = "reverted"  # written by the revert script: when it ran (epoch seconds)
CONFIG_FILES = (MAIN_FILE, f"{INTERFACES_DIR}/*")  # where the probe looks for declarations

BRING_UP = "bring up"
VALIDATED = "rendered files validated on the node (ifquery, ifup --no-act), nothing written"

Connect = Callable[[str], Runner]  # node name -> a fresh session (SSH in real runs)


class BondingError(HakitError, ValueError):
    """Stage 1 cannot start as asked (a timer too short, facts or hosts missing); nothing was sent."""

    stage = STAGE


def _networks(params: Params) -> tuple[Network, PublicNetwork]:
    return params.networks.private, params.networks.public


def bond_names(params: Params) -> list[str]:
    return [net.bond for net in _networks(params)]


def slave_names(params: Params) -> list[str]:
    return [s for net in _networks(params) for s in net.slaves]


def file_names(params: Params) -> list[str]:
    return [f"{FILE_PREFIX}{b}" for b in bond_names(params)]


def check_revert_timer(revert_after_s: int) -> None:
    if revert_after_s < MIN_REVERT_S:
        raise BondingError(
            f"revert_after_s={revert_after_s} is too short to reconnect and check; use {MIN_REVERT_S} or more"
        )


# --------------------------------------------------------------------- facts


@dataclass(frozen=True)
class NodeFacts:
    """Everything the bonding plan needs from one node."""

    node: str
    driver: bool
    driver_detail: str
    links: dict[str, Link]
    files: dict[str, str | None]  # our file name -> current text (None: absent)
    sources_dir: bool  # /etc/network/interfaces includes /etc/network/interfaces.d
    foreign: tuple[Declaration, ...]  # our bond/slave names configured outside our files
    bonds: dict[str, BondStatus]  # parsed /proc/net/bonding/<bond>, where it exists

    def missing(self, names: list[str]) -> list[str]:
        return [n for n in names if n not in self.links]

    def kind(self, name: str) -> str:
        link = self.links.get(name)
        return link.kind if link else "absent"

    def plain_links(self, bonds: list[str], slaves: list[str]) -> bool:
        """Every bond name is a link that is not a bond, and none of the slave NICs exists: the
        container lab's layout, which no kernel can bond (nothing to enslave)."""
        return all(self.kind(b) not in ("bond", "absent") for b in bonds) and self.missing(slaves) == slaves


@dataclass(frozen=True, repr=False)
class BondingFacts:
    """Bonding facts of every node, in params order."""

    nodes: dict[str, NodeFacts]

    def __getitem__(self, node: str) -> NodeFacts:
        return self.nodes[node]

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for f in self.nodes.values():
            rows.append(
                {
                    "node": f.node,
                    "bonding driver": ("yes: " if f.driver else "NO: ") + f.driver_detail,
                    "links": ", ".join(f"{n} ({link.kind})" for n, link in f.links.items() if n != "lo"),
                    "interfaces.d sourced": "yes" if f.sources_dir else "NO",
                    "our files": ", ".join(f"{n}: {'absent' if t is None else 'present'}" for n, t in f.files.items()),
                    "configured elsewhere": "; ".join(f"{d.path}:{d.line_no} {d.text}" for d in f.foreign) or "-",
                    "/proc/net/bonding": ", ".join(
                        f"{b.name} ({b.mode}, MII {b.mii_status}, active {b.active_slave})" for b in f.bonds.values()
                    )
                    or "none",
                }
            )
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        return "<h4>Current state: bonding</h4>" + self.to_frame().to_html(index=False, escape=True)

    def __repr__(self) -> str:
        return self.to_frame().to_string(index=False)


def probe_fact(bonds: Sequence[str]) -> Fact[Probe]:
    """The one read-only probe of a node for these bonds (see `facts.bonding.probe`)."""
    return bondfacts.probe(bonds, CONFIG_FILES)


def probe_command(params: Params) -> str:
    """The probe's shell line for these params (read-only)."""
    return str(probe_fact(bond_names(params)).command)


def sources_interfaces_d(lines: Sequence[Declaration]) -> bool:
    """Pure: does /etc/network/interfaces include every file in /etc/network/interfaces.d?"""
    wanted = {
        "source": {f"{INTERFACES_DIR}/*", "interfaces.d/*"},
        "source-directory": {INTERFACES_DIR, f"{INTERFACES_DIR}/", "interfaces.d", "interfaces.d/"},
    }
    for d in lines:
        words = d.text.split()
        if d.path == MAIN_FILE and len(words) == 2 and words[1] in wanted.get(words[0], set()):
            return True
    return False


def foreign_declarations(lines: Sequence[Declaration], names: list[str], ours: list[str]) -> tuple[Declaration, ...]:
    """Pure: lines outside our files that declare one of `names` (auto, allow-*, iface)."""
    found = []
    for d in lines:
        if d.path.rsplit("/", 1)[-1] in ours and d.path.startswith(INTERFACES_DIR + "/"):
            continue
        words = d.text.split()
        if words[0] == "iface":
            declared = words[1:2]
        elif words[0] == "auto" or words[0].startswith("allow-"):
            declared = words[1:]
        else:
            continue
        if any(n in names for n in declared):
            found.append(d)
    return tuple(found)


def node_facts(params: Params, node: str, probe: Probe, files: dict[str, str | None]) -> NodeFacts:
    """Pure: a node's probe (plus our files' text, read over SFTP) compared with what the params name."""
    return NodeFacts(
        node=node,
        driver=probe.driver,
        driver_detail=probe.driver_detail,
        links=probe.links,
        files=files,
        sources_dir=sources_interfaces_d(probe.declarations),
        foreign=foreign_declarations(probe.declarations, bond_names(params) + slave_names(params), file_names(params)),
        bonds=probe.bonds,
    )


def parse_probe(params: Params, node: str, output: str, files: dict[str, str | None]) -> NodeFacts:
    """Pure: the probe output of one node (plus our files' text) -> NodeFacts."""
    return node_facts(params, node, bondfacts.parse_probe(output, bond_names(params)), files)


def _gather_node(host: Runner, params: Params) -> NodeFacts:
    probe = read(host, probe_fact(bond_names(params)))
    files = {f: host.read_text(f"{INTERFACES_DIR}/{f}") for f in file_names(params)}
    return node_facts(params, host.name, probe, files)


def _names(hosts: Mapping[str, Runner], params: Params) -> list[str]:
    names = [n.name for n in params.nodes]
    missing = [n for n in names if n not in hosts]
    if missing:
        raise BondingError(f"no connection to {', '.join(missing)}; make hosts with notebook.connect_nodes(params)")
    return names


def gather(hosts: Mapping[str, Runner], params: Params) -> BondingFacts:
    """Read-only: bonding driver, links, our files, ifupdown includes and live bonds on every node (in parallel)."""
    return BondingFacts(per_node(hosts, _names(hosts, params), lambda h: _gather_node(h, params)))


# --------------------------------------------------------------------- what is wanted


@dataclass(frozen=True)
class RenderedFiles:
    """The ifupdown files this stage wants on every node: {node: {file name: text}}."""

    files: dict[str, dict[str, str]]

    def _repr_html_(self) -> str:
        parts = ["<h4>Rendered files (not yet installed anywhere)</h4>"]
        for node, files in self.files.items():
            for name, text in files.items():
                parts.append(f"<p><b>{html.escape(node)}</b>: {html.escape(INTERFACES_DIR)}/{html.escape(name)}</p>")
                parts.append(f"<pre>{html.escape(text)}</pre>")
        return "".join(parts)

    def __str__(self) -> str:
        return "\n".join(
            f"### {node}: {INTERFACES_DIR}/{name}\n{text}"
            for node, files in self.files.items()
            for name, text in files.items()
        )


def rendered(params: Params, options: BondOptions | None = None) -> RenderedFiles:
    """Pure: the files per node, for display."""
    return RenderedFiles(render_all_interfaces(params, options))


@dataclass(frozen=True)
class BondLayout:
    """One bond: its name, its slaves (primary first) and its network's prefix length."""

    bond: str
    slaves: tuple[str, ...]
    prefixlen: int


def _layout(params: Params) -> tuple[BondLayout, ...]:
    return tuple(BondLayout(net.bond, tuple(net.slaves), net.subnet.prefixlen) for net in _networks(params))


def _timers(options: BondOptions | None) -> tuple[int, int, int]:
    o = options or BondOptions()
    return o.miimon, o.updelay, o.downdelay


@dataclass(frozen=True)
class Wanted:
    """One node's bonds as wanted, as plain data an operation carries: apply needs no params."""

    node: str
    files: dict[str, str] = field(repr=False)  # file name -> rendered text
    nets: tuple[BondLayout, ...]
    stanzas: dict[str, dict[str, str]] = field(repr=False)  # iface -> what `ifquery iface` must print
    timers: tuple[int, int, int]  # miimon, updelay, downdelay (ms)

    @property
    def bonds(self) -> list[str]:
        return [n.bond for n in self.nets]

    @property
    def slaves(self) -> list[str]:
        return [s for n in self.nets for s in n.slaves]

    def digests(self) -> str:
        return ", ".join(f"{name} sha256 {short(sha256(text.encode()))}" for name, text in self.files.items())


def wanted(params: Params, node: Node | str, options: BondOptions | None = None,
           files: Mapping[str, str] | None = None) -> Wanted:
    """Pure: what one node must end up with (``files`` overrides the rendered text, e.g. in tests)."""
    n = params.node(node) if isinstance(node, str) else node
    texts = dict(files) if files is not None else render_all_interfaces(params, options)[n.name]
    return Wanted(n.name, texts, _layout(params), expected_stanzas(params, n, options), _timers(options))


def expected_stanzas(params: Params, node: Node, options: BondOptions | None = None) -> dict[str, dict[str, str]]:
    """Pure: what `ifquery <iface>` must print for each bond and slave (broadcast aside)."""
    o = options or BondOptions()
    want: dict[str, dict[str, str]] = {}
    for net, ip in ((params.networks.private, node.private_ip), (params.networks.public, node.public_ip)):
        bond = {"address": str(ip), "netmask": str(net.subnet.netmask)}
        if isinstance(net, PublicNetwork):
            bond["gateway"] = str(net.gateway)
        bond |= {
            "bond-slaves": " ".join(net.slaves),
            "bond-mode": o.mode,
            "bond-miimon": str(o.miimon),
            "bond-downdelay": str(o.downdelay),
            "bond-updelay": str(o.updelay),
            "bond-primary": net.slaves[0],
        }
        want[net.bond] = bond
        for s in net.slaves:
            want[s] = {"bond-master": net.bond}
    return want


# --------------------------------------------------------------------- plan


def plan(params: Params, facts: BondingFacts, options: BondOptions | None = None, revert_after_s: int = 60,
         connect: Connect | None = None) -> Plan:
    """Pure: per node, validate the rendered files and (where bonding applies) install them safely, or say why not.

    Order: every node's `ValidateInterfaces` first, a barrier, then `SafeApplyBonds` on the nodes
    whose files differ or whose bonds are down. ``connect`` opens the fresh session a safe apply
    confirms the bonds over (default: SSH with the params' pinned host keys).
    """
    check_revert_timer(revert_after_s)
    missing = [n.name for n in params.nodes if n.name not in facts.nodes]
    if missing:
        raise BondingError(f"no facts for {', '.join(missing)}; run gather() with the same params first")
    texts = render_all_interfaces(params, options)
    reconnect = connect or partial(ssh_connect, params)
    p = Plan(STAGE, order=[n.name for n in params.nodes])
    checks: list[Op] = []
    applies: list[Op] = []
    for n in params.nodes:
        f = facts[n.name]
        w = wanted(params, n, options, texts[n.name])
        why = _blocker(params, f)
        if why:
            p.not_applicable[n.name] = why
            checks.append(ValidateInterfaces(
                node=n.name, wanted=w, reason="nothing is applied here, but ifupdown on the node says whether "
                                              "the rendered files would work"))
            continue
        differ = [name for name, text in w.files.items() if f.files.get(name) != text]
        down = [b for b in w.bonds if b not in f.bonds]
        if not differ and not down:
            p.no_change[n.name] = f"{', '.join(w.files)} as rendered; {', '.join(f.bonds)} up"
            continue
        if differ:
            states = [f"{name} {'absent' if f.files.get(name) is None else 'differs from the rendered text'}"
                      for name in differ]
            reason = "; ".join(states) + ": the new files take effect"
        else:
            reason = f"files in place, but {', '.join(down)} not up"
        checks.append(ValidateInterfaces(node=n.name, wanted=w,
                                         reason="ifupdown parses the new files before anything is written"))
        applies.append(SafeApplyBonds(
            node=n.name, wanted=w, reason=reason, revert_after_s=revert_after_s,
            steps=safe_apply_steps(params, revert_after_s), apply_sh=apply_script(params),
            revert_sh=revert_script(params), connect=reconnect))
    p.ops += checks
    if applies:
        p.ops.append(Barrier(text="ifupdown accepted the rendered files on every node"))
        for i, op in enumerate(applies):  # one node at a time: never re-plumb every node's rings at once
            if i:
                p.ops.append(Barrier(text=f"{applies[i - 1].node}'s bonds confirmed before the next node"))
            p.ops.append(op)
        if len(applies) > 1:
            p.notes.append("Bonds are brought up one node at a time: the next node starts only after the "
                           "previous one confirmed its bonds over a fresh SSH session.")
    if any(r.startswith(NO_NICS) for r in p.not_applicable.values()):
        p.notes.append(
            "No NICs to bond: the container lab gives each node one plain link per network, named like the "
            "bond so later stages work; they are not bonds, and no kernel could bond them. The stage renders "
            "the bond files, validates them on each node with ifupdown's parser in a temp dir, writes "
            "nothing, and records 'not applied'. Real bonds: a VM node (params/lab-bonding.yaml)."
        )
    if any(r.startswith(NO_DRIVER) for r in p.not_applicable.values()):
        p.notes.append(
            "No bonding driver: the running kernel cannot make bonds. The stage renders the bond files and "
            "validates them on each node with ifupdown's parser in a temp dir, writes nothing, and records "
            "'not applied'."
        )
    if applies:
        p.notes.append(
            "Safe apply: old files are backed up and a timer on each node restores them unless the runbook "
            f"reconnects over SSH and sees the bonds healthy within {revert_after_s} s."
        )
    return p


def _blocker(params: Params, f: NodeFacts) -> str | None:
    """Why bonding cannot be applied on this node, or None."""
    if f.plain_links(bond_names(params), slave_names(params)):
        return (f"{NO_NICS} ({_plain(f, bond_names(params))}; {', '.join(slave_names(params))} absent; "
                f"bonding driver: {'yes' if f.driver else 'no'}, {f.driver_detail})")
    if not f.driver:
        return f"{NO_DRIVER} ({f.driver_detail})"
    missing = f.missing(slave_names(params))
    if missing:
        return (
            f"not applied: slave NIC(s) {', '.join(missing)} do not exist on this node (/sys/class/net); "
            "fix networks.*.slaves in the params to the node's NIC names"
        )
    if not f.sources_dir:
        return (
            f"not applied: {MAIN_FILE} does not include {INTERFACES_DIR}; add the line "
            f"`source {INTERFACES_DIR}/*` to it and run again"
        )
    if f.foreign:
        where = "; ".join(f"{d.path}:{d.line_no} `{d.text}`" for d in f.foreign)
        return (
            f"not applied: the bond or its NICs are already configured elsewhere ({where}); the bond must own "
            "them: move that address into the params, delete those stanzas (without restarting networking) "
            "and run again"
        )
    return None


# --------------------------------------------------------------------- validation on the node


def judge(w: Wanted, listing: Result, queries: Mapping[str, Result], noact: Result) -> list[Check]:
    """Pure: ifupdown's answers on the temp copy -> check rows (parse, stanzas, ifup --no-act)."""
    name, bonds = w.node, w.bonds
    checks = []
    autos = [i for i in listing.stdout.split() if i != "lo"]
    parse_ok = listing.ok and not listing.stderr.strip() and sorted(autos) == sorted(bonds)
    checks.append(
        Check(
            name,
            "rendered files parse (ifquery --list -a)",
            parse_ok,
            f"auto: {' '.join(autos) or 'none'}"
            if parse_ok
            else _tail(listing) or f"auto: {' '.join(autos)}; expected {' '.join(bonds)}",
        )
    )
    want = w.stanzas
    for net in w.nets:
        problems = []
        for iface in (net.bond, *net.slaves):
            r = queries[iface]
            if not r.ok or r.stderr.strip():
                problems.append(f"{iface}: {_tail(r) or f'exit {r.exit_code}'}")
                continue
            got = parse_ifquery(r.stdout)
            for key in sorted(set(got) | set(want[iface])):
                if got.get(key) != want[iface].get(key):
                    problems.append(f"{iface} {key}: expected {want[iface].get(key)!r}, ifquery says {got.get(key)!r}")
        b = want[net.bond]
        ok_detail = (
            f"{b['address']}/{net.prefixlen} over {b['bond-slaves']} (each bond-master {net.bond}), "
            f"{b['bond-mode']}, miimon {b['bond-miimon']}, updelay {b['bond-updelay']}, downdelay {b['bond-downdelay']}"
        )
        detail = "; ".join(problems) or ok_detail
        checks.append(Check(name, f"{net.bond} stanza as intended (ifquery)", not problems, detail))
    # ifup --no-act prints the commands it would run on stderr; its own complaints start with "ifup:".
    said = noact.stdout + noact.stderr
    complaints = [line.strip() for line in said.splitlines() if line.startswith("ifup:")]
    missing = []
    for net in w.nets:
        ip = want[net.bond]
        addr = re.escape(f"{ip['address']}/{ip['netmask']}")
        if not re.search(rf"ip addr add {addr}\b.*\bdev {net.bond}\b", said):
            missing.append(f"no `ip addr add {ip['address']}` on {net.bond}")
        gw = re.escape(ip.get("gateway", ""))
        if gw and not re.search(rf"ip route add default via {gw}\b.*\bdev {net.bond}\b", said):
            missing.append(f"no default route via {ip['gateway']} on {net.bond}")
    problems = complaints + missing + ([] if noact.ok else [f"exit {noact.exit_code}"])
    checks.append(
        Check(
            name,
            f"ifup --no-act {' '.join(bonds)}",
            not problems,
            "would set both addresses and the default route" if not problems else "; ".join(problems),
        )
    )
    return checks


def judge_validation(
    params: Params,
    node: Node,
    listing: Result,
    queries: Mapping[str, Result],
    noact: Result,
    options: BondOptions | None = None,
) -> list[Check]:
    """Pure: `judge` for a node of these params."""
    return judge(wanted(params, node, options), listing, queries, noact)


def _listed(checks: list[Check]) -> str:
    return "; ".join(f"{c.check}: {c.detail}" for c in checks)


def _tail(r: Result) -> str:
    return " | ".join((r.stderr or "").strip().splitlines()[-4:])


def validate_files(host: Runner, w: Wanted) -> list[Check]:
    """Parse ``w.files`` with ifupdown on the node, in a private temp dir that is removed after; changes nothing."""
    tmp = host.run(["mktemp", "-d", "/tmp/hakit-bonding.XXXXXXXX"]).stdout.strip()
    try:
        host.run(["mkdir", f"{tmp}/interfaces.d", f"{tmp}/state"])
        for name, text in w.files.items():
            host.write_bytes(f"{tmp}/interfaces.d/{name}", text.encode())
        main = f"{tmp}/interfaces"
        host.write_bytes(main, f"source {tmp}/interfaces.d/*\n".encode())
        listing = host.run(["ifquery", "-i", main, "--list", "-a"], check=False)
        queries = {i: host.run(["ifquery", "-i", main, i], check=False) for i in w.bonds + w.slaves}
        noact = host.run(["ifup", "--no-act", "--state-dir", f"{tmp}/state", "-i", main, *w.bonds], check=False)
    finally:
        host.run(["rm", "-rf", "--", tmp], check=False)
    return judge(w, listing, queries, noact)


def validate_on_node(
    host: Runner, params: Params, files: Mapping[str, str], options: BondOptions | None = None
) -> list[Check]:
    """`validate_files` for a node of these params."""
    return validate_files(host, wanted(params, host.name, options, files))


def validate(
    hosts: Mapping[str, Runner],
    params: Params,
    options: BondOptions | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
) -> Verification:
    """Render (or take `files`, {node: {name: text}}) and validate on every node without applying."""
    files = files or render_all_interfaces(params, options)
    v = Verification(STAGE)
    found = per_node(hosts, _names(hosts, params), lambda h: validate_on_node(h, params, files[h.name], options))
    for checks in found.values():
        v.checks += checks
    return v


@dataclass(frozen=True, kw_only=True)
class ValidateInterfaces(Op):
    """Check the rendered files with the node's own ifupdown (ifquery, ifup --no-act) in a temp dir.

    Read-only: the temp dir is removed, /etc/network is not touched. Raises if ifupdown disagrees.
    """

    wanted: Wanted
    mutates = False

    @property
    def action(self) -> str:
        return f"validate {', '.join(self.wanted.files)} (ifquery, ifup --no-act, temp dir)"

    def describe(self) -> str:
        return (f"validate {self.wanted.digests()} with ifupdown (ifquery, ifup --no-act "
                f"{' '.join(self.wanted.bonds)}) in a private temp dir")

    def execute(self, ctx: ApplyContext) -> str:
        bad = [c for c in validate_files(ctx.host(self.node), self.wanted) if not c.ok]
        if bad:
            raise OperationError(f"rendered files do not validate, nothing written: {_listed(bad)}; "
                                 "fix the params (or the renderer) and run again")
        return VALIDATED

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"files": {n: sha256(t.encode()) for n, t in self.wanted.files.items()}}


# --------------------------------------------------------------------- safe apply (real kernels only)


def apply_script(params: Params) -> str:
    """Pure: the node-side script that swaps the files in and brings the bonds up."""
    bonds, names = " ".join(bond_names(params)), " ".join(file_names(params))
    slaves = " ".join(slave_names(params))
    return f"""#!/bin/sh
# hakit bonding: apply. Runs as its own systemd unit, so a dropped SSH session cannot stop it halfway.
set -eu
W={WORK_DIR}
D={INTERFACES_DIR}
ifdown --force {bonds} || true   # deconfigure with the old files, if they configured anything
for f in {names}; do
    install -m 0644 -o root -g root "$W/staged/$f" "$D/$f"
done
# The addresses move onto the bonds. ifenslave leaves a slave's own address (set outside ifupdown)
# in place; the kernel then puts its route back when the bond brings the slave up, and replies
# leave by the bare slave instead of the bond. The backup step saved them for a revert.
for s in {slaves}; do
    ip -4 addr flush dev "$s"
done
ifup {bonds}
"""


def revert_script(params: Params) -> str:
    """Pure: the script the timer runs unless cancelled: restore the saved files, restart networking."""
    bonds, names = " ".join(bond_names(params)), " ".join(file_names(params))
    return f"""#!/bin/sh
# hakit bonding: automatic revert. A transient timer runs this unless the runbook confirmed the
# new bonds in time. It puts back the files saved before the apply (or removes files that did not
# exist then), restarts networking, and gives the slaves back the addresses they had before, so
# the node comes back as it was.
set -u
W={WORK_DIR}
D={INTERFACES_DIR}
logger -t hakit-bonding "revert: restoring the network files saved before the last apply" || true
ifdown --force {bonds} || true
for b in {bonds}; do
    if [ -d "/sys/class/net/$b/bonding" ]; then ip link del "$b" || true; fi   # a half-made bond ifdown did not know
done
for f in {names}; do
    if [ -e "$W/backup/$f" ]; then cp -p "$W/backup/$f" "$D/$f"; else rm -f "$D/$f"; fi
done
systemctl restart networking
if [ -e "$W/backup/{ADDRESSES_FILE}" ]; then sh "$W/backup/{ADDRESSES_FILE}" || true; fi
date +%s > "$W/{REVERTED_FILE}"
logger -t hakit-bonding "revert: done" || true
"""


@dataclass(frozen=True)
class SafeApplySteps:
    """Pure: the shell commands of a safe apply, in the order they run (upload and reconnect in between)."""

    precheck: str  # exit 0 means an earlier revert timer is still armed: stop
    prepare: str
    backup: str
    arm: str
    apply: str
    cancel: str
    confirm: str  # prints the timer's state: must not be "active" after cancel
    revert_now: str
    order: tuple[str, ...] = field(
        default=("precheck", "prepare", "upload", "backup", "arm", "apply", "reconnect+verify", "cancel", "confirm")
    )


def safe_apply_steps(
    params: Params, revert_after_s: int, work_dir: str = WORK_DIR, unit: str = REVERT_UNIT
) -> SafeApplySteps:
    """Pure: build the commands for one node; `work_dir`/`unit` are parameters only so tests can use their own."""
    names, slaves = " ".join(file_names(params)), slave_names(params)
    saved = f"{work_dir}/backup/{ADDRESSES_FILE}"
    on_slave = "|".join(slaves)
    return SafeApplySteps(
        precheck=f"systemctl is-active --quiet {unit}.timer",
        prepare=(
            f"mkdir -p {work_dir}/staged {work_dir}/backup && "
            f"rm -f {work_dir}/staged/* {work_dir}/backup/* {work_dir}/{REVERTED_FILE}"
        ),
        # The files, and as a script the slaves' own IPv4 addresses and a default route through one
        # of them: the apply moves those onto the bonds, a revert must put them back.
        backup=(
            f"for f in {names}; do if [ -e {INTERFACES_DIR}/$f ]; then "
            f"cp -p {INTERFACES_DIR}/$f {work_dir}/backup/$f; fi; done; "
            f"for s in {' '.join(slaves)}; do echo \"ip link set dev $s up\"; "
            "ip -4 -o addr show dev $s | while read -r _ d _ a _; do echo \"ip addr replace $a dev $d\"; done; "
            f"done > {saved}; "
            f"ip -4 route show default | grep -E ' dev ({on_slave})( |$)' | sed 's/^/ip route replace /' >> {saved} || true"
        ),
        arm=(
            f"systemd-run --unit={unit} --on-active={int(revert_after_s)}s --timer-property=AccuracySec=1s "
            f"/bin/sh {work_dir}/revert.sh"
        ),
        apply=f"systemd-run --wait --collect --unit={APPLY_UNIT} /bin/sh {work_dir}/apply.sh",
        cancel=f"systemctl stop {unit}.timer",
        confirm=f"systemctl is-active {unit}.timer || true",
        revert_now=f"systemctl start {unit}.service; systemctl stop {unit}.timer || true",
    )


def check_bonds(node: str, nets: Sequence[BondLayout], timers: tuple[int, int, int],
                bonds: Mapping[str, BondStatus]) -> list[Check]:
    """Pure: the live bonds against the wanted layout: active-backup, MII up, an active slave, both slaves up, timers."""
    miimon, updelay, downdelay = timers
    out = []
    for net in nets:
        b = bonds.get(net.bond)
        if b is None:
            why = f"no /proc/net/bonding/{net.bond}; run the stage with dry_run=False"
            out.append(Check(node, f"{net.bond} is a bond", False, why))
            continue
        names = tuple(s.name for s in b.slaves)
        out += [
            Check(node, f"{net.bond} mode active-backup", b.is_active_backup, b.mode),
            Check(node, f"{net.bond} MII status up", b.is_up, b.mii_status),
            Check(node, f"{net.bond} has an active slave that is up", b.active_slave_up, f"active: {b.active_slave}"),
            Check(
                node,
                f"{net.bond} slaves {' and '.join(net.slaves)} both up",
                sorted(names) == sorted(net.slaves) and not b.slaves_down,
                ", ".join(f"{s.name} {s.mii_status}" for s in b.slaves) or "no slaves",
            ),
            Check(
                node,
                f"{net.bond} miimon/updelay/downdelay {miimon}/{updelay}/{downdelay} ms",
                (b.miimon_ms, b.updelay_ms, b.downdelay_ms) == timers,
                f"{b.miimon_ms}/{b.updelay_ms}/{b.downdelay_ms} ms",
            ),
        ]
    return out


def bond_checks(
    params: Params, node: str, bonds: Mapping[str, BondStatus], options: BondOptions | None = None
) -> list[Check]:
    """Pure: `check_bonds` for the bonds these params name."""
    return check_bonds(node, _layout(params), _timers(options), bonds)


@dataclass(frozen=True, kw_only=True)
class SafeApplyBonds(Op):
    """Install the bond files and bring the bonds up under a revert timer on the node.

    Steps (`SafeApplySteps.order`): refuse if an earlier timer is armed, stage the files and the
    apply/revert scripts, back up the old files and the slaves' addresses, arm the timer, apply
    (as its own systemd unit), then over a **fresh** session (``connect``) read the bonds until they
    verify, cancel the timer and check it is gone. On failure it reverts (at once, or the timer
    does) and raises with what happened. ``ctx.hosts[node]`` becomes the fresh session.
    """

    wanted: Wanted
    revert_after_s: int
    steps: SafeApplySteps = field(repr=False)
    apply_sh: str = field(repr=False)
    revert_sh: str = field(repr=False)
    connect: Connect = field(repr=False, compare=False)

    @property
    def action(self) -> str:
        return f"{BRING_UP} {' '.join(self.wanted.bonds)} (safe apply, automatic revert)"

    def describe(self) -> str:
        return (f"safe apply {' '.join(self.wanted.bonds)}: install {self.wanted.digests()} in {INTERFACES_DIR} "
                f"under a {self.revert_after_s} s revert timer ({REVERT_UNIT}.timer), confirm over a fresh SSH session")

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {
            "files": {n: sha256(t.encode()) for n, t in self.wanted.files.items()},
            "apply.sh": sha256(self.apply_sh.encode()), "revert.sh": sha256(self.revert_sh.encode()),
            "revert_after_s": self.revert_after_s,
        }

    def execute(self, ctx: ApplyContext) -> str:
        h, st, name = ctx.host(self.node), self.steps, self.node
        if h.run(st.precheck, check=False).ok:
            raise OperationError(
                f"a revert timer from an earlier run ({REVERT_UNIT}.timer) is still armed; let it fire (it restores "
                f"the old files) or stop it with `systemctl stop {REVERT_UNIT}.timer`, then run again"
            )
        h.run(st.prepare)
        for fname, text in self.wanted.files.items():
            h.write_bytes(f"{WORK_DIR}/staged/{fname}", text.encode())
        h.write_bytes(f"{WORK_DIR}/apply.sh", self.apply_sh.encode(), mode=0o755)
        h.write_bytes(f"{WORK_DIR}/revert.sh", self.revert_sh.encode(), mode=0o755)
        h.run(st.backup)
        h.run(st.arm)
        armed_at = time.monotonic()
        deadline = armed_at + self.revert_after_s - CONFIRM_MARGIN_S
        try:
            r = h.run(st.apply, check=False, timeout=self.revert_after_s)
        except RemoteError:
            r = None  # the session may drop when the network under it changes; the fresh session below decides
        if r is not None and not r.ok:
            raise OperationError(f"ifup of the bonds failed (exit {r.exit_code}: {_tail(r)}); {_revert_now(h, st)}")
        host, checks = self._reconnect_and_check(deadline)
        if host is None:
            h.close()
            lost = (f"no SSH session within {self.revert_after_s} s after applying "
                    "(the new network config cut this node off)")
            back, how = self._await_revert(armed_at)
            if back is not None:
                ctx.hosts[name] = back
            raise OperationError(f"{lost}; {how}")
        h.close()
        ctx.hosts[name] = host
        bad = [c for c in checks if not c.ok]
        if bad:
            raise OperationError(f"bonds did not verify ({_listed(bad)}); {_revert_now(host, st)}")
        host.run(st.cancel)
        state = host.run(st.confirm, check=False).stdout.strip()
        if state == "active":
            raise OperationError(
                f"bonds verified but {REVERT_UNIT}.timer is still active: it will revert; stop it by hand "
                f"(`systemctl stop {REVERT_UNIT}.timer`) and run the stage again")
        return (f"{', '.join(self.wanted.files)} installed; {', '.join(self.wanted.bonds)} verified; "
                f"revert timer cancelled ({state})")

    def _bonds(self, host: Runner) -> dict[str, BondStatus]:
        return read(host, probe_fact(self.wanted.bonds)).bonds

    def _reconnect_and_check(self, deadline: float) -> tuple[Runner | None, list[Check]]:
        """Open a fresh session and read the bonds until they verify or the deadline passes."""
        host: Runner | None = None
        checks = [Check(self.node, "reconnect over SSH", False, "no attempt finished before the deadline")]
        while time.monotonic() < deadline:
            try:
                host = host or self.connect(self.node)
                checks = check_bonds(self.node, self.wanted.nets, self.wanted.timers, self._bonds(host))
                if all(c.ok for c in checks):
                    break
            except (RemoteError, FactParseError) as e:
                checks = [Check(self.node, "reconnect over SSH", False, str(e).splitlines()[0])]
                host = None
            time.sleep(2)
        return host, checks

    def _await_revert(self, armed_at: float) -> tuple[Runner | None, str]:
        """After a lost node: wait for its revert timer to fire and SSH to come back; say what happened."""
        give_up = armed_at + self.revert_after_s + REVERT_GRACE_S
        while time.monotonic() < give_up:
            try:
                host = self.connect(self.node)
                marker = host.run(["cat", f"{WORK_DIR}/{REVERTED_FILE}"], check=False)
            except RemoteError:
                time.sleep(1)
                continue
            back_after = time.monotonic() - armed_at
            if not marker.ok:  # reachable, yet the revert has not run: it still will, when the timer fires
                host.close()
                time.sleep(1)
                continue
            bonds = self._bonds(host)
            now = ", ".join(f"{b.name} over {'+'.join(s.name for s in b.slaves)}" for b in bonds.values()) or "no bonds"
            return host, (
                f"the revert timer fired after {self.revert_after_s} s and restored the old files and addresses "
                f"(now: {now}); node reachable again over SSH {back_after:.0f} s after the apply"
            )
        return None, (
            f"the revert timer ({self.revert_after_s} s) should have restored the old files, but the node was still "
            f"unreachable {self.revert_after_s + REVERT_GRACE_S} s after the apply; use its console"
        )


def _revert_now(host: Runner, steps: SafeApplySteps) -> str:
    """Run the revert at once instead of waiting for the timer; the session may drop while it runs."""
    try:
        host.run(steps.revert_now, check=False)
        return "reverted to the old files now"
    except RemoteError:
        return "revert started; the session dropped while networking restarted"


# --------------------------------------------------------------------- verify


def verify(hosts: Mapping[str, Runner], params: Params, options: BondOptions | None = None) -> Verification:
    """Live bonds where the kernel can bond, honest rows and file validation where it cannot; addresses intact.

    Read-only apart from the validation's private temp dir, which is removed. Nodes are read in parallel.
    """
    v = Verification(STAGE)
    texts = render_all_interfaces(params, options)
    found = per_node(hosts, _names(hosts, params), lambda h: _verify_node(h, params, wanted(params, h.name, options,
                                                                                                 texts[h.name])))
    for checks in found.values():
        v.checks += checks
    return v


def _plain(f: NodeFacts, bonds: list[str]) -> str:
    return ", ".join(f"{b} is a plain {f.kind(b)} link" for b in bonds)


def _verify_node(h: Runner, params: Params, w: Wanted) -> list[Check]:
    n = params.node(h.name)
    f = _gather_node(h, params)
    out: list[Check] = []
    no_nics = f.plain_links(w.bonds, w.slaves)
    if f.driver and not no_nics:
        out += check_bonds(n.name, w.nets, w.timers, f.bonds)
    else:
        why = NO_NICS if no_nics else NO_DRIVER
        claimed = bool(f.bonds) or any(f.kind(b) == "bond" for b in w.bonds)
        out.append(Check(n.name, "no bond claimed where none can be made", not claimed,
                         f"{why}; {_plain(f, w.bonds)}, not a bond"))
        out += validate_files(h, w)
    nets = (("private", params.networks.private, n.private_ip), ("public", params.networks.public, n.public_ip))
    for label, net, ip in nets:
        cidr = f"{ip}/{net.subnet.prefixlen}"
        on = [link.name for link in f.links.values() if cidr in link.addresses]
        ok = net.bond in on or ((not f.driver or no_nics) and bool(on))
        where = f"on {', '.join(on)}" if on else "missing: connectivity lost?"
        out.append(Check(n.name, f"{label} address {cidr} on {net.bond}", ok, where))
    return out


# --------------------------------------------------------------------- the stage


class BondingStage:
    """Stage 1 with its params, bond options and revert timer bound (see `stages.driver.Stage`).

    ``connect`` opens the fresh session a safe apply confirms over (default: SSH); tests pass a fake.
    """

    name = STAGE

    def __init__(self, params: Params, options: BondOptions | None = None, revert_after_s: int = 60,
                 connect: Connect | None = None):
        check_revert_timer(revert_after_s)
        self.params = params
        self.options = options
        self.revert_after_s = revert_after_s
        self.connect = connect

    def gather(self, hosts: Mapping[str, Runner]) -> BondingFacts:
        return gather(hosts, self.params)

    def plan(self, facts: BondingFacts) -> Plan:
        return plan(self.params, facts, self.options, self.revert_after_s, self.connect)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        """Read-only (see `verify`); bonds are up when the apply returns, so there is nothing to wait for."""
        return verify(hosts, self.params, self.options)

    def rendered(self) -> RenderedFiles:
        return rendered(self.params, self.options)

    def validate(self, hosts: Mapping[str, Runner]) -> Verification:
        return validate(hosts, self.params, self.options)

    def artifacts(self) -> dict[str, object]:
        """What the record keeps: the rendered files per node."""
        return {"interfaces.d": self.rendered().files}
