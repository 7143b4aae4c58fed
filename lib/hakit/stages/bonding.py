"""Stage 1: the article's two active-backup bonds (bond0 private, bond1 public), via ifupdown.

Where the kernel has no bonding driver (the local lab: containers share a host
kernel without one) the stage renders the files, validates them on each node
with ifupdown's own parser in a private temp dir, and applies nothing: the
record says so. Where bonding applies, files are installed under a revert
timer, because re-plumbing the network can cut the SSH session doing it.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import pandas as pd

from ..facts.bonding import BondStatus, parse_proc_bonding
from ..facts.errors import FactParseError
from ..params import Network, Node, Params, PublicNetwork
from ..remote import Host, RemoteError, Result, connect
from ..render.interfaces import FILE_PREFIX, INTERFACES_DIR, BondOptions, render_all_interfaces
from .base import Change, Check, OutcomeKind, Plan, StageResult, Verification

STAGE = "01 bonding"
NO_DRIVER = "not applied: this kernel has no bonding driver"
MAIN_FILE = "/etc/network/interfaces"
WORK_DIR = "/var/lib/hakit/bonding"  # on the node: staged files, backup, apply and revert scripts
REVERT_UNIT = "hakit-bonding-revert"
APPLY_UNIT = "hakit-bonding-apply"
MIN_REVERT_S = 20  # time to reconnect and read the bonds before the timer fires
CONFIRM_MARGIN_S = 5  # stop trying to confirm this long before the timer would fire
REVERT_GRACE_S = 60  # after the timer fires: time for the revert to finish and SSH to come back
ADDRESSES_FILE = "addresses.sh"  # in the backup: puts back the slaves' own addresses and default route
REVERTED_FILE = "reverted"  # written by the revert script: when it ran (epoch seconds)

WRITE = "write"
BRING_UP = "bring up"


def _networks(params: Params) -> tuple[Network, PublicNetwork]:
    return params.networks.private, params.networks.public


def bond_names(params: Params) -> list[str]:
    return [net.bond for net in _networks(params)]


def slave_names(params: Params) -> list[str]:
    return [s for net in _networks(params) for s in net.slaves]


def file_names(params: Params) -> list[str]:
    return [f"{FILE_PREFIX}{b}" for b in bond_names(params)]


# --------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Link:
    """One network interface on a node: its kind (veth, bond, device, ...) and IPv4 addresses."""

    name: str
    kind: str
    addresses: tuple[str, ...] = ()  # "10.77.0.11/24"


@dataclass(frozen=True)
class Declaration:
    """A line of ifupdown config that names an interface: file, line number, text."""

    path: str
    line_no: int
    text: str


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


def probe_command(params: Params) -> str:
    """One read-only shell line per node; prints sections that parse_probe reads."""
    cats = "; ".join(
        f"echo '== bonding {b}'; cat /proc/net/bonding/{b} 2>/dev/null || true" for b in bond_names(params)
    )
    return (
        "echo '== driver'; "
        "if [ -d /sys/module/bonding ]; then echo 'sysmodule yes'; else echo 'sysmodule no'; fi; "
        "m=$(modprobe -n bonding 2>&1); echo \"modprobe $? $(echo $m | tr '\\n' ' ')\"; "
        "echo '== links'; ip -j -d addr show; "
        "echo '== config'; "
        "grep -HnsE '^[[:space:]]*(auto|allow-[a-z-]+|iface|mapping|source|source-directory)[[:space:]]' "
        f"{MAIN_FILE} {INTERFACES_DIR}/* || true; "
        + cats
    )


def _sections(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith("== "):
            current = out.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return out


def parse_links(ip_json: str) -> dict[str, Link]:
    """Pure: `ip -j -d addr show` -> {name: Link}."""
    try:
        entries = json.loads(ip_json or "[]")
    except json.JSONDecodeError:
        raise FactParseError("ip -j -d addr show", "not JSON") from None
    links = {}
    for e in entries:
        fallback = "loopback" if e.get("link_type") == "loopback" else "device"  # NICs carry no linkinfo
        kind = (e.get("linkinfo") or {}).get("info_kind") or fallback
        addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", []) if a.get("family") == "inet")
        links[e["ifname"]] = Link(e["ifname"], kind, addrs)
    return links


def sources_interfaces_d(lines: list[Declaration]) -> bool:
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


def foreign_declarations(lines: list[Declaration], names: list[str], ours: list[str]) -> tuple[Declaration, ...]:
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


def parse_probe(params: Params, node: str, output: str, files: dict[str, str | None]) -> NodeFacts:
    """Pure: the probe output of one node (plus our files' text, read over SFTP) -> NodeFacts."""
    sec = _sections(output)
    drv = dict(line.split(" ", 1) for line in sec.get("driver", []) if " " in line)
    sysmodule = drv.get("sysmodule") == "yes"
    mp_code, _, mp_msg = drv.get("modprobe", "? ").partition(" ")
    if sysmodule:
        driver, detail = True, "loaded (/sys/module/bonding)"
    elif mp_code == "0":
        driver, detail = True, "loadable (`modprobe -n bonding` succeeds)"
    else:
        driver = False
        detail = f"no /sys/module/bonding; `modprobe -n bonding`: {mp_msg.strip() or f'exit {mp_code}'}"
    decls = []
    for line in sec.get("config", []):
        path, _, rest = line.partition(":")
        no, _, text = rest.partition(":")
        if no.isdigit() and text.strip():
            decls.append(Declaration(path, int(no), text.strip()))
    bonds = {}
    for b in bond_names(params):
        text = "\n".join(sec.get(f"bonding {b}", [])).strip()
        if text:
            bonds[b] = parse_proc_bonding(text + "\n", b)
    return NodeFacts(
        node=node,
        driver=driver,
        driver_detail=detail,
        links=parse_links("\n".join(sec.get("links", []))),
        files=files,
        sources_dir=sources_interfaces_d(decls),
        foreign=foreign_declarations(decls, bond_names(params) + slave_names(params), file_names(params)),
        bonds=bonds,
    )


def _gather_node(host: Host, params: Params) -> NodeFacts:
    out = host.run(probe_command(params)).stdout
    files = {f: host.read_text(f"{INTERFACES_DIR}/{f}") for f in file_names(params)}
    return parse_probe(params, host.name, out, files)


def gather(hosts: Mapping[str, Host], params: Params) -> BondingFacts:
    """Read-only: bonding driver, links, our files, ifupdown includes and live bonds on every node."""
    return BondingFacts({n.name: _gather_node(_host(hosts, n.name), params) for n in params.nodes})


def _host(hosts: Mapping[str, Host], name: str) -> Host:
    try:
        return hosts[name]
    except KeyError:
        raise KeyError(f"no connection to {name}; make hosts with notebook.connect_nodes(params)") from None


# --------------------------------------------------------------------- rendered files


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


# --------------------------------------------------------------------- plan


def plan(params: Params, facts: BondingFacts, options: BondOptions | None = None) -> Plan:
    """Pure: per node, write the bond files and bring the bonds up, or say why not."""
    missing = [n.name for n in params.nodes if n.name not in facts.nodes]
    if missing:
        raise KeyError(f"no facts for {', '.join(missing)}; run gather() with the same params first")
    wanted = render_all_interfaces(params, options)
    p = Plan(STAGE)
    for n in params.nodes:
        f = facts[n.name]
        why = _blocker(params, f)
        if why:
            p.not_applicable[n.name] = why
            continue
        differ = {name: text for name, text in wanted[n.name].items() if f.files.get(name) != text}
        down = [b for b in bond_names(params) if b not in f.bonds]
        for name in differ:
            state = "absent" if f.files.get(name) is None else "differs from the rendered text"
            p.changes.append(Change(n.name, f"{WRITE} {INTERFACES_DIR}/{name}", state))
        if differ or down:
            reason = "new files take effect" if differ else f"files in place, but {', '.join(down)} not up"
            p.changes.append(
                Change(n.name, f"{BRING_UP} {' '.join(bond_names(params))} (safe apply, automatic revert)", reason)
            )
        else:
            p.no_change[n.name] = f"{', '.join(wanted[n.name])} as rendered; {', '.join(f.bonds)} up"
    if any(r.startswith(NO_DRIVER) for r in p.not_applicable.values()):
        p.notes.append(
            "No bonding driver: the running kernel cannot make bonds (the local lab's containers share such a "
            "kernel). The stage renders the bond files and validates them on each node with ifupdown's parser "
            "in a temp dir, writes nothing, and records 'not applied'. The lab's bond0/bond1 are plain links "
            "named like the bonds so later stages work; they are not bonds."
        )
    if p.changes:
        p.notes.append(
            "Safe apply: old files are backed up and a timer on each node restores them unless the runbook "
            "reconnects over SSH and sees the bonds healthy in time."
        )
    return p


def _blocker(params: Params, f: NodeFacts) -> str | None:
    """Why bonding cannot be applied on this node, or None."""
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


def parse_ifquery(text: str) -> dict[str, str]:
    """Pure: `ifquery IFACE` output ("key: value" lines) -> dict; address/prefix split like ifupdown does."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out.setdefault(key.strip(), value.strip())
    if "/" in out.get("address", ""):
        iface = ipaddress.IPv4Interface(out["address"])
        out["address"], out["netmask"] = str(iface.ip), str(iface.netmask)
    out.pop("broadcast", None)
    return out


def judge_validation(
    params: Params,
    node: Node,
    listing: Result,
    queries: Mapping[str, Result],
    noact: Result,
    options: BondOptions | None = None,
) -> list[Check]:
    """Pure: ifupdown's answers on the temp copy -> check rows (parse, stanzas, ifup --no-act)."""
    name, bonds = node.name, bond_names(params)
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
    want = expected_stanzas(params, node, options)
    for net in _networks(params):
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
            f"{b['address']}/{net.subnet.prefixlen} over {b['bond-slaves']} (each bond-master {net.bond}), "
            f"{b['bond-mode']}, miimon {b['bond-miimon']}, updelay {b['bond-updelay']}, downdelay {b['bond-downdelay']}"
        )
        detail = "; ".join(problems) or ok_detail
        checks.append(Check(name, f"{net.bond} stanza as intended (ifquery)", not problems, detail))
    # ifup --no-act prints the commands it would run on stderr; its own complaints start with "ifup:".
    said = noact.stdout + noact.stderr
    complaints = [line.strip() for line in said.splitlines() if line.startswith("ifup:")]
    missing = []
    for net in _networks(params):
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


