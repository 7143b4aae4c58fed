"""Stage 00: preflight checks, then the cluster packages, on every node.

Preflight reads each node and checks what the later stages take for granted:
a supported Debian release, the hostname the params give (corosync and
pacemaker know a node by it), the params' interfaces, the other nodes
reachable on both networks, a synchronised clock, and apt free to install
(no lock held, no package held back, every package available). A check that
fails stops the stage before anything changes and names the node, the check
and the fix; warnings are shown and recorded but do not stop it.

Packages: what the node's release needs (`hakit.packages.cluster_packages`),
installed with `apt-get install --no-install-recommends` after an index
refresh. A dry run shows apt's own plan (`apt-get -s`). corosync and pacemaker
are masked while they install (their packaged config is a one-node cluster on
127.0.0.1) and left disabled, as stage 3 expects them.
"""

from __future__ import annotations

import html
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from .. import packages as pk
from ..ops import Command
from ..params import Params
from ..runner import Runner
from .base import Plan, Verification
from .driver import per_node

STAGE = "00 packages"
SKEW_WARN_S = 2.0  # a node's clock this far from this machine's is worth a warning
INSTALL_TIMEOUT = 1800.0
LOCK_FILES = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock",
              "/var/cache/apt/archives/lock")
APT_ENV = "DEBIAN_FRONTEND=noninteractive"
# Keep the admin's changed conffiles (none on a fresh host) and never ask.
APT_INSTALL = ("apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold")
APT_MARK = "---apt---"


@dataclass(frozen=True)
class NodeFacts:
    """What preflight and the package plan need to know about one node."""

    node: str
    os_id: str
    version_id: str
    codename: str
    uname: str
    links: frozenset[str]
    addresses: dict[str, str]  # ip -> interface
    time_service: str  # the one that runs ("systemd-timesyncd (synchronised)", "chrony", ...) or "none"
    skew_s: float | None  # node clock minus this machine's, at the read
    wanted: tuple[str, ...]  # the packages this node's release needs
    installed: dict[str, pk.Installed]
    holds: frozenset[str]
    locks: tuple[str, ...]  # "<file> held by PID n (comm)"
    index_files: int  # Packages indices in /var/lib/apt/lists (0: apt-get update never ran)
    ping: bool
    reach: dict[str, bool]  # peer address -> answered one ping
    apt: pk.AptPlan

    @property
    def supported(self) -> bool:
        return self.os_id == "debian" and self.codename in pk.CODENAMES

    @property
    def missing(self) -> list[str]:
        return [p for p in self.wanted if not (p in self.installed and self.installed[p].ok)]


@dataclass(frozen=True)
class Check:
    node: str
    check: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True  # False: a warning (shown and recorded, the stage goes on)

    @property
    def state(self) -> str:
        return "ok" if self.ok else ("FAIL" if self.blocking else "warn")


