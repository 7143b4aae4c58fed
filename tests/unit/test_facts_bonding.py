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