def _listed(checks: list[Check]) -> str:
    return "; ".join(f"{c.check}: {c.detail}" for c in checks)


def _tail(r: Result) -> str:
    return " | ".join((r.stderr or "").strip().splitlines()[-4:])


def validate_on_node(
    host: Host, params: Params, files: Mapping[str, str], options: BondOptions | None = None
) -> list[Check]:
    """Parse `files` with ifupdown on the node, in a private temp dir that is removed after; changes nothing."""
    node = params.node(host.name)
    tmp = host.run(["mktemp", "-d", "/tmp/hakit-bonding.XXXXXXXX"]).stdout.strip()
    try:
        host.run(["mkdir", f"{tmp}/interfaces.d", f"{tmp}/state"])
        for name, text in files.items():
            host.write_bytes(f"{tmp}/interfaces.d/{name}", text.encode())
        main = f"{tmp}/interfaces"
        host.write_bytes(main, f"source {tmp}/interfaces.d/*\n".encode())
        listing = host.run(["ifquery", "-i", main, "--list", "-a"], check=False)
        queries = {i: host.run(["ifquery", "-i", main, i], check=False) for i in bond_names(params) + slave_names(params)}
        noact = host.run(
            ["ifup", "--no-act", "--state-dir", f"{tmp}/state", "-i", main, *bond_names(params)], check=False
        )
    finally:
        host.run(["rm", "-rf", "--", tmp], check=False)
    return judge_validation(params, node, listing, queries, noact, options)