@dataclass(frozen=True, repr=False)
class PackagesFacts:
    nodes: dict[str, NodeFacts]
    checks: list[Check] = field(default_factory=list)

    def __getitem__(self, node: str) -> NodeFacts:
        return self.nodes[node]

    def checks_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"node": c.node, "check": c.check, "state": c.state, "detail": c.detail, "fix": c.fix}
                             for c in self.checks], columns=["node", "check", "state", "detail", "fix"])

    def packages_frame(self) -> pd.DataFrame:
        """One row per package: per node its installed version, or what apt would install."""
        names: list[str] = []
        for f in self.nodes.values():
            names += [p for p in f.wanted if p not in names]
        rows = []
        for p in names:
            row = {"package": p}
            for f in self.nodes.values():
                got = f.installed.get(p)
                if got and got.ok:
                    row[f.node] = got.version
                elif p not in f.wanted:
                    row[f.node] = "-"
                else:
                    step = next((s for s in f.apt.steps if s.name == p), None)
                    row[f.node] = f"missing (apt: {step.version})" if step else "missing"
            rows.append(row)
        return pd.DataFrame(rows, columns=["package", *self.nodes])

    def apt_frame(self) -> pd.DataFrame:
        """apt's own plan per node (`apt-get -s install`): every package it would add."""
        rows = [{"node": f.node, "package": s.name, "version": s.version, "replaces": s.old or "", "from": s.origin}
                for f in self.nodes.values() if f.missing for s in f.apt.steps]
        return pd.DataFrame(rows, columns=["node", "package", "version", "replaces", "from"])

    def _repr_html_(self) -> str:
        parts = ["<h4>Preflight</h4>", self.checks_frame().to_html(index=False, escape=True),
                 "<h4>Cluster packages</h4>", self.packages_frame().to_html(index=False, escape=True)]
        apt = self.apt_frame()
        if len(apt):
            per_node = ", ".join(f"{n}: {c}" for n, c in apt.groupby("node", sort=False).size().items())
            parts += [f"<h4>apt's plan (apt-get -s): {html.escape(per_node)} packages</h4>",
                      "<details><summary>every package</summary>", apt.to_html(index=False, escape=True), "</details>"]
        return "".join(parts)

    def __repr__(self) -> str:
        return self.checks_frame().to_string(index=False) + "\n\n" + self.packages_frame().to_string(index=False)


def fence_agent(params: Params) -> str | None:
    f = params.pacemaker.fencing
    return f.agent if params.pacemaker.stonith_enabled and f is not None else None


def peer_addresses(params: Params, node: str) -> list[str]:
    return [str(ip) for n in params.nodes if n.name != node for ip in (n.private_ip, n.public_ip)]


def wanted_for(params: Params, codename: str) -> tuple[str, ...]:
    """The cluster packages a node of this release needs (none for a release hakit does not support)."""
    return (pk.cluster_packages(codename, fence_agent(params), qdevice=params.quorum_device is not None)
            if codename in pk.CODENAMES else ())


def installed_query(params: Params) -> str:
    """`dpkg-query` for every package any supported release may need: `name version status` lines."""
    every = sorted({p for r in pk.CODENAMES for p in wanted_for(params, r)})
    return f"dpkg-query -W -f='${{Package}} ${{Version}} ${{db:Status-Abbrev}}\\n' {' '.join(every)} 2>/dev/null"


