"""Parse /proc/net/bonding/<bond>: the kernel bonding driver's status file.

Format from drivers/net/bonding/bond_procfs.c (Linux 6.1, Debian 12's kernel):
a version line, the bond's ``Key: value`` lines, then one blank-line-separated
block per slave starting with ``Slave Interface:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
