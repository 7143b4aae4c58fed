"""The parsers and the CIB engine on output captured from both releases' lab nodes.

bookworm: Debian 12, pacemaker 2.1.5, corosync 3.1.7, crmsh 4.4.1 (``fixtures/captured/*``,
no header). trixie: Debian 13, pacemaker 3.0.0, corosync 3.1.9, crmsh 5.0.0
(``fixtures/captured/trixie/*``, each with a header naming the command and scenario).
The same assertions hold on both; where the releases differ, the test says how.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from hakit.cib import CibSnapshot, plan, same_configuration
from hakit.facts.corosync import parse_cfgtool_status, parse_quorumtool_status
from hakit.facts.pacemaker import parse_crm_mon, parse_fence_history
from hakit.params import Params, load_params
from hakit.profiles import FAST
from hakit.render.cib import constraints, properties, resources

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = ("bookworm", "trixie")
# Subnet of each release's captures (params/lab.yaml, params/lab-trixie.yaml).
NET = {"bookworm": "10.77.", "trixie": "10.84."}
# The CIB captures of both releases predate the fast profile's dc-deadtime (but cib-after-stage3-seeded.xml).
FAST_AS_CAPTURED = FAST.model_copy(update={"dc_deadtime": None})


Captured = Callable[[str, str], str]


@pytest.fixture(name="captured", scope="session")
def _captured(load_fixture: Callable[[str], str]) -> Captured:
    """(release, name) -> a capture's raw output: bookworm's files are bare, trixie's carry a '# ---' header."""

    def read(release: str, name: str) -> str:
        if release == "bookworm":
            return (FIXTURES / "captured" / name).read_text()
        return load_fixture(f"captured/trixie/{name}")

    return read


@pytest.mark.parametrize("release", RELEASES)
def test_crm_mon_all_resources_started(release: str, captured: Captured) -> None:
    st = parse_crm_mon(captured(release, "crm_mon-2node-resources.xml"))
    assert st.quorate and st.dc in ("vm-node1", "vm-node2")
    assert st.online == ["vm-node1", "vm-node2"]
    assert st.where("vip") == st.where("httpd") == "vm-node1"
    assert st.running_on("ping-gateway") == ["vm-node1", "vm-node2"]
    assert {r.clone for r in st.instances("ping-gateway")} == {"cloned-ping-gateway"}
    assert st.attribute("vm-node1", "pingd") == st.attribute("vm-node2", "pingd") == "1000"
    assert st.no_quorum_policy == "ignore" and not st.failures


def test_crm_mon_trixie_fence_devices_and_stonith(captured: Captured) -> None:
    """The trixie captures were taken with fencing on: each device runs on the node it does not power off."""
    st = parse_crm_mon(captured("trixie", "crm_mon-2node-resources.xml"))
    assert st.stonith_enabled is True
    assert st.where("fence-vm-node1") == "vm-node2" and st.where("fence-vm-node2") == "vm-node1"
    assert st.instances("fence-vm-node1")[0].agent == "stonith:fence_ipmilan"


@pytest.mark.parametrize(("release", "exitstatus"), [("bookworm", "not running"), ("trixie", "Not running")])
def test_crm_mon_failed_action(release: str, exitstatus: str, captured: Captured) -> None:
    """pacemaker 3.0 capitalises exitstatus (and rc_text): compare exitcode, never the text."""
    st = parse_crm_mon(captured(release, "crm_mon-2node-failed-action.xml"))
    (f,) = st.failures
    assert (f.resource, f.task, f.node, f.exitcode) == ("httpd", "monitor", "vm-node1", 7)
    assert f.exitstatus == exitstatus
    assert re.fullmatch(r"2026-\d\d-\d\d \d\d:\d\d:\d\dZ", f.last_rc_change)


@pytest.mark.parametrize(
    ("release", "name"), [("bookworm", "crm_mon-2node-peer-offline.xml"), ("trixie", "crm_mon-2node-peer-fenced.xml")]
)
def test_crm_mon_peer_lost(release: str, name: str, captured: Captured) -> None:
    st = parse_crm_mon(captured(release, name))
    assert st.online == ["vm-node1"] and st.nodes["vm-node2"].state == "offline"
    assert st.quorate and st.dc == "vm-node1"  # two_node: the survivor keeps quorum
    assert st.running_on("ping-gateway") == ["vm-node1"]
    assert st.where("vip") == "vm-node1"


def test_crm_mon_trixie_fence_history_in_status_is_the_same_event(captured: Captured) -> None:
    """crm_mon's <fence_history> holds the same <fence_event> elements stonith_admin prints."""
    (ev,) = parse_fence_history(captured("trixie", "crm_mon-2node-peer-fenced.xml"))
    assert (ev.action, ev.target, ev.status, ev.delegate) == ("off", "vm-node2", "success", "vm-node1")