def probe(params: Params, node: str) -> str:
    """The read-only shell probe of one node (nothing in it writes)."""
    peers = " ".join(peer_addresses(params, node))
    locks = " ".join(LOCK_FILES)
    return "\n".join([
        '. /etc/os-release 2>/dev/null; echo "os ${ID:-unknown} ${VERSION_ID:-unknown} ${VERSION_CODENAME:-unknown}"',
        'echo "uname $(uname -n)"',
        'for i in /sys/class/net/*; do echo "link ${i##*/}"; done',
        'ip -o -4 addr show 2>/dev/null | while read -r _ dev _ addr _; do echo "addr $dev $addr"; done',
        # A time service, read without timedatectl (which would start systemd-timedated over D-Bus).
        'for u in systemd-timesyncd chrony chronyd ntpsec ntp openntpd; do '
        '[ "$(systemctl is-active "$u" 2>/dev/null)" = active ] && echo "timesvc $u"; done',
        '[ -e /run/systemd/timesync/synchronized ] && echo "timesvc-synced yes"',
        f"{installed_query(params)} | sed 's/^/pkg /'",
        # Holds from dpkg's own database (apt-mark would rebuild apt's binary cache on the node).
        # ('*' also lists packages dpkg knows only by a selection, as a hold on one not installed)
        "dpkg-query -W -f='${Status} ${Package}\\n' '*' 2>/dev/null | awk '$1 == \"hold\" {print \"hold\", $4}'",
        # A held lock: /proc/locks lines on the lock files' inodes (apt takes OFD locks: no PID there),
        # and the processes that have those files open (the holder).
        f'for f in {locks}; do i=$(stat -c %i "$f" 2>/dev/null) || continue; d=$(stat -c %D "$f"); '
        'grep -E " [0-9a-f]+:[0-9a-f]+:$i " /proc/locks | sed "s|^|plock $f $d |"; done',
        "ls -l /proc/[0-9]*/fd 2>/dev/null | awk '/^\\/proc\\/[0-9]+\\/fd:$/ {split($0, a, \"/\"); pid = a[3]} "
        "$NF ~ /^\\/var\\/(lib\\/dpkg\\/lock|lib\\/apt\\/lists\\/lock|cache\\/apt\\/archives\\/lock)/ {print pid, $NF}' "
        '| while read -r pid f; do echo "lockholder $f $pid $(cat /proc/$pid/comm 2>/dev/null)"; done',
        'echo "lists $(ls /var/lib/apt/lists/ 2>/dev/null | grep -c \'_Packages$\')"',
        'if command -v ping >/dev/null 2>&1; then echo "ping yes"; '
        f'for ip in {peers}; do (if ping -c1 -W1 -q "$ip" >/dev/null 2>&1; then echo "reach $ip yes"; '
        'else echo "reach $ip no"; fi) & done; wait; else echo "ping no"; fi',
        f'echo "{APT_MARK}"',
        # The release's list is chosen after reading os-release, in the same shell.
        'case "${VERSION_CODENAME:-}" in '
        + " ".join(f"{r}) W='{' '.join(wanted_for(params, r))}';;" for r in pk.CODENAMES)
        + " *) W='';; esac",
        # Empty cache paths: apt builds its package cache in memory and writes nothing on the node.
        'if [ -n "$W" ]; then LC_ALL=C apt-get -s -q -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= '
        'install --no-install-recommends $W 2>&1; echo "apt-exit $?"; fi',
    ])


def parse(node: str, output: str, params: Params, skew_s: float | None = None) -> NodeFacts:
    """Pure: one node's probe output (and its clock's offset from this machine's, if read) -> NodeFacts."""
    head, _, apt_text = output.partition(APT_MARK)
    seen: dict[str, list[str]] = {}
    for line in head.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            seen.setdefault(key, []).append(value.strip())
    os_parts = (seen.get("os", ["unknown unknown unknown"])[0].split() + ["unknown"] * 3)[:3]
    addresses = {}
    for a in seen.get("addr", []):
        dev, _, cidr = a.partition(" ")
        if cidr:
            addresses[cidr.split("/")[0]] = dev
    installed = pk.parse_dpkg_query("\n".join(seen.get("pkg", [])))
    reach = {}
    for r in seen.get("reach", []):
        ip, _, ans = r.partition(" ")
        reach[ip] = ans == "yes"
    apt_lines = apt_text.strip().splitlines()
    exit_code = 0
    if apt_lines and apt_lines[-1].startswith("apt-exit "):
        exit_code = int(apt_lines.pop().split()[1])
    codename = os_parts[2]
    lists = seen.get("lists", ["0"])[0]
    return NodeFacts(
        node=node, os_id=os_parts[0], version_id=os_parts[1], codename=codename,
        uname=seen.get("uname", [""])[0], links=frozenset(seen.get("link", [])), addresses=addresses,
        time_service=_time_service(seen), skew_s=skew_s, wanted=wanted_for(params, codename), installed=installed,
        holds=frozenset(seen.get("hold", [])),
        locks=held_locks(seen.get("plock", []), seen.get("lockholder", [])),
        index_files=int(lists) if lists.isdigit() else 0, ping=seen.get("ping", ["no"])[0] == "yes", reach=reach,
        apt=pk.parse_apt_simulation("\n".join(apt_lines), exit_code),
    )


