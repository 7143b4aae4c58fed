"""Parsers on output captured from the lab's real corosync and pacemaker."""

from pathlib import Path

from hakit.facts.corosync import parse_cfgtool_status, parse_quorumtool_status
from hakit.facts.pacemaker import parse_crm_mon

CAP = Path(__file__).parent / "fixtures" / "captured"


def pacemaker_nodes(xml_text: str) -> dict[str, bool]:
    """Node name -> online, through the one crm_mon parser."""
    return {name: n.online for name, n in parse_crm_mon(xml_text).nodes.items()}


def test_cfgtool_both_links_connected():
    r = parse_cfgtool_status((CAP / "cfgtool-2node-connected.txt").read_text())
    assert r.local_nodeid == 1 and r.transport == "knet"
    assert [ln.link_id for ln in r.links] == [0, 1]
    assert r.link(0).addr == "10.77.0.11" and r.link(1).addr == "10.77.1.11"
    assert r.link(0).peer(2).is_connected and r.link(1).peer(2).is_connected


def test_cfgtool_link0_cable_pulled_link1_carries_on():
    r = parse_cfgtool_status((CAP / "cfgtool-2node-link0-down.txt").read_text())
    assert not r.link(0).peer(2).is_connected
    assert r.link(1).peer(2).is_connected
    assert not r.all_connected


def test_quorum_survives_ring0_loss():
    for f in ("quorumtool-2node-quorate.txt", "quorumtool-2node-link0-down.txt"):
        q = parse_quorumtool_status((CAP / f).read_text())
        assert q.quorate and q.two_node and q.wait_for_all
        assert q.member_names() == ("vm-node1", "vm-node2")
        assert q.member("vm-node1").is_local


def test_crm_mon_nodes_online():
    assert pacemaker_nodes((CAP / "crm_mon-2node-online.xml").read_text()) == {"vm-node1": True, "vm-node2": True}


def test_crm_mon_nodes_online_with_resources_running():
    """Resources name their nodes too (<node name=... cached=...>); those are not membership."""
    got = pacemaker_nodes((CAP / "crm_mon-2node-resources.xml").read_text())
    assert got == {"vm-node1": True, "vm-node2": True}