def validate(
    hosts: Mapping[str, Host],
    params: Params,
    options: BondOptions | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
) -> Verification:
    """Render (or take `files`, {node: {name: text}}) and validate on every node without applying."""
    files = files or render_all_interfaces(params, options)
    v = Verification(STAGE)
    for n in params.nodes:
        v.checks += validate_on_node(_host(hosts, n.name), params, files[n.name], options)
    return v


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


def bond_checks(
    params: Params, node: str, bonds: Mapping[str, BondStatus], options: BondOptions | None = None
) -> list[Check]:
    """Pure: the live bonds against the params: active-backup, MII up, an active slave, both slaves up, timers."""
    o = options or BondOptions()
    out = []
    for net in _networks(params):
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
                f"{net.bond} miimon/updelay/downdelay {o.miimon}/{o.updelay}/{o.downdelay} ms",
                (b.miimon_ms, b.updelay_ms, b.downdelay_ms) == (o.miimon, o.updelay, o.downdelay),
                f"{b.miimon_ms}/{b.updelay_ms}/{b.downdelay_ms} ms",
            ),
        ]
    return out


def _reconnect_and_check(
    params: Params, name: str, deadline: float, options: BondOptions | None
) -> tuple[Host | None, list[Check]]:
    """Open a fresh SSH session and read the bonds until they verify or the deadline passes."""
    host: Host | None = None
    checks: list[Check] = [Check(name, "reconnect over SSH", False, "no attempt finished before the deadline")]
    while time.monotonic() < deadline:
        try:
            host = host or connect(params, name)
            checks = bond_checks(params, name, _gather_node(host, params).bonds, options)
            if all(c.ok for c in checks):
                break
        except (RemoteError, FactParseError) as e:
            checks = [Check(name, "reconnect over SSH", False, str(e).splitlines()[0])]
            host = None
        time.sleep(2)
    return host, checks