def _time_service(seen: dict[str, list[str]]) -> str:
    """"<service> (synchronised)", "<service>" or "none": which time service runs (read from systemd)."""
    running = seen.get("timesvc", [])
    if not running:
        return "none"
    synced = running[0] == "systemd-timesyncd" and seen.get("timesvc-synced") == ["yes"]
    return f"{running[0]} (synchronised)" if synced else running[0]


def _dev(stat_hex: str) -> str:
    """`stat -c %D` (dev_t in hex) -> /proc/locks' MAJOR:MINOR (hex), as the kernel splits it."""
    dev = int(stat_hex, 16)
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return f"{major:02x}:{minor:02x}"


def held_locks(plocks: list[str], holders: list[str]) -> tuple[str, ...]:
    """Pure: `plock FILE DEV <a /proc/locks line>` + `lockholder FILE PID COMM` -> "FILE held by ..."."""
    out: list[str] = []
    done: set[str] = set()
    for line in plocks:
        parts = line.split()
        if len(parts) < 4:
            continue
        path, dev, fields = parts[0], parts[1], [x for x in parts[2:] if x != "->"]
        where = next((x for x in fields if x.count(":") == 2), "")
        if not where.lower().startswith(_dev(dev) + ":") or path in done:
            continue
        done.add(path)
        who = [f"PID {h.split()[1]} ({' '.join(h.split()[2:]) or '?'})" for h in holders
               if h.split()[:1] == [path] and len(h.split()) > 1]
        out.append(f"{path} held by " + (", ".join(who) if who else "a process of another namespace"))
    return tuple(out)


def preflight(params: Params, nodes: Mapping[str, NodeFacts]) -> list[Check]:
    """Pure: every check on every node, in params order."""
    checks: list[Check] = []
    supported = ", ".join(f"Debian {v} ({c})" for v, c in pk.SUPPORTED.items())
    codenames = {f.codename for f in nodes.values() if f.supported}
    for n in params.nodes:
        f = nodes[n.name]
        add = lambda *a, **k: checks.append(Check(n.name, *a, **k))  # noqa: E731
        rel = f"{f.os_id} {f.version_id} ({f.codename})"
        add("release", f.supported, rel if f.supported else f"{rel} is not supported; hakit supports {supported}",
            "" if f.supported else f"install {supported} on {n.name}")
        if f.supported and len(codenames) > 1:
            add("same release on every node", False, f"nodes run {', '.join(sorted(codenames))}",
                "fine during a rolling upgrade; otherwise upgrade every node to one release", blocking=False)
        add("hostname", f.uname == n.name,
            f"uname -n says {f.uname!r}" + ("" if f.uname == n.name else f"; the params call this node {n.name!r}"),
            "" if f.uname == n.name else
            f"`hostnamectl set-hostname {n.name}` on the node (and its entry in /etc/hosts), or fix nodes[].name")
        for role, net, ip in (("private", params.networks.private, n.private_ip),
                              ("public", params.networks.public, n.public_ip)):
            has_bond = net.bond in f.links
            slaves = [s for s in net.slaves if s in f.links]
            ok = has_bond or len(slaves) == len(net.slaves)
            detail = (f"{net.bond} present" if has_bond else f"slaves {', '.join(net.slaves)} present (stage 1 makes {net.bond})"
                      if ok else f"neither {net.bond} nor both of {', '.join(net.slaves)}; the node has "
                      f"{', '.join(sorted(f.links - {'lo'})) or 'no interfaces'}")
            add(f"{role} interfaces", ok, detail,
                "" if ok else f"correct networks.{role}.bond / slaves in the params, or the NIC names on the node")
            dev = f.addresses.get(str(ip))
            add(f"{role} address {ip}", True,
                f"on {dev}" if dev else f"not configured yet: stage 1 puts it on {net.bond}", blocking=False)
            if dev:
                _reach(checks, params, nodes, n.name, role, f)
        if f.time_service != "none":
            add("time service", True, f"{f.time_service} running")
        else:
            add("time service", False, "no time service runs (systemd-timesyncd, chrony, ntpsec, ...)",
                "enable one on the node (apt-get install systemd-timesyncd, or chrony)", blocking=False)
        if f.skew_s is not None and abs(f.skew_s) > SKEW_WARN_S:
            add("clock skew", False, f"{f.skew_s:+.1f} s from this machine",
                "synchronise the clocks: logs and time-based rules (failure-timeout) compare them", blocking=False)
        if not f.supported:
            continue
        add("apt free", not f.locks, "; ".join(f.locks) or "no apt/dpkg lock held",
            "" if not f.locks else "wait for that apt/dpkg run (unattended-upgrades?) to finish, then run again")
        held = sorted(f.holds & ({*f.missing} | {s.name for s in f.apt.steps}))
        add("no package held", not held, f"held: {', '.join(held)}" if held else "none of the cluster's packages held",
            "" if not held else f"`apt-mark unhold {' '.join(held)}` if the hold is no longer wanted")
        if f.missing and f.index_files == 0:
            add("packages available", True, "apt has no package index yet: the plan refreshes it first", blocking=False)
        elif f.missing:
            err = f.apt.error
            add("packages available", err is None,
                f"apt-get -s: {len(f.apt.steps)} package(s) to install" if err is None else f"apt-get -s: {err}",
                "" if err is None else f"check the node's apt sources (/etc/apt/sources.list*) carry Debian "
                f"{f.codename} main, then `apt-get update`")
    return checks