def test_crm_mon_trixie_unclean_while_fencing_cannot_finish(captured: Captured) -> None:
    text = captured("trixie", "crm_mon-2node-fence-pending.xml")
    st = parse_crm_mon(text)
    assert st.nodes["vm-node2"].state == "UNCLEAN" and not st.nodes["vm-node2"].online
    pending = [e for e in parse_fence_history(text) if e.status == "pending"]
    assert [(e.target, e.completed) for e in pending] == [("vm-node2", None)]


def test_pacemaker_3_moved_pacemakerd_state_and_the_parser_does_not_need_it(captured: Captured) -> None:
    old, new = captured("bookworm", "crm_mon-2node-resources.xml"), captured("trixie", "crm_mon-2node-resources.xml")
    assert '<pacemakerd sys_from="pacemakerd" state="running"' in old and "<pacemakerd " not in new
    assert '<stack type="corosync" pacemakerd-state="running"/>' in new
    assert 'api-version="2.25"' in old and 'api-version="2.38"' in new


@pytest.mark.parametrize("release", RELEASES)
def test_fence_history(release: str, captured: Captured) -> None:
    ev = parse_fence_history(captured(release, "stonith-history-verbose.xml"))
    done = [e for e in ev if e.completed is not None]
    assert [e.completed for e in done] == sorted(e.completed for e in done)  # type: ignore[type-var]
    assert {e.status for e in ev} >= {"success", "failed"}
    assert all(e.origin and e.target.startswith("vm-node") for e in ev)


def test_fence_history_trixie_keeps_microseconds_and_pending_last(captured: Captured) -> None:
    ev = parse_fence_history(captured("trixie", "stonith-history-verbose.xml"))
    assert [(e.status, e.delegate) for e in ev] == [("success", "vm-node1"), ("failed", "vm-node1"), ("pending", None)]
    assert ev[0].completed == pytest.approx(1796117217.884611)  # 2026-12-01 09:26:57.884611Z
    assert ev[2].completed is None and not ev[2].ok


@pytest.mark.parametrize("release", RELEASES)
def test_cfgtool(release: str, captured: Captured) -> None:
    up = parse_cfgtool_status(captured(release, "cfgtool-2node-connected.txt"))
    assert up.local_nodeid == 1 and up.transport == "knet" and up.all_connected
    assert [ln.addr for ln in up.links] == [f"{NET[release]}0.11", f"{NET[release]}1.11"]
    down = parse_cfgtool_status(captured(release, "cfgtool-2node-link0-down.txt"))
    assert down.link(0).disconnected == (2,) and down.link(1).all_connected


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", ["quorumtool-2node-quorate.txt", "quorumtool-2node-link0-down.txt"])
def test_quorumtool(release: str, name: str, captured: Captured) -> None:
    q = parse_quorumtool_status(captured(release, name))
    assert q.quorate and q.two_node and q.wait_for_all
    assert q.member_names() == ("vm-node1", "vm-node2") and q.member("vm-node1").is_local


# ---------------------------------------------------------------- the CIB engine on pacemaker 3.0's CIB


@pytest.fixture(scope="module")
def trixie() -> Params:
    """params/lab-trixie.yaml as the captures were made: before pacemaker.fencing.power_wait_s (the agent's
    own wait, no power_wait attribute on the devices)."""
    p = load_params(REPO / "params" / "lab-trixie.yaml")
    fen = p.pacemaker.fencing.model_copy(update={"power_wait_s": None})
    return p.model_copy(update={"pacemaker": p.pacemaker.model_copy(update={"fencing": fen})})


def test_trixie_cib_schema_and_writer(captured: Captured) -> None:
    """pacemaker 3.0 writes schema pacemaker-4.0 (2.1.5: pacemaker-3.9) and names the user, not the tool."""
    s3 = CibSnapshot.parse(captured("trixie", "cib-after-stage3.xml"))
    s6 = CibSnapshot.parse(captured("trixie", "cib-after-stage6.xml"))
    assert s6.version.config > s3.version.config
    assert 'validate-with="pacemaker-4.0"' in s6.xml and 'crm_feature_set="3.20.0"' in s6.xml
    assert 'validate-with="pacemaker-3.9"' in captured("bookworm", "cib-after-stage6.xml")
    assert s6.written_by.startswith("root on vm-node1 by root")  # 2.1.5: "cibadmin on vm-node1 by root"