def _safe_apply(
    hosts: MutableMapping[str, Host], params: Params, name: str, revert_after_s: int, options: BondOptions | None
) -> tuple[OutcomeKind, str]:
    """Install the files under a revert timer; cancel the timer only after a fresh SSH session sees the bonds healthy."""
    h = hosts[name]
    files = render_all_interfaces(params, options)[name]
    bad = [c for c in validate_on_node(h, params, files, options) if not c.ok]
    if bad:
        return "failed", f"rendered files do not validate, nothing written: {_listed(bad)}"
    steps = safe_apply_steps(params, revert_after_s)
    if h.run(steps.precheck, check=False).ok:
        return "failed", (
            f"a revert timer from an earlier run ({REVERT_UNIT}.timer) is still armed; let it fire (it restores "
            f"the old files) or stop it with `systemctl stop {REVERT_UNIT}.timer`, then run again"
        )
    h.run(steps.prepare)
    for fname, text in files.items():
        h.write_bytes(f"{WORK_DIR}/staged/{fname}", text.encode())
    h.write_bytes(f"{WORK_DIR}/apply.sh", apply_script(params).encode(), mode=0o755)
    h.write_bytes(f"{WORK_DIR}/revert.sh", revert_script(params).encode(), mode=0o755)
    h.run(steps.backup)
    h.run(steps.arm)
    armed_at = time.monotonic()
    deadline = armed_at + revert_after_s - CONFIRM_MARGIN_S
    try:
        r = h.run(steps.apply, check=False, timeout=revert_after_s)
        if not r.ok:
            return "failed", f"ifup of the bonds failed (exit {r.exit_code}: {_tail(r)}); {_revert_now(h, steps)}"
    except RemoteError:
        pass  # the session may drop when the network under it changes; the fresh session below decides
    host, checks = _reconnect_and_check(params, name, deadline, options)
    if host is None:
        h.close()
        lost = f"no SSH session within {revert_after_s} s after applying (the new network config cut this node off)"
        back, how = _await_revert(params, name, armed_at, revert_after_s)
        if back is not None:
            hosts[name] = back
        return "failed", f"{lost}; {how}"
    h.close()
    hosts[name] = host
    bad = [c for c in checks if not c.ok]
    if bad:
        return "failed", f"bonds did not verify ({_listed(bad)}); {_revert_now(host, steps)}"
    host.run(steps.cancel)
    state = host.run(steps.confirm, check=False).stdout.strip()
    if state == "active":
        return "failed", f"bonds verified but {REVERT_UNIT}.timer is still active: it will revert; stop it by hand"
    bonds = ", ".join(bond_names(params))
    return "changed", f"{', '.join(files)} installed; {bonds} verified; revert timer cancelled ({state})"


