"""crm_mon --output-as=xml parsed on output captured from the lab (pacemaker 2.1.5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hakit.facts import FactParseError
from hakit.facts.pacemaker import ClusterStatus, FailedAction, NodeState, parse_crm_mon

CAP = Path(__file__).parent / "fixtures" / "captured"


def _status(name: str) -> ClusterStatus:
    return parse_crm_mon((CAP / name).read_text())


def test_two_nodes_online_no_resources() -> None:
    st = _status("crm_mon-2node-online.xml")
    assert (st.dc, st.quorate) == ("vm-node2", True)
    assert (st.stonith_enabled, st.no_quorum_policy) == (True, "stop")  # pacemaker's defaults, before stage 4
    assert st.online == ["vm-node1", "vm-node2"]
    assert st.nodes["vm-node1"] == NodeState(
        name="vm-node1", id="1", online=True, standby=False, maintenance=False, pending=False, unclean=False,
        shutdown=False, is_dc=False, resources_running=0,
    )
    assert st.nodes["vm-node2"].is_dc and st.nodes["vm-node2"].id == "2"
    assert {n: s.state for n, s in st.nodes.items()} == {"vm-node1": "online", "vm-node2": "online"}
    assert st.resources == () and st.attributes == {} and st.failures == ()
    assert st.where("vip") is None and st.running_on("vip") == []


def test_all_resources_started() -> None:
    st = _status("crm_mon-2node-resources.xml")
    assert (st.dc, st.quorate) == ("vm-node2", True)
    assert (st.stonith_enabled, st.no_quorum_policy) == (False, "ignore")  # as stage 4 set them
    assert st.where("vip") == "vm-node1" and st.where("httpd") == "vm-node1"
    assert st.running_on("ping-gateway") == ["vm-node1", "vm-node2"]
    assert st.where("ping-gateway") is None  # a clone on two nodes has no single place
    assert st.where("nonexistent") is None
    assert [(r.id, r.clone) for r in st.resources] == [
        ("vip", None), ("httpd", None), ("ping-gateway", "cloned-ping-gateway"), ("ping-gateway", "cloned-ping-gateway")]
    vip = st.instances("vip")[0]
    assert (vip.agent, vip.role, vip.active, vip.failed, vip.managed, vip.blocked, vip.nodes) == (
        "ocf:heartbeat:IPaddr2", "Started", True, False, True, False, ("vm-node1",))
    assert [r.nodes for r in st.instances("ping-gateway")] == [("vm-node1",), ("vm-node2",)]
    assert st.instances("httpd")[0].agent == "ocf:heartbeat:apache"
    assert st.attributes == {"vm-node1": {"pingd": "1000"}, "vm-node2": {"pingd": "1000"}}
    assert st.attribute("vm-node2", "pingd") == "1000"
    assert st.attribute("vm-node2", "other") is None and st.attribute("vm-node9", "pingd") is None
    assert (st.nodes["vm-node1"].resources_running, st.nodes["vm-node2"].resources_running) == (3, 1)
    assert st.failures == ()


def test_failed_httpd_monitor() -> None:
    st = _status("crm_mon-2node-failed-action.xml")
    assert st.failures == (
        FailedAction(
            op_key="httpd_monitor_1000", node="vm-node1", task="monitor", exitstatus="not running",
            exitreason="", exitcode=7, last_rc_change="2026-11-25 01:12:11Z",
        ),
    )
    assert st.where("httpd") == "vm-node1"  # restarted in place
    assert not st.instances("httpd")[0].failed


def test_peer_offline() -> None:
    st = _status("crm_mon-2node-peer-offline.xml")
    assert (st.dc, st.quorate) == ("vm-node1", True)  # two_node keeps the survivor quorate
    assert st.online == ["vm-node1"]
    assert not st.nodes["vm-node2"].online and st.nodes["vm-node2"].state == "offline"
    assert st.nodes["vm-node1"].is_dc and not st.nodes["vm-node2"].is_dc
    assert st.where("vip") == "vm-node1" and st.where("httpd") == "vm-node1"
    assert st.running_on("ping-gateway") == ["vm-node1"]
    assert st.where("ping-gateway") == "vm-node1"
    stopped = [r for r in st.instances("ping-gateway") if not r.active]
    assert len(stopped) == 1 and stopped[0].role == "Stopped" and stopped[0].nodes == ()
    assert st.attributes == {"vm-node1": {"pingd": "1000"}}
    assert [f.op_key for f in st.failures] == ["httpd_monitor_1000"]


def test_frames() -> None:
    st = _status("crm_mon-2node-peer-offline.xml")
    nodes = st.nodes_frame()
    assert list(nodes.columns) == ["node", "state", "DC", "resources", "pingd"]
    assert nodes.to_dict("records") == [
        {"node": "vm-node1", "state": "online", "DC": True, "resources": 3, "pingd": "1000"},
        {"node": "vm-node2", "state": "offline", "DC": False, "resources": 0, "pingd": ""},
    ]
    rs = st.resources_frame()
    assert list(rs["on"]) == ["vm-node1", "vm-node1", "vm-node1", "-"]
    assert list(rs["role"]) == ["Started", "Started", "Started", "Stopped"]
    html = st._repr_html_()
    assert "DC vm-node1, quorate" in html and "Failed actions" in html and "httpd_monitor_1000" in html
    assert "Failed actions" not in _status("crm_mon-2node-resources.xml")._repr_html_()


def test_node_state_precedence() -> None:
    base = dict(name="n", id="1", online=True, standby=False, maintenance=False, pending=False, unclean=False,
                shutdown=False, is_dc=False, resources_running=0)
    assert NodeState(**{**base, "unclean": True, "online": False}).state == "UNCLEAN"  # type: ignore[arg-type]
    assert NodeState(**{**base, "standby": True}).state == "standby"  # type: ignore[arg-type]
    assert NodeState(**{**base, "maintenance": True}).state == "maintenance"  # type: ignore[arg-type]
    assert NodeState(**{**base, "online": False, "standby": True}).state == "offline"  # type: ignore[arg-type]


def test_no_dc_means_not_quorate() -> None:
    text = (CAP / "crm_mon-2node-online.xml").read_text().replace(
        '<current_dc present="true" version="2.1.5-a3f44794f94" name="vm-node2" id="2" with_quorum="true" mixed_version="false"/>',
        '<current_dc present="false"/>')
    st = parse_crm_mon(text)
    assert (st.dc, st.quorate) == (None, False)


def test_without_quorum() -> None:
    text = (CAP / "crm_mon-2node-peer-offline.xml").read_text().replace('with_quorum="true"', 'with_quorum="false"')
    st = parse_crm_mon(text)
    assert (st.dc, st.quorate) == ("vm-node1", False)


def test_missing_cluster_options() -> None:
    text = (CAP / "crm_mon-2node-online.xml").read_text()
    start = text.index("    <cluster_options")
    st = parse_crm_mon(text[:start] + text[text.index("\n", start) + 1:])
    assert (st.stonith_enabled, st.no_quorum_policy) == (None, None)


# crm_mon 2.1 on a node where pacemaker is not running (exit 102).
NOT_CONNECTED = """\
<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
  <status code="102" message="Not connected">
    <errors>
      <error>crm_mon: Error: cluster is not available on this node</error>
    </errors>
  </status>