def _reach(checks: list[Check], params: Params, nodes: Mapping[str, NodeFacts], name: str, role: str,
           f: NodeFacts) -> None:
    """The peers on one network, where both ends have their address already."""
    for peer in params.nodes:
        if peer.name == name:
            continue
        ip = str(peer.private_ip if role == "private" else peer.public_ip)
        if ip not in nodes[peer.name].addresses:
            continue
        if not f.ping:
            checks.append(Check(name, f"reaches {peer.name} ({role})", False, "ping is not installed: not checked",
                                "apt-get install iputils-ping to have it checked", blocking=False))
            continue
        ok = f.reach.get(ip, False)
        checks.append(Check(name, f"reaches {peer.name} ({role})", ok, f"{ip} answers ping" if ok else
                            f"{ip} does not answer ping",
                            "" if ok else "check cables, switch ports, VLANs and firewalls between the nodes "
                            "(corosync also needs UDP 5405 both ways)"))


def gather(hosts: Mapping[str, Runner], params: Params) -> PackagesFacts:
    """Read-only: every node's preflight facts and apt's simulated plan."""
    def one(h: Runner) -> NodeFacts:
        out = h.run(probe(params, h.name), timeout=120).stdout
        return parse(h.name, out, params, clock_skew(h))
    nodes = per_node(hosts, [n.name for n in params.nodes], one)
    return PackagesFacts(nodes, preflight(params, nodes))


def clock_skew(h: Runner) -> float | None:
    """The node's clock minus this machine's, read in one short command (the middle of its round trip)."""
    t0 = time.time()
    out = h.run("date +%s.%N").stdout.strip()
    try:
        return float(out) - (t0 + time.time()) / 2
    except ValueError:
        return None