def _await_revert(params: Params, name: str, armed_at: float, revert_after_s: int) -> tuple[Host | None, str]:
    """After a lost node: wait for its revert timer to fire and SSH to come back; say what happened."""
    give_up = armed_at + revert_after_s + REVERT_GRACE_S
    while time.monotonic() < give_up:
        try:
            host = connect(params, name)
            marker = host.run(["cat", f"{WORK_DIR}/{REVERTED_FILE}"], check=False)
        except RemoteError:
            time.sleep(1)
            continue
        back_after = time.monotonic() - armed_at
        if not marker.ok:  # reachable, yet the revert has not run: it still will, when the timer fires
            host.close()
            time.sleep(1)
            continue
        bonds = _gather_node(host, params).bonds
        now = ", ".join(f"{b.name} over {'+'.join(s.name for s in b.slaves)}" for b in bonds.values()) or "no bonds"
        return host, (
            f"the revert timer fired after {revert_after_s} s and restored the old files and addresses "
            f"(now: {now}); node reachable again over SSH {back_after:.0f} s after the apply"
        )
    return None, (
        f"the revert timer ({revert_after_s} s) should have restored the old files, but the node was still "
        f"unreachable {revert_after_s + REVERT_GRACE_S} s after the apply; use its console"
    )


def _revert_now(host: Host, steps: SafeApplySteps) -> str:
    """Run the revert at once instead of waiting for the timer; the session may drop while it runs."""
    try:
        host.run(steps.revert_now, check=False)
        return "reverted to the old files now"
    except RemoteError:
        return "revert started; the session dropped while networking restarted"


def apply(
    hosts: MutableMapping[str, Host],
    params: Params,
    plan: Plan,
    dry_run: bool = True,
    revert_after_s: int = 60,
    options: BondOptions | None = None,
) -> StageResult:
    """Carry out the plan; where bonding cannot apply, validate the rendered files and record why.

    A dry run touches nothing. After a real apply, `hosts[node]` is replaced by the fresh
    session that confirmed the bonds.
    """
    if plan.stage != STAGE:
        raise ValueError(f"this is a plan for {plan.stage!r}; make one with bonding.plan(params, facts)")
    if revert_after_s < MIN_REVERT_S:
        raise ValueError(
            f"revert_after_s={revert_after_s} is too short to reconnect and check; use {MIN_REVERT_S} or more"
        )
    result = StageResult(STAGE, dry_run=dry_run)
    for n in params.nodes:
        name = n.name
        if name in plan.not_applicable:
            reason = plan.not_applicable[name]
            if dry_run:
                result.add(name, "not applied", f"{reason}; dry run: nothing validated or written")
                continue
            files = render_all_interfaces(params, options)[name]
            bad = [c for c in validate_on_node(_host(hosts, name), params, files, options) if not c.ok]
            if bad:
                result.add(name, "failed", f"{reason}; and the rendered files do not validate: {_listed(bad)}")
            else:
                done = "rendered files validated on the node (ifquery, ifup --no-act), nothing written"
                result.add(name, "not applied", f"{reason}; {done}")
        elif not plan.for_node(name):
            result.add(name, "unchanged", plan.no_change.get(name, ""))
        elif dry_run:
            result.add(name, "not applied", "dry run: would " + "; ".join(c.action for c in plan.for_node(name)))
        else:
            result.add(name, *_safe_apply(hosts, params, name, revert_after_s, options))
    return result


# --------------------------------------------------------------------- verify


def verify(hosts: Mapping[str, Host], params: Params, options: BondOptions | None = None) -> Verification:
    """Live bonds where the kernel can bond, honest rows and file validation where it cannot; addresses intact.

    Read-only apart from the validation's private temp dir, which is removed.
    """
    v = Verification(STAGE)
    wanted = render_all_interfaces(params, options)
    for n in params.nodes:
        h = _host(hosts, n.name)
        f = _gather_node(h, params)
        if f.driver:
            v.checks += bond_checks(params, n.name, f.bonds, options)
        else:
            kinds = ", ".join(f"{b} is a plain {f.kind(b)} link" for b in bond_names(params))
            claimed = bool(f.bonds) or any(f.kind(b) == "bond" for b in bond_names(params))
            v.add(n.name, "no bond claimed without a driver", not claimed, f"{NO_DRIVER}; {kinds}, not a bond")
            v.checks += validate_on_node(h, params, wanted[n.name], options)
        nets = (("private", params.networks.private, n.private_ip), ("public", params.networks.public, n.public_ip))
        for label, net, ip in nets:
            cidr = f"{ip}/{net.subnet.prefixlen}"
            on = [link.name for link in f.links.values() if cidr in link.addresses]
            ok = net.bond in on or (not f.driver and bool(on))
            where = f"on {', '.join(on)}" if on else "missing: connectivity lost?"
            v.add(n.name, f"{label} address {cidr} on {net.bond}", ok, where)
    return v