</pacemaker-result>
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Error: cluster is not available on this node\n", "not XML"),
        ("", "not XML"),
        ("<pacemaker-result><summary>", "not XML"),
        ('<cib epoch="1"/>', "expected <pacemaker-result>, got <cib>"),
        (NOT_CONNECTED, "no cluster status: Not connected crm_mon: Error: cluster is not available on this node"),
        ("<pacemaker-result/>", "no cluster status: no summary"),
    ],
)
def test_errors(text: str, problem: str) -> None:
    with pytest.raises(FactParseError) as info:
        parse_crm_mon(text)
    assert info.value.source == "crm_mon --output-as=xml"
    assert info.value.problem.startswith(problem), info.value.problem
    assert str(info.value).startswith(f"crm_mon --output-as=xml: {problem}")


def test_not_xml_shows_the_output() -> None:
    with pytest.raises(FactParseError) as info:
        parse_crm_mon("Error: cluster is not available on this node\n")
    assert info.value.line == "Error: cluster is not available on this node\n"
    assert "(got 'Error: cluster is not available" in str(info.value)


def test_inactive_instance_does_not_count_as_running() -> None:
    text = (CAP / "crm_mon-2node-resources.xml").read_text()
    vip = '<resource id="vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true"'
    assert vip in text
    st = parse_crm_mon(text.replace(vip, vip.replace('active="true"', 'active="false"')))
    assert st.instances("vip")[0].nodes == ("vm-node1",)
    assert st.running_on("vip") == [] and st.where("vip") is None