def plan(params: Params, facts: PackagesFacts) -> Plan:
    """Pure: refuse on any failed check; else, per node, install what is missing (nothing if all is there)."""
    p = Plan(STAGE, order=[n.name for n in params.nodes])
    for c in facts.checks:
        if not c.ok and c.blocking:
            prev = p.blocked.get(c.node)
            why = f"{c.check}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
            p.blocked[c.node] = f"{prev}; {why}" if prev else why
    p.notes += [f"{c.node}: {c.check}: {c.detail} ({c.fix})" for c in facts.checks if not c.ok and not c.blocking]
    if p.blocked:
        return p
    for n in params.nodes:
        f = facts[n.name]
        missing = f.missing
        if not missing:
            p.no_change[n.name] = f"all {len(f.wanted)} cluster packages installed (Debian {f.version_id})"
            continue
        held = [u for pkg, u in pk.HELD_UNITS.items() if pkg in missing]
        if held:
            p.ops.append(Command(node=n.name, argv=("systemctl", "mask", *held), label="hold back cluster units",
                                 reason=f"{', '.join(held)} must not start on install (a one-node cluster on 127.0.0.1)"))
            p.undo.append(Command(node=n.name, argv=("systemctl", "unmask", *held), label="unmask",
                                  reason="the install failed: the units are no longer held back"))
        p.ops.append(Command(node=n.name, argv=("apt-get", "update", "-q"), timeout=600, label="refresh apt index",
                             reason="install from the archive's current index"))
        steps = f.apt.steps
        versions = ", ".join(f"{s.name} {s.version}" for s in steps if s.name in missing)
        apt_said = (f"apt-get -s: {len(steps)} packages ({versions})" if steps
                    else "apt's plan shows once the index exists")
        p.ops.append(Command(node=n.name, argv=f"{APT_ENV} {shlex.join(APT_INSTALL + tuple(missing))}",
                             timeout=INSTALL_TIMEOUT, label=f"install {len(missing)} cluster packages",
                             reason=f"missing: {', '.join(missing)}; {apt_said}",
                             hint="see /var/log/apt/term.log on the node"))
        if held:
            p.ops.append(Command(node=n.name, argv=f"systemctl unmask {' '.join(held)} && systemctl disable {' '.join(held)}",
                                 label="leave corosync and pacemaker off",
                                 reason="installed and disabled: stage 3 configures and starts them"))
    if not p.ops:
        return p
    if any(facts[n].index_files == 0 for n in facts.nodes if facts[n].missing):
        p.notes.append("a node has no apt index yet: apt's plan is known only after `apt-get update`")
    else:
        p.notes.append("apt's plan above is from each node's current index; the real run refreshes the index "
                       "first, so versions may be newer")
    return p


class PackagesStage:
    """Stage 00 with its params bound (see `stages.driver.Stage`)."""

    name = STAGE

    def __init__(self, params: Params):
        self.params = params

    def gather(self, hosts: Mapping[str, Runner]) -> PackagesFacts:
        return gather(hosts, self.params)

    def plan(self, facts: PackagesFacts) -> Plan:
        return plan(self.params, facts)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params)


def verify(hosts: Mapping[str, Runner], params: Params) -> Verification:
    """Read-only: every cluster package installed (its version is the record), corosync and pacemaker not masked."""
    v = Verification(STAGE)
    units = " ".join(pk.HELD_UNITS.values())
    facts = per_node(hosts, [n.name for n in params.nodes], lambda h: (
        gather_installed(h, params), h.run(f"systemctl is-enabled {units} 2>/dev/null; true").stdout.split()))
    for n in params.nodes:
        (codename, installed), states = facts[n.name]
        wanted = wanted_for(params, codename)
        if not wanted:
            v.add(n.name, "release supported", False, f"{codename}: run this stage to see why")
        for p in wanted:
            got = installed.get(p)
            v.add(n.name, f"{p} installed", bool(got and got.ok), got.version if got and got.ok else "not installed")
        v.add(n.name, "corosync and pacemaker not masked", "masked" not in states, " ".join(states) or "-")
    return v


def gather_installed(h: Runner, params: Params) -> tuple[str, dict[str, pk.Installed]]:
    """The node's release codename and the cluster packages dpkg has installed."""
    out = h.run(f". /etc/os-release 2>/dev/null; echo \"$VERSION_CODENAME\"; {installed_query(params)}; true").stdout
    first, _, rest = out.partition("\n")
    return first.strip(), pk.parse_dpkg_query(rest)

