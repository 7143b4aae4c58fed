"""/proc/net/bonding parser on fixtures: healthy, failed over, active slave down, all down."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hakit.facts import BondSlave, FactParseError, parse_proc_bonding


def test_healthy_bond(load_fixture: Callable[[str], str]) -> None:
    bond = parse_proc_bonding(load_fixture("bond0-healthy.txt"), "bond0")
    assert bond.name == "bond0" and bond.driver_version == "v6.1.0-18-amd64"
    assert bond.is_active_backup and bond.fail_over_mac is None
    assert (bond.primary_slave, bond.primary_reselect, bond.active_slave) == ("eth0", "always", "eth0")
    assert (bond.miimon_ms, bond.updelay_ms, bond.downdelay_ms) == (100, 200, 200)
    assert bond.peer_notification_delay_ms == 0 and bond.arp_interval_ms is None
    assert bond.is_up and bond.active_slave_up and bond.on_primary
    assert bond.slaves == (
        BondSlave("eth0", "up", 0, "52:54:00:4d:00:11", 10000, "full", 0),
        BondSlave("eth1", "up", 0, "52:54:00:4d:01:11", 10000, "full", 0),
    )
    assert bond.slaves_down == ()


def test_failed_over_bond(load_fixture: Callable[[str], str]) -> None:
    bond = parse_proc_bonding(load_fixture("bond0-failed-over.txt"), "bond0")
    assert bond.active_slave == "eth1" and not bond.on_primary
    assert bond.is_up and bond.active_slave_up
    eth0 = bond.slave("eth0")
    assert (eth0.mii_status, eth0.link_failure_count, eth0.speed_mbps, eth0.duplex) == ("down", 1, None, None)
    assert bond.slaves_down == ("eth0",)


def test_active_slave_going_down(load_fixture: Callable[[str], str]) -> None:
    bond = parse_proc_bonding(load_fixture("bond0-active-going-down.txt"), "bond0")
    assert bond.active_slave == "eth0" and bond.on_primary
    assert bond.slave("eth0").mii_status == "going down"
    assert not bond.active_slave_up  # still selected, but its link is failing
    assert bond.slaves_down == ("eth0",)


def test_bond_with_every_slave_down(load_fixture: Callable[[str], str]) -> None:
    bond = parse_proc_bonding(load_fixture("bond1-all-down.txt"), "bond1")
    assert bond.active_slave is None and not bond.active_slave_up
    assert not bond.is_up and bond.mii_status == "down"
    assert bond.primary_slave == "eth2"
    assert bond.slaves_down == ("eth2", "eth3")
    assert [s.link_failure_count for s in bond.slaves] == [2, 1]
    with pytest.raises(KeyError, match="bond1 has no slave 'eth0'; slaves: eth2, eth3"):
        bond.slave("eth0")


def test_fail_over_mac_arp_and_no_primary(load_fixture: Callable[[str], str]) -> None:
    text = (
        load_fixture("bond0-healthy.txt")
        .replace("(active-backup)\n", "(active-backup) (fail_over_mac active)\n")
        .replace("Primary Slave: eth0 (primary_reselect always)", "Primary Slave: None")
        .replace(
            "Peer Notification Delay (ms): 0\n",
            "Peer Notification Delay (ms): 0\nARP Polling Interval (ms): 1000\nARP Missed Max: 2\n"
            "ARP IP target/s (n.n.n.n form): 10.77.1.1, 10.77.1.254\n",
        )
    )
    bond = parse_proc_bonding(text, "bond0")
    assert bond.is_active_backup and bond.fail_over_mac == "active"
    assert bond.primary_slave is None and not bond.on_primary
    assert bond.arp_interval_ms == 1000 and bond.arp_targets == ("10.77.1.1", "10.77.1.254")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no 'Bonding Mode:' line"),
        (
            "Bonding Mode: fault-tolerance (active-backup)\nMII Status: up\nMII Polling Interval (ms): x\n",
            "line 3: cannot read the value of 'MII Polling Interval (ms)'",
        ),
        (
            "Bonding Mode: fault-tolerance (active-backup)\nFavourite Colour: blue\n",
            "unknown key 'Favourite Colour' in the bond header",
        ),
        (
            "Bonding Mode: fault-tolerance (active-backup)\n\nSlave Interface: eth0\nSpeed: Unknown\n",
            "slave eth0 has no mii_status line",
        ),
    ],
)
def test_errors(text: str, needle: str) -> None:
    with pytest.raises(FactParseError) as err:
        parse_proc_bonding(text, "bond0")
    assert needle in str(err.value) and "/proc/net/bonding/bond0" in str(err.value)


# ------------------------------------------------------------------ stage 1's probe: one command, a pure parser

from hakit.facts.base import read  # noqa: E402
from hakit.facts.bonding import (  # noqa: E402
    Declaration,
    Link,
    parse_declarations,
    parse_driver,
    parse_links,
    parse_probe,
    probe,
)
from hakit.runner import FakeRunner  # noqa: E402

# Captured from a lab node (kernel without bonding), `ip -j -d addr show` trimmed to the fields we read.
LAB_PROBE = """\
== driver
sysmodule no
modprobe 1 modprobe: FATAL: Module bonding not found in directory /lib/modules/6.18.44-fc-v769 
== links
[{"ifname":"lo","link_type":"loopback","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},\
{"ifname":"bond0","link_type":"ether","linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"10.77.0.11","prefixlen":24},\
{"family":"inet6","local":"fe80::87:5eff:fea4:fdf3","prefixlen":64}]}]
== config
/etc/network/interfaces:3:source /etc/network/interfaces.d/*
== bonding bond0
== bonding bond1
"""


def test_probe_of_a_lab_node_without_a_driver() -> None:
    p = parse_probe(LAB_PROBE, ["bond0", "bond1"])
    assert not p.driver and p.driver_detail.startswith("no /sys/module/bonding; `modprobe -n bonding`: modprobe: FATAL")
    assert p.links["lo"] == Link("lo", "loopback", ("127.0.0.1/8",))
    assert p.links["bond0"] == Link("bond0", "veth", ("10.77.0.11/24",))  # inet6 left out
    assert p.declarations == (Declaration("/etc/network/interfaces", 3, "source /etc/network/interfaces.d/*"),)
    assert p.bonds == {}


def test_probe_with_a_live_bond(load_fixture: Callable[[str], str]) -> None:
    out = "== driver\nsysmodule yes\n== bonding bond0\n" + load_fixture("bond0-healthy.txt") + "== bonding bond1\n"
    p = parse_probe(out, ["bond0", "bond1"])
    assert p.driver and list(p.bonds) == ["bond0"] and p.bonds["bond0"].active_slave == "eth0"
    assert p.links == {} and p.declarations == ()


@pytest.mark.parametrize(
    ("lines", "verdict"),
    [
        (["sysmodule yes", "modprobe 1 x"], (True, "loaded (/sys/module/bonding)")),
        (["sysmodule no", "modprobe 0 insmod /lib/modules/x/bonding.ko"], (True, "loadable (`modprobe -n bonding` succeeds)")),
        (["sysmodule no", "modprobe 1 "], (False, "no /sys/module/bonding; `modprobe -n bonding`: exit 1")),
        ([], (False, "no /sys/module/bonding; `modprobe -n bonding`: exit ?")),
    ],
)
def test_driver_verdict(lines: list[str], verdict: tuple[bool, str]) -> None:
    assert parse_driver(lines) == verdict


def test_declarations_skip_lines_that_are_not_grep_hits() -> None:
    got = parse_declarations(["/etc/network/interfaces:5:auto eth2", "grep: /x: No such file", "/a:b:c", "/f:7:   "])
    assert got == (Declaration("/etc/network/interfaces", 5, "auto eth2"),)


def test_links_that_are_not_json_name_the_command() -> None:
    with pytest.raises(FactParseError, match="ip -j -d addr show: not JSON"):
        parse_links("Error: something")


def test_probe_is_one_read_only_command_through_read() -> None:
    fact = probe(["bond0", "bond1"], ["/etc/network/interfaces", "/etc/network/interfaces.d/*"])
    host = FakeRunner("n1", strict=True).answer(r"^echo '== driver'", LAB_PROBE)
    assert read(host, fact).links["bond0"].kind == "veth"
    assert host.commands == [fact.command] and host.writes == []
    cmd = str(fact.command)
    assert "cat /proc/net/bonding/bond1 2>/dev/null || true" in cmd
    assert "/etc/network/interfaces /etc/network/interfaces.d/* || true" in cmd
    assert not any(w in cmd for w in (" rm ", "ifup", "ifdown", "systemctl", " > ", ">>"))  # nothing that writes