def test_trixie_configured_cluster_plans_no_change(trixie: Params, captured: Captured) -> None:
    """Idempotence on the real 3.0 CIB: stages 4-6 find everything as wanted, fence devices included;
    today's fast profile adds its dc-deadtime and changes nothing else."""
    s6 = CibSnapshot.parse(captured("trixie", "cib-after-stage6.xml"))
    for bundle in (properties(trixie, FAST_AS_CAPTURED), resources(trixie, FAST), constraints(trixie)):
        p = plan(bundle, s6)
        assert p.empty, (bundle.stage, p.changes)
    assert [(c.key, c.action) for c in plan(properties(trixie, FAST), s6).changes] == [("property dc-deadtime", "set")]


def test_trixie_stages_4_to_6_rebuild_the_captured_configuration(trixie: Params, captured: Captured) -> None:
    """From the fresh 3.0 cluster, the three plans in turn give exactly the configuration pacemaker 3.0 kept."""
    xml = captured("trixie", "cib-after-stage3.xml")
    for bundle in (properties(trixie, FAST_AS_CAPTURED), resources(trixie, FAST), constraints(trixie)):
        p = plan(bundle, CibSnapshot.parse(xml))
        assert not p.empty
        xml = p.wanted_xml
    assert same_configuration(xml, captured("trixie", "cib-after-stage6.xml"))


def test_trixie_seeded_cib_is_what_stage4_wants_for_dc_deadtime(lab: Params, captured: Captured) -> None:
    """Stage 3 seeded both nodes' CIBs with dc-deadtime=5s; on the cluster pacemaker 3.0 formed from them,
    stage 4 keeps the property as it is (same id, value) and adds only the rest."""
    s3 = CibSnapshot.parse(captured("trixie", "cib-after-stage3-seeded.xml"))
    p = plan(properties(lab, FAST), s3)
    assert "property dc-deadtime" in p.unchanged
    assert [(c.key, c.action) for c in p.changes if c.key.startswith("property")] == [
        ("property stonith-enabled", "set"), ("property no-quorum-policy", "set"), ("property stonith-action", "set")]
    nvpairs = ET.fromstring(p.wanted_xml).iterfind("configuration/crm_config/cluster_property_set/nvpair")
    assert [nv.get("id") for nv in nvpairs if nv.get("name") == "dc-deadtime"] == ["cib-bootstrap-options-dc-deadtime"]
    assert s3.version.config == (0, 7) and s3.written_by.startswith("hacluster on vm-node2")


def test_cib_directory_before_and_after_pacemakers_first_start(load_fixture: Callable[[str], str]) -> None:
    from hakit.stages.corosync import parse_cib_dir

    after = parse_cib_dir(load_fixture("captured/trixie/cib-dir-after-stage3.txt"))
    assert after is not None and "cib.xml" in after and "cib.xml.sig" in after and "cib-0.raw" in after
    assert parse_cib_dir("dir\n") == ()  # what trixie and bookworm ready nodes print before stage 03
    assert parse_cib_dir("nodir\n") is None


# ---------------------------------------------------------------- crmsh


def _show(text: str) -> str:
    """`crm configure show` without what differs by construction: subnet, cluster name, pacemaker version."""
    text = re.sub(r"10\.8[46]\.", "10.x.", text)
    text = re.sub(r"cluster-name=\S+", "cluster-name=*", text)
    return re.sub(r"dc-version=\S+", "dc-version=*", text)


def test_crmsh_5_shows_the_configuration_as_crmsh_4_4_did(load_fixture: Callable[[str], str]) -> None:
    """Same text, line for line: crmsh 5.0 still drops ocf:heartbeat: from agents, and prints
    location and colocation in the CIB's order."""
    show = _show(load_fixture("captured/trixie/crm-configure-show.txt"))
    assert show == _show(load_fixture("captured/crm-configure-show-bookworm.txt"))
    assert "primitive vip IPaddr2 \\" in show and "primitive httpd apache \\" in show
    assert "primitive ping-gateway ocf:pacemaker:ping \\" in show
    assert "location vip-needs-gateway vip \\\n\trule -inf: not_defined pingd or pingd lte 0" in show


def test_trixie_capture_headers_name_command_and_release() -> None:
    for f in sorted((FIXTURES / "captured" / "trixie").iterdir()):
        head = f.read_text().partition("# ---\n")[0]
        assert "Debian 13 (trixie): pacemaker 3.0.0-2" in head and re.search(r"^# Command, on (vm-node\d|qnetd): ", head, re.M), f.name


def test_every_capture_is_used() -> None:
    """Each trixie capture is read by a unit test (a capture nobody parses proves nothing)."""
    src = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for f in (FIXTURES / "captured" / "trixie").iterdir():
        assert f'"{f.name}"' in src or f.name in src, f.name