def test_fence_history_every_action_oldest_first() -> None:
    from hakit.facts.pacemaker import parse_fence_history

    text = (Path(__file__).parent / "fixtures" / "captured" / "stonith-history-verbose.xml").read_text()
    ev = parse_fence_history(text)
    assert [(e.action, e.target, e.status, e.delegate) for e in ev] == [
        ("reboot", "vm-node1", "success", "vm-node2"),
        ("off", "vm-node2", "failed", "vm-node1"),
        ("off", "vm-node1", "success", "vm-node2"),
        ("off", "vm-node1", "success", "vm-node2"),
        ("off", "vm-node1", "success", "vm-node2"),
    ]
    assert ev[1].completed == 1795575628.0  # 2026-11-25 03:00:28Z
    assert [e.ok for e in ev] == [True, False, True, True, True]


def test_fence_history_refuses_what_is_not_stonith_admin_xml() -> None:
    from hakit.facts.errors import FactParseError
    from hakit.facts.pacemaker import parse_fence_history

    with pytest.raises(FactParseError, match="not XML"):
        parse_fence_history("error: no such device")
    with pytest.raises(FactParseError, match="expected <pacemaker-result>"):
        parse_fence_history("<crm_mon/>")
    assert parse_fence_history('<pacemaker-result><list name="fencing history" count="0"/></pacemaker-result>') == []


def test_failed_action_names_its_resource_even_with_underscores() -> None:
    def fa(op_key: str, task: str) -> FailedAction:
        return FailedAction(op_key, "vm-node1", task, "error", "", 1, "")

    assert fa("httpd_monitor_1000", "monitor").resource == "httpd"
    assert fa("fence-vm-node1_start_0", "start").resource == "fence-vm-node1"
    assert fa("my_vip_migrate_to_0", "migrate_to").resource == "my_vip"


def test_a_start_in_progress_is_active_but_not_started(load_fixture: Callable[[str], str]) -> None:
    """Read on a Debian 13 VM node during `crm_resource --restart -r httpd`: crm_mon marks httpd
    active while its start runs, but Apache does not answer yet; the waits need the settled role."""
    st = parse_crm_mon(load_fixture("captured/trixie/crm_mon-httpd-starting.xml"))
    httpd = st.instances("httpd")[0]
    assert (httpd.role, httpd.active, httpd.settled) == ("Starting", True, False)
    assert st.running_on("httpd") == ["vm-node1"] and st.where("httpd") == "vm-node1"
    assert st.started_on("httpd") == [] and st.serving("httpd") is None
    assert st.serving("vip") == "vm-node1" and st.started_on("ping-gateway") == ["vm-node1", "vm-node2"]


def test_serving_needs_one_settled_instance_and_none_elsewhere() -> None:
    st = _status("crm_mon-2node-resources.xml")
    assert st.serving("vip") == "vm-node1" and st.serving("ping-gateway") is None  # a clone on two nodes
    assert _status("crm_mon-2node-online.xml").serving("vip") is None
