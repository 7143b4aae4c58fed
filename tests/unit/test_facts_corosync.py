"""corosync-cfgtool -s and corosync-quorumtool -s parsers on the fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hakit.facts import FactParseError, LinkPeer, parse_cfgtool_status, parse_quorumtool_status


def test_cfgtool_healthy_two_nodes(load_fixture: Callable[[str], str]) -> None:
    report = parse_cfgtool_status(load_fixture("cfgtool-2node-healthy.txt"))
    assert (report.local_nodeid, report.transport) == (1, "knet")
    assert [(link.link_id, link.transport, link.addr) for link in report.links] == [
        (0, "udp", "10.77.0.11"),
        (1, "udp", "10.77.1.11"),
    ]
    assert report.link(0).peers == (LinkPeer(1, "localhost"), LinkPeer(2, "connected"))
    assert report.all_connected
    assert report.reachable_nodeids() == {2}


def test_cfgtool_one_link_disconnected(load_fixture: Callable[[str], str]) -> None:
    report = parse_cfgtool_status(load_fixture("cfgtool-2node-link1-down.txt"))
    assert report.local_nodeid == 2
    assert report.link(0).all_connected
    assert report.link(1).disconnected == (1,)
    assert report.link(1).peer(1).state == "disconnected"
    assert report.link(1).peer(2).is_local
    assert not report.all_connected
    assert report.reachable_nodeids() == {1}  # still reachable over link 0


def test_cfgtool_dead_node_is_disconnected_on_every_link(load_fixture: Callable[[str], str]) -> None:
    report = parse_cfgtool_status(load_fixture("cfgtool-3node-node3-down.txt"))
    assert [link.disconnected for link in report.links] == [(3,), (3,)]
    assert report.reachable_nodeids() == {1}
    with pytest.raises(KeyError, match="link 0 lists no node 7"):
        report.link(0).peer(7)
    with pytest.raises(KeyError, match="no link 5"):
        report.link(5)


def test_cfgtool_tolerates_spaces_instead_of_tabs(load_fixture: Callable[[str], str]) -> None:
    text = load_fixture("cfgtool-2node-healthy.txt").replace("\t", "        ")
    assert parse_cfgtool_status(text) == parse_cfgtool_status(load_fixture("cfgtool-2node-healthy.txt"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no 'Local node ID' line"),
        ("LINK ID 0 udp\n", "line 1: expected 'Local node ID"),
        ("Local node ID 1, transport knet\nLINK ID 0 udp\n\tstatus:\n", "link 0 has no 'addr"),
        (
            "Local node ID 1, transport knet\nLINK ID 0 udp\n\taddr\t= 10.0.0.1\n\tstatus\t= n3\n",
            "brief output (-b)",
        ),
        (
            "Local node ID 1, transport knet\nLINK ID 0 udp\n\taddr\t= 1.2.3.4\n\tstatus:\n"
            "\t\tnode 0:\tlink enabled:1\tlink connected:1\n",
            "line 5: unexpected line in link 0",
        ),
    ],
)
def test_cfgtool_errors(text: str, needle: str) -> None:
    with pytest.raises(FactParseError) as err:
        parse_cfgtool_status(text)
    assert needle in str(err.value) and "corosync-cfgtool -s" in str(err.value)


def test_quorum_two_nodes_quorate(load_fixture: Callable[[str], str]) -> None:
    q = parse_quorumtool_status(load_fixture("quorumtool-2node-quorate.txt"))
    assert q.quorate and not q.activity_blocked
    assert (q.provider, q.nodes, q.node_id, q.ring_id) == ("corosync_votequorum", 2, 1, "1.d")
    assert (q.expected_votes, q.highest_expected, q.total_votes, q.quorum) == (2, 2, 2, 1)
    assert q.flags == ("2Node", "Quorate", "WaitForAll")
    assert q.two_node and q.wait_for_all
    assert q.member_names() == ("vm-node1", "vm-node2")
    assert q.member("vm-node1").is_local and not q.member("vm-node2").is_local
    assert q.member("vm-node2").nodeid == 2 and q.member("vm-node2").votes == 1
    assert q.date == "Tue Nov 25 00:10:04 2025"
    assert q.qdevice is None


def test_quorum_wait_for_all_blocks_a_lone_node(load_fixture: Callable[[str], str]) -> None:
    q = parse_quorumtool_status(load_fixture("quorumtool-2node-waitforall.txt"))
    assert not q.quorate and q.activity_blocked
    assert q.flags == ("2Node", "WaitForAll") and "Quorate" not in q.flags
    assert (q.nodes, q.total_votes, q.quorum) == (1, 1, 1)
    assert q.member_names() == ("vm-node1",)


def test_quorum_three_nodes_degraded_but_quorate(load_fixture: Callable[[str], str]) -> None:
    q = parse_quorumtool_status(load_fixture("quorumtool-3node-degraded.txt"))
    assert q.quorate and not q.two_node
    assert (q.expected_votes, q.total_votes, q.quorum) == (3, 2, 2)
    assert [(m.nodeid, m.is_local) for m in q.members] == [(1, False), (2, True)]


def test_quorum_three_nodes_partitioned(load_fixture: Callable[[str], str]) -> None:
    q = parse_quorumtool_status(load_fixture("quorumtool-3node-partitioned.txt"))
    assert not q.quorate and q.activity_blocked
    assert q.flags == ()
    assert (q.node_id, q.nodes, q.total_votes, q.quorum) == (3, 1, 1, 2)
    with pytest.raises(KeyError, match="'vm-node1' is not a member; members: vm-node3"):
        q.member("vm-node1")


def test_quorum_qdevice_column_and_row(load_fixture: Callable[[str], str]) -> None:
    q = parse_quorumtool_status(load_fixture("quorumtool-2node-qdevice.txt"))
    assert q.member_names() == ("vm-node1", "vm-node2")
    assert q.member("vm-node1").qdevice == "A,V,NMW"
    assert q.qdevice is not None and (q.qdevice.name, q.qdevice.votes) == ("Qdevice", 1)
    assert "Qdevice" in q.flags


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no 'Quorum provider:' line"),
        ("Cannot initialize QUORUM service\n", "line 1: expected 'Quorum information' first"),
        ("Quorum information\nQuorate:          Maybe\n", "line 2: cannot read the value of 'quorate'"),
        ("Quorum information\nColour:           blue\n", "line 2: unknown line"),
    ],
)
def test_quorum_errors(text: str, needle: str) -> None:
    with pytest.raises(FactParseError) as err:
        parse_quorumtool_status(text)
    assert needle in str(err.value)
