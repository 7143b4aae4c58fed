"""Bonding facts: /proc/net/bonding/<bond>, and stage 1's one read-only probe of a node.

/proc/net/bonding format from drivers/net/bonding/bond_procfs.c (Linux 6.1, Debian
12's kernel): a version line, the bond's ``Key: value`` lines, then one
blank-line-separated block per slave starting with ``Slave Interface:``.

The probe (`probe`) is one shell line that prints the bonding driver's
availability, ``ip -j -d addr show``, the ifupdown lines that declare
interfaces, and each bond's status file; `parse_probe` reads it (pure).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from hakit.facts.base import Fact
from hakit.facts.errors import FactParseError

ACTIVE_BACKUP = "fault-tolerance (active-backup)"

_MODE_RE = re.compile(r"^(?P<mode>.*?)(?: \(fail_over_mac (?P<fom>[^)]+)\))?$")
_PRIMARY_RE = re.compile(r"^(?P<name>\S+)(?: \(primary_reselect (?P<reselect>[^)]+)\))?$")


@dataclass(frozen=True)
class BondSlave:
    """One enslaved NIC and its link state."""

    name: str
    mii_status: str  # "up", "down", "going down" (in downdelay), "going back" (in updelay)
    link_failure_count: int
    permanent_hw_addr: str | None = None
    speed_mbps: int | None = None  # None when the driver reports "Unknown"
    duplex: str | None = None
    queue_id: int | None = None

    @property
    def is_up(self) -> bool:
        return self.mii_status == "up"


@dataclass(frozen=True)
class BondStatus:
    """The bond's mode, timers, current active slave and every slave's state."""

    name: str
    mode: str
    mii_status: str
    miimon_ms: int
    updelay_ms: int
    downdelay_ms: int
    slaves: tuple[BondSlave, ...]
    driver_version: str | None = None
    fail_over_mac: str | None = None
    primary_slave: str | None = None
    primary_reselect: str | None = None
    active_slave: str | None = None
    peer_notification_delay_ms: int | None = None
    arp_interval_ms: int | None = None
    arp_targets: tuple[str, ...] = ()

    @property
    def is_active_backup(self) -> bool:
        return self.mode == ACTIVE_BACKUP

    @property
    def is_up(self) -> bool:
        return self.mii_status == "up"

    def slave(self, name: str) -> BondSlave:
        for s in self.slaves:
            if s.name == name:
                return s
        raise KeyError(
            f"{self.name} has no slave {name!r}; slaves: {', '.join(s.name for s in self.slaves) or 'none'}"
        )

    @property
    def active_slave_up(self) -> bool:
        """True only if there is an active slave and its link is up."""
        return self.active_slave is not None and self.slave(self.active_slave).is_up

    @property
    def slaves_down(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slaves if not s.is_up)

    @property
    def on_primary(self) -> bool:
        """Traffic runs over the configured primary slave (the article's normal state)."""
        return self.primary_slave is not None and self.active_slave == self.primary_slave


_INT_KEYS = {
    "MII Polling Interval (ms)": "miimon_ms",
    "Up Delay (ms)": "updelay_ms",
    "Down Delay (ms)": "downdelay_ms",
    "Peer Notification Delay (ms)": "peer_notification_delay_ms",
    "ARP Polling Interval (ms)": "arp_interval_ms",
}
# Known lines this parser reads past: 802.3ad and xmit-hash details, never set in active-backup.
_IGNORED_BOND_KEYS = {
    "Transmit Hash Policy",
    "ARP Missed Max",
    "LACP active",
    "LACP rate",
    "Min links",
    "Aggregator selection policy (ad_select)",
    "System priority",
    "System MAC address",
    "Active Aggregator Info",
    "802.3ad info",
}
_IGNORED_SLAVE_KEYS = {
    "Aggregator ID",
    "Actor Churn State",
    "Partner Churn State",
    "Actor Churned Count",
    "Partner Churned Count",
    "details actor lacp pdu",
    "details partner lacp pdu",
}


def parse_proc_bonding(text: str, name: str = "bond") -> BondStatus:
    """Parse the text of /proc/net/bonding/<name> into a BondStatus."""
    source = f"/proc/net/bonding/{name}"
    bond: dict[str, object] = {"name": name}
    slaves: list[BondSlave] = []
    slave: dict[str, object] | None = None
    lines = text.splitlines()

    def finish_slave(no: int) -> None:
        if slave is None:
            return
        for key in ("mii_status", "link_failure_count"):
            if key not in slave:
                raise FactParseError(source, f"slave {slave['name']} has no {key} line", no)
        slaves.append(BondSlave(**slave))  # type: ignore[arg-type]

    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Ethernet Channel Bonding Driver:"):
            bond["driver_version"] = line.partition(":")[2].strip()
            continue
        if raw[:1] in (" ", "\t"):
            continue  # indented 802.3ad aggregator and LACP details; none in active-backup
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            if key in _IGNORED_BOND_KEYS:
                continue
            raise FactParseError(source, "expected 'Key: value'", no, raw)
        if key == "Slave Interface":
            finish_slave(no)
            slave = {"name": value}
            continue
        try:
            if slave is not None:
                _slave_field(slave, key, value)
            else:
                _bond_field(bond, key, value)
        except ValueError:
            raise FactParseError(source, f"cannot read the value of {key!r}", no, raw) from None
        except KeyError:
            where = f"slave {slave['name']}" if slave is not None else "the bond header"
            raise FactParseError(source, f"unknown key {key!r} in {where}", no, raw) from None
    finish_slave(len(lines))

    for key, label in (
        ("mode", "Bonding Mode"),
        ("mii_status", "MII Status"),
        ("miimon_ms", "MII Polling Interval (ms)"),
        ("updelay_ms", "Up Delay (ms)"),
        ("downdelay_ms", "Down Delay (ms)"),
    ):
        if key not in bond:
            raise FactParseError(source, f"no '{label}:' line; is this a bonding status file?")
    return BondStatus(**bond, slaves=tuple(slaves))  # type: ignore[arg-type]


def _bond_field(bond: dict[str, object], key: str, value: str) -> None:
    if key == "Bonding Mode":
        m = _MODE_RE.match(value)
        if m is None:
            raise ValueError(value)
        bond["mode"], bond["fail_over_mac"] = m.group("mode"), m.group("fom")
    elif key == "Primary Slave":
        m = _PRIMARY_RE.match(value)
        if m is None:
            raise ValueError(value)
        if m.group("name") != "None":
            bond["primary_slave"] = m.group("name")
            bond["primary_reselect"] = m.group("reselect")
    elif key == "Currently Active Slave":
        bond["active_slave"] = None if value == "None" else value
    elif key == "MII Status":
        bond["mii_status"] = value
    elif key in _INT_KEYS:
        bond[_INT_KEYS[key]] = int(value)
    elif key == "ARP IP target/s (n.n.n.n form)":
        bond["arp_targets"] = tuple(t.strip() for t in value.split(",") if t.strip())
    elif key not in _IGNORED_BOND_KEYS:
        raise KeyError(key)


def _slave_field(slave: dict[str, object], key: str, value: str) -> None:
    if key == "MII Status":
        slave["mii_status"] = value
    elif key == "Speed":
        slave["speed_mbps"] = None if value == "Unknown" else int(value.removesuffix(" Mbps"))
    elif key == "Duplex":
        slave["duplex"] = None if value == "Unknown" else value
    elif key == "Link Failure Count":
        slave["link_failure_count"] = int(value)
    elif key == "Permanent HW addr":
        slave["permanent_hw_addr"] = value.lower()
    elif key == "Slave queue ID":
        slave["queue_id"] = int(value)
    elif key not in _IGNORED_SLAVE_KEYS:
        raise KeyError(key)


# --------------------------------------------------------------------- the stage-1 probe: one read-only command

# Lines of ifupdown config that declare or include interfaces (what the probe greps for).
STANZA_RE = r"^[[:space:]]*(auto|allow-[a-z-]+|iface|mapping|source|source-directory)[[:space:]]"


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
class Probe:
    """What the probe read on one node: bonding driver, links, ifupdown declarations, live bonds."""

    driver: bool
    driver_detail: str
    links: dict[str, Link]
    declarations: tuple[Declaration, ...]
    bonds: dict[str, BondStatus]  # parsed /proc/net/bonding/<bond>, where it exists


def probe_command(bonds: Sequence[str], config: Sequence[str]) -> str:
    """One read-only shell line; prints ``== <section>`` blocks that `parse_probe` reads.

    ``config`` are the ifupdown files (globs allowed) whose declarations are listed.
    """
    cats = "; ".join(
        f"echo '== bonding {b}'; cat {shlex.quote('/proc/net/bonding/' + b)} 2>/dev/null || true" for b in bonds
    )
    return (
        "echo '== driver'; "
        "if [ -d /sys/module/bonding ]; then echo 'sysmodule yes'; else echo 'sysmodule no'; fi; "
        "m=$(modprobe -n bonding 2>&1); echo \"modprobe $? $(echo $m | tr '\\n' ' ')\"; "
        "echo '== links'; ip -j -d addr show; "
        "echo '== config'; "
        f"grep -HnsE '{STANZA_RE}' {' '.join(config)} || true; " + cats
    )


def probe(bonds: Sequence[str], config: Sequence[str]) -> Fact[Probe]:
    """The probe as a fact: `read(host, probe(...))` gives a `Probe`."""
    names = tuple(bonds)
    return Fact("bonding probe", probe_command(names, config), lambda out: parse_probe(out, names), timeout=60)


def sections(output: str) -> dict[str, list[str]]:
    """Pure: split ``== name`` headed output into {name: lines}."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith("== "):
            current = out.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return out


def parse_driver(lines: Sequence[str]) -> tuple[bool, str]:
    """Pure: the probe's driver lines -> (bonding possible, why in words)."""
    drv = dict(line.split(" ", 1) for line in lines if " " in line)
    mp_code, _, mp_msg = drv.get("modprobe", "? ").partition(" ")
    if drv.get("sysmodule") == "yes":
        return True, "loaded (/sys/module/bonding)"
    if mp_code == "0":
        return True, "loadable (`modprobe -n bonding` succeeds)"
    return False, f"no /sys/module/bonding; `modprobe -n bonding`: {mp_msg.strip() or f'exit {mp_code}'}"


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


def parse_declarations(lines: Sequence[str]) -> tuple[Declaration, ...]:
    """Pure: `grep -Hn` lines (``path:line:text``) -> declarations."""
    out = []
    for line in lines:
        path, _, rest = line.partition(":")
        no, _, text = rest.partition(":")
        if no.isdigit() and text.strip():
            out.append(Declaration(path, int(no), text.strip()))
    return tuple(out)


def parse_probe(output: str, bonds: Sequence[str]) -> Probe:
    """Pure: the probe's output -> Probe (bonds whose status file is empty or absent are left out)."""
    sec = sections(output)
    driver, detail = parse_driver(sec.get("driver", []))
    live = {}
    for b in bonds:
        text = "\n".join(sec.get(f"bonding {b}", [])).strip()
        if text:
            live[b] = parse_proc_bonding(text + "\n", b)
    return Probe(driver, detail, parse_links("\n".join(sec.get("links", []))),
                 parse_declarations(sec.get("config", [])), live)


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
