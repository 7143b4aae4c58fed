"""Planning CIB changes (pure part of hakit.cib) on CIBs captured from the lab.

``cib-after-stage3.xml`` is the fresh two-node cluster; ``cib-after-stage6.xml``
is the same cluster after stages 4-6 were applied with the ``fast`` profile and
params/lab.yaml (cluster hakit-lab, nodes vm-node1/2).
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hakit.cib import (
    SECTION_ORDER,
    CibConflict,
    CibError,
    CibPlan,
    CibSnapshot,
    canonical,
    managed_missing,
    plan,
    same_configuration,
    strip_versions,
)
from hakit.params import Params, load_params
from hakit.profiles import FAST, SEED, Profile
from hakit.render.cib import Bundle, Property, RscDefault, constraints, properties, resources

ROOT = Path(__file__).resolve().parents[2]
CAP = Path(__file__).parent / "fixtures" / "captured"
STAGE3 = (CAP / "cib-after-stage3.xml").read_text()
STAGE6 = (CAP / "cib-after-stage6.xml").read_text()
STAGES = ("properties", "resources", "constraints")
# These captures predate the fast profile's dc-deadtime: planned with the profile they were made
# with, stage 4 finds them as it left them. What today's profile changes on them is tested below.
FAST_AS_CAPTURED = FAST.model_copy(update={"dc_deadtime": None})


@pytest.fixture(name="lab")
def _article_params(article: Params) -> Params:
    """The captured CIBs were made with the article's properties (no fence devices, stonith off),
    so plans are computed from those params here; fencing has its own tests at the end."""
    return article


def _bundle(stage: str, params: Params, profile: Profile = FAST_AS_CAPTURED) -> Bundle:
    if stage == "constraints":
        return constraints(params)
    return properties(params, profile) if stage == "properties" else resources(params, profile)


def _conf(xml: str) -> ET.Element:
    conf = ET.fromstring(xml).find("configuration")
    assert conf is not None
    return conf


def _sticky(value: int) -> Profile:
    return FAST.model_copy(update={"resources": FAST.resources.model_copy(update={"resource_stickiness": value})})


def _owned_removed(xml: str, bundle: Bundle) -> tuple:
    """The whole CIB (status included) minus what the bundle owns, canonical, version attrs dropped."""
    root = copy.deepcopy(ET.fromstring(xml))
    for a in ("epoch", "num_updates"):
        root.attrib.pop(a, None)
    conf = root.find("configuration")
    assert conf is not None
    for item in bundle.items:
        if isinstance(item, (Property, RscDefault)):
            for s in conf.iter():
                for nv in [c for c in s if c.tag == "nvpair" and c.get("name") == item.name]:
                    s.remove(nv)
            continue
        item_id = item.xml().get("id")
        sec = conf.find(item.section)
        if sec is not None:
            for e in [c for c in sec if c.get("id") == item_id]:
                sec.remove(e)
    return canonical(root)


def _epoch(xml: str) -> tuple[str | None, str | None]:
    root = ET.fromstring(xml)
    return root.get("epoch"), root.get("num_updates")


# ---------------------------------------------------------------- snapshot, canonical, digests


def test_snapshot_parse() -> None:
    s3, s6 = CibSnapshot.parse(STAGE3), CibSnapshot.parse(STAGE6)
    assert (s3.version.admin_epoch, s3.version.epoch, s3.version.num_updates) == (0, 7, 2)
    assert str(s3.version) == "0.7.2" and s3.version.config == (0, 7)
    assert str(s6.version) == "0.13.40" and s6.version.config == (0, 13)
    assert s3.written_by == "crm_attribute on vm-node1 by root at Wed Nov 25 01:07:36 2026"
    assert s6.written_by == "cibadmin on vm-node1 by root at Wed Nov 25 01:12:03 2026"
    assert s3.xml == STAGE3
    assert re.fullmatch(r"[0-9a-f]{64}", s3.config_sha256)
    assert s3.config_sha256 != s6.config_sha256


def test_digest_ignores_status_versions_and_whitespace() -> None:
    root = ET.fromstring(STAGE6)
    root.set("epoch", "99")
    root.set("num_updates", "0")
    root.remove(root.find("status"))  # type: ignore[arg-type]
    ET.indent(root, "    ")
    other = ET.tostring(root, encoding="unicode")
    assert CibSnapshot.parse(other).config_sha256 == CibSnapshot.parse(STAGE6).config_sha256
    assert same_configuration(other, STAGE6)
    assert not same_configuration(STAGE3, STAGE6)
    changed = STAGE6.replace('name="nic" value="bond1"', 'name="nic" value="bond0"')
    assert changed != STAGE6 and not same_configuration(changed, STAGE6)


def test_canonical() -> None:
    a = ET.fromstring('<a x="1" y="2"><b id="1"/><c/></a>')
    assert canonical(a) == canonical(ET.fromstring('<a y="2" x="1">\n  <b id="1" />\n  <c/>\n</a>'))
    assert canonical(a) != canonical(ET.fromstring('<a x="1" y="2"><c/><b id="1"/></a>'))  # child order counts
    assert canonical(a) != canonical(ET.fromstring('<a x="1" y="3"><b id="1"/><c/></a>'))
    assert canonical(a) != canonical(ET.fromstring('<a x="1"><b id="1"/><c/></a>'))


def test_strip_versions() -> None:
    stripped = ET.fromstring(strip_versions(STAGE6))
    assert stripped.find("status") is None
    assert stripped.find("configuration") is not None
    assert set(stripped.attrib) == {"crm_feature_set", "validate-with"}
    assert canonical(stripped.find("configuration")) == canonical(_conf(STAGE6))  # type: ignore[arg-type]
    bumped = STAGE6.replace('epoch="13" num_updates="40"', 'epoch="14" num_updates="0"').replace(
        'dc-uuid="1"', 'dc-uuid="2"')
    assert bumped != STAGE6
    assert strip_versions(bumped) == strip_versions(STAGE6)
    assert strip_versions(STAGE3) != strip_versions(STAGE6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Could not connect to the CIB: Transport endpoint is not connected\n", r"cibadmin --query: not CIB XML .*'Could not connect"),
        ("", r"cibadmin --query: not CIB XML"),
        ('<pacemaker-result api-version="2.25"/>', r"cibadmin --query: expected <cib> with <configuration>, got <pacemaker-result>"),
        ('<cib epoch="1"><status/></cib>', r"cibadmin --query: expected <cib> with <configuration>, got <cib>"),
        (STAGE3[:400], r"cibadmin --query: not CIB XML"),
    ],
)
def test_garbage_is_a_cib_error(text: str, message: str) -> None:
    with pytest.raises(CibError, match=message):
        CibSnapshot.parse(text)


def test_same_configuration_names_the_bad_side() -> None:
    with pytest.raises(CibError, match="first CIB: not CIB XML"):
        same_configuration("nope", STAGE6)
    with pytest.raises(CibError, match="second CIB: expected <cib>"):
        same_configuration(STAGE6, "<x/>")


# ---------------------------------------------------------------- planning on the fresh cluster


def test_stage4_on_fresh_cluster(lab: Params) -> None:
    bundle = properties(lab, FAST_AS_CAPTURED)
    p = plan(bundle, CibSnapshot.parse(STAGE3))
    assert [(c.key, c.action, c.detail) for c in p.changes] == [
        ("property stonith-enabled", "set", "unset (pacemaker default) -> false"),
        ("property no-quorum-policy", "set", "unset (pacemaker default) -> ignore"),
    ]
    assert not p.empty and p.unchanged == ["property dc-deadtime"]  # owned, at pacemaker's default
    assert _epoch(p.wanted_xml) == ("8", "0")
    props = _conf(p.wanted_xml).find("crm_config/cluster_property_set[@id='cib-bootstrap-options']")
    assert props is not None
    assert [(nv.get("id"), nv.get("value")) for nv in props][-2:] == [
        ("cib-bootstrap-options-stonith-enabled", "false"),
        ("cib-bootstrap-options-no-quorum-policy", "ignore"),
    ]
    assert [nv.get("name") for nv in props][:4] == ["have-watchdog", "dc-version", "cluster-infrastructure", "cluster-name"]
    assert _conf(p.wanted_xml).find("rsc_defaults") is None  # fast sets no stickiness
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE3, bundle)


def test_stage5_on_fresh_cluster(lab: Params) -> None:
    bundle = resources(lab, FAST)
    p = plan(bundle, CibSnapshot.parse(STAGE3))
    assert [(c.key, c.action) for c in p.changes] == [
        ("primitive vip", "add"), ("primitive httpd", "add"), ("clone cloned-ping-gateway", "add")]
    assert p.changes[0].detail.startswith("primitive vip ocf:heartbeat:IPaddr2 params ip=10.77.1.100")
    assert "\\" not in p.changes[0].detail and "\n" not in p.changes[2].detail
    assert _epoch(p.wanted_xml) == ("8", "0")
    wanted = _conf(p.wanted_xml)
    assert [(e.tag, e.get("id")) for e in wanted.find("resources")] == [  # type: ignore[union-attr]
        ("primitive", "vip"), ("primitive", "httpd"), ("clone", "cloned-ping-gateway")]
    assert len(wanted.find("constraints")) == 0  # type: ignore[arg-type]
    live6 = _conf(STAGE6).find("resources")
    assert canonical(wanted.find("resources")) == canonical(live6)  # type: ignore[arg-type]
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE3, bundle)


def test_stage6_on_fresh_cluster(lab: Params) -> None:
    bundle = constraints(lab)
    p = plan(bundle, CibSnapshot.parse(STAGE3))
    assert [(c.key, c.action) for c in p.changes] == [
        ("colocation httpd-with-vip", "add"), ("location preferred-node", "add"), ("location vip-needs-gateway", "add")]
    assert p.changes[2].detail == "location vip-needs-gateway vip rule -inf: not_defined pingd or pingd lte 0"
    assert _epoch(p.wanted_xml) == ("8", "0")
    cons = _conf(p.wanted_xml).find("constraints")
    assert [e.get("id") for e in cons] == ["httpd-with-vip", "preferred-node", "vip-needs-gateway"]  # type: ignore[union-attr]
    assert canonical(cons) == canonical(_conf(STAGE6).find("constraints"))  # type: ignore[arg-type]
    assert len(_conf(p.wanted_xml).find("resources")) == 0  # type: ignore[arg-type]
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE3, bundle)


def test_stages_4_to_6_in_turn_give_the_captured_configuration(lab: Params) -> None:
    xml, epochs = STAGE3, []
    for stage in STAGES:
        p = plan(_bundle(stage, lab), CibSnapshot.parse(xml))
        assert not p.empty
        xml = p.wanted_xml
        epochs.append(_epoch(xml)[0])
    assert epochs == ["8", "9", "10"]  # one bump per plan, never more
    assert same_configuration(xml, STAGE6)
    assert canonical(ET.fromstring(xml).find("status")) == canonical(ET.fromstring(STAGE3).find("status"))  # type: ignore[arg-type]


def test_wanted_xml_is_whole_cib(lab: Params) -> None:
    p = plan(resources(lab, FAST), CibSnapshot.parse(STAGE3))
    assert isinstance(p, CibPlan) and p.base.xml == STAGE3 and p.wanted_xml.endswith("</cib>\n")
    root = ET.fromstring(p.wanted_xml)
    base = ET.fromstring(STAGE3)
    assert {k: v for k, v in root.attrib.items() if k not in ("epoch", "num_updates")} == {
        k: v for k, v in base.attrib.items() if k not in ("epoch", "num_updates")}
    assert "primitive vip: add (" in str(p)
    html = p._repr_html_()
    assert "live CIB version 0.7.2" in html and "<td>primitive vip</td><td>add</td>" in html


# ---------------------------------------------------------------- idempotence on the configured cluster


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_to_do_on_configured_cluster(lab: Params, stage: str) -> None:
    bundle = _bundle(stage, lab)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert p.empty and p.changes == []
    assert p.unchanged == bundle.ids()
    assert _epoch(p.wanted_xml) == ("13", "40")
    assert same_configuration(p.wanted_xml, STAGE6)
    assert managed_missing(bundle, STAGE6) == []
    assert "no change" in str(p)


def test_managed_missing(lab: Params) -> None:
    assert managed_missing(resources(lab, FAST), STAGE3) == [
        "primitive vip", "primitive httpd", "clone cloned-ping-gateway"]
    assert managed_missing(properties(lab, FAST_AS_CAPTURED), STAGE3) == ["property stonith-enabled", "property no-quorum-policy"]
    assert managed_missing(resources(lab, SEED), STAGE6) == [
        "primitive vip", "primitive httpd", "clone cloned-ping-gateway"]
    stopped = STAGE6.replace('value="ignore"', 'value="stop"')
    assert managed_missing(properties(lab, FAST_AS_CAPTURED), stopped) == ["property no-quorum-policy"]
    without = STAGE6.replace('<rsc_location id="preferred-node" rsc="vip" score="100" node="vm-node1"/>', "")
    assert without != STAGE6
    assert managed_missing(constraints(lab), without) == ["location preferred-node"]


# ---------------------------------------------------------------- changing values in place


def test_profile_change_updates_resources_in_place(lab: Params) -> None:
    bundle = resources(lab, SEED)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert [(c.key, c.action) for c in p.changes] == [
        ("primitive vip", "update"), ("primitive httpd", "update"), ("clone cloned-ping-gateway", "update")]
    vip = p.changes[0].detail
    assert "op[vip-monitor-5s]@interval=5s" in vip and "op[vip-monitor-10s]@interval=10s" in vip
    assert vip.index("-operations/op[vip-monitor-5s]") < vip.index("+operations/op[vip-monitor-10s]")
    httpd = p.changes[1].detail
    assert "-operations/op[httpd-monitor-1s]@interval=1s" in httpd
    assert "+operations/op[httpd-monitor-10s]@interval=10s" in httpd
    ping = p.changes[2].detail
    assert "nvpair[ping-gateway-instance_attributes-dampen]@value=1s" in ping and "@value=5s" in ping
    assert ping.endswith("; and 6 more")
    assert _epoch(p.wanted_xml) == ("14", "0")
    rscs = _conf(p.wanted_xml).find("resources")
    assert [e.get("id") for e in rscs] == ["vip", "httpd", "cloned-ping-gateway"]  # type: ignore[union-attr]
    for item, element in zip(bundle.items, rscs, strict=True):  # type: ignore[arg-type]
        assert canonical(element) == canonical(item.xml())
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE6, bundle)
    # ... and planning the same bundle on the result is a no-op.
    assert plan(bundle, CibSnapshot.parse(p.wanted_xml)).empty


def test_one_changed_resource_leaves_the_others_alone(lab: Params) -> None:
    live = STAGE6.replace('name="nic" value="bond1"', 'name="nic" value="eth9"')
    p = plan(resources(lab, FAST), CibSnapshot.parse(live))
    assert [(c.key, c.action) for c in p.changes] == [("primitive vip", "update")]
    assert p.unchanged == ["primitive httpd", "clone cloned-ping-gateway"]
    d = p.changes[0].detail
    assert "-instance_attributes[vip-instance_attributes]/nvpair[vip-instance_attributes-nic]@value=eth9" in d
    assert "+instance_attributes[vip-instance_attributes]/nvpair[vip-instance_attributes-nic]@value=bond1" in d
    assert same_configuration(p.wanted_xml, STAGE6)


def test_no_quorum_policy_change_sets_value_in_place(lab: Params) -> None:
    params = lab.model_copy(update={"pacemaker": lab.pacemaker.model_copy(update={"no_quorum_policy": "stop"})})
    bundle = properties(params, FAST_AS_CAPTURED)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert [(c.key, c.action, c.detail) for c in p.changes] == [("property no-quorum-policy", "set", "ignore -> stop")]
    assert p.unchanged == ["property stonith-enabled", "property dc-deadtime"]
    assert _epoch(p.wanted_xml) == ("14", "0")
    before = _conf(STAGE6).find("crm_config/cluster_property_set")
    after = _conf(p.wanted_xml).find("crm_config/cluster_property_set")
    assert before is not None and after is not None
    assert [nv.get("id") for nv in after] == [nv.get("id") for nv in before]  # same position, same id
    assert [nv.get("value") for nv in after][-1] == "stop"
    assert [nv.attrib for nv in after][:-1] == [nv.attrib for nv in before][:-1]
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE6, bundle)


def test_a_cluster_built_before_the_profile_had_dc_deadtime_gets_just_that(lab: Params) -> None:
    """Stage 4 with today's fast profile on the captured cluster: one property set, nothing else touched."""
    bundle = properties(lab, FAST)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert [(c.key, c.action, c.detail) for c in p.changes] == [
        ("property dc-deadtime", "set", "unset (pacemaker default) -> 5s")]
    after = _conf(p.wanted_xml).find("crm_config/cluster_property_set[@id='cib-bootstrap-options']")
    assert after is not None and after[-1].attrib == {
        "id": "cib-bootstrap-options-dc-deadtime", "name": "dc-deadtime", "value": "5s"}
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE6, bundle)
    assert managed_missing(bundle, STAGE6) == ["property dc-deadtime"]


def test_a_profile_that_keeps_pacemakers_default_removes_a_dc_deadtime_set_before(lab: Params) -> None:
    """Switching fast -> seed: the property the fast profile set goes, so seed's cluster is seed's."""
    fast = plan(properties(lab, FAST), CibSnapshot.parse(STAGE6))
    bundle = properties(lab, SEED)
    assert bundle.unset == ("dc-deadtime",) and "property dc-deadtime" in bundle.ids()
    assert "dc-deadtime" not in bundle.crm()
    p = plan(bundle, CibSnapshot.parse(fast.wanted_xml))
    assert [(c.key, c.action, c.detail) for c in p.changes] == [
        ("property dc-deadtime", "unset", "5s -> unset (pacemaker default)")]
    assert same_configuration(p.wanted_xml, STAGE6) and _epoch(p.wanted_xml) == ("15", "0")
    assert managed_missing(bundle, fast.wanted_xml) == ["property dc-deadtime"]
    assert plan(bundle, CibSnapshot.parse(STAGE6)).empty  # never set: nothing to remove


def test_stonith_change(lab: Params) -> None:
    params = lab.model_copy(update={"pacemaker": lab.pacemaker.model_copy(update={"stonith_enabled": True})})
    p = plan(properties(params, FAST_AS_CAPTURED), CibSnapshot.parse(STAGE6))
    assert [(c.key, c.detail) for c in p.changes] == [("property stonith-enabled", "false -> true")]


def test_preferred_node_change_updates_constraint_in_place(lab: Params) -> None:
    params = lab.model_copy(update={"pacemaker": lab.pacemaker.model_copy(update={"preferred_node": "vm-node2"})})
    bundle = constraints(params)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert [(c.key, c.action) for c in p.changes] == [("location preferred-node", "update")]
    assert p.changes[0].detail == "-rsc_location[preferred-node]@node=vm-node1; +rsc_location[preferred-node]@node=vm-node2"
    cons = _conf(p.wanted_xml).find("constraints")
    assert cons is not None and [e.get("id") for e in cons] == ["httpd-with-vip", "preferred-node", "vip-needs-gateway"]
    assert cons[1].get("node") == "vm-node2"
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE6, bundle)


# ---------------------------------------------------------------- missing sections


@pytest.mark.parametrize("base", [STAGE3, STAGE6])
def test_rsc_defaults_section_created_in_schema_order(lab: Params, base: str) -> None:
    assert _conf(base).find("rsc_defaults") is None
    bundle = properties(lab, _sticky(100))
    p = plan(bundle, CibSnapshot.parse(base))
    assert ("rsc_defaults resource-stickiness", "set", "unset (pacemaker default) -> 100") in [
        (c.key, c.action, c.detail) for c in p.changes]
    conf = _conf(p.wanted_xml)
    tags = [c.tag for c in conf]
    assert tags == ["crm_config", "rsc_defaults", "nodes", "resources", "constraints"]
    assert [SECTION_ORDER.index(t) for t in tags] == sorted(SECTION_ORDER.index(t) for t in tags)
    meta = conf.find("rsc_defaults/meta_attributes")
    assert meta is not None and meta.get("id") == "rsc-options"
    assert [nv.attrib for nv in meta] == [
        {"id": "rsc-options-resource-stickiness", "name": "resource-stickiness", "value": "100"}]
    again = plan(bundle, CibSnapshot.parse(p.wanted_xml))
    assert again.empty and "rsc_defaults resource-stickiness" in again.unchanged
    changed = plan(properties(lab, _sticky(200)), CibSnapshot.parse(p.wanted_xml))
    assert [(c.key, c.detail) for c in changed.changes] == [("rsc_defaults resource-stickiness", "100 -> 200")]


def test_rsc_defaults_goes_before_op_defaults(lab: Params) -> None:
    base = STAGE3.replace("<nodes>", '<op_defaults><meta_attributes id="op-options"/></op_defaults>\n    <nodes>')
    p = plan(properties(lab, _sticky(1)), CibSnapshot.parse(base))
    assert [c.tag for c in _conf(p.wanted_xml)] == [
        "crm_config", "rsc_defaults", "op_defaults", "nodes", "resources", "constraints"]


def test_existing_rsc_defaults_set_is_reused(lab: Params) -> None:
    base = STAGE6.replace("<nodes>", (
        '<rsc_defaults><meta_attributes id="rsc-options">'
        '<nvpair id="rsc-options-migration-threshold" name="migration-threshold" value="3"/>'
        "</meta_attributes></rsc_defaults>\n    <nodes>"))
    p = plan(properties(lab, _sticky(50)), CibSnapshot.parse(base))
    meta = _conf(p.wanted_xml).findall("rsc_defaults/meta_attributes")
    assert len(meta) == 1
    assert [nv.get("name") for nv in meta[0]] == ["migration-threshold", "resource-stickiness"]


def test_missing_constraints_section_is_created_last(lab: Params) -> None:
    base = STAGE3.replace("    <constraints/>\n", "")
    assert "<constraints" not in base
    p = plan(constraints(lab), CibSnapshot.parse(base))
    assert [c.tag for c in _conf(p.wanted_xml)] == ["crm_config", "nodes", "resources", "constraints"]
    assert [e.get("id") for e in _conf(p.wanted_xml).find("constraints")] == [  # type: ignore[union-attr]
        "httpd-with-vip", "preferred-node", "vip-needs-gateway"]


def test_missing_resources_section_goes_before_constraints(lab: Params) -> None:
    base = STAGE3.replace("    <resources/>\n", "")
    p = plan(resources(lab, FAST), CibSnapshot.parse(base))
    assert [c.tag for c in _conf(p.wanted_xml)] == ["crm_config", "nodes", "resources", "constraints"]


# ---------------------------------------------------------------- conflicts


def test_top_level_ping_primitive_clashes_with_the_clone(lab: Params) -> None:
    stray = '<primitive id="ping-gateway" class="ocf" provider="pacemaker" type="ping"/>'
    base = STAGE3.replace("<resources/>", f"<resources>{stray}</resources>")
    with pytest.raises(CibConflict, match=r"clone cloned-ping-gateway: id\(s\) \['ping-gateway'\] already exist"):
        plan(resources(lab, FAST), CibSnapshot.parse(base))


def test_vip_id_used_by_a_constraint(lab: Params) -> None:
    base = STAGE3.replace("<constraints/>", '<constraints><rsc_location id="vip" rsc="x" score="10" node="vm-node2"/></constraints>')
    with pytest.raises(CibConflict, match=r"primitive vip: the CIB already has an element with id 'vip' inside <constraints"):
        plan(resources(lab, FAST), CibSnapshot.parse(base))


def test_vip_id_used_by_a_group_is_not_replaced(lab: Params) -> None:
    group = '<group id="vip"><primitive id="web" class="ocf" provider="heartbeat" type="Dummy"/></group>'
    base = STAGE3.replace("<resources/>", f"<resources>{group}</resources>")
    with pytest.raises(CibConflict, match=r"primitive vip: the CIB already has a <group> with id 'vip'"):
        plan(resources(lab, FAST), CibSnapshot.parse(base))


def test_nested_id_clash_on_add(lab: Params) -> None:
    other = ('<primitive id="other" class="ocf" provider="heartbeat" type="Dummy"><operations>'
             '<op id="vip-monitor-5s" name="monitor" interval="9s"/></operations></primitive>')
    base = STAGE3.replace("<resources/>", f"<resources>{other}</resources>")
    with pytest.raises(CibConflict, match=r"primitive vip: id\(s\) \['vip-monitor-5s'\] already exist"):
        plan(resources(lab, FAST), CibSnapshot.parse(base))


def test_nested_id_clash_on_update(lab: Params) -> None:
    other = ('<primitive id="other" class="ocf" provider="heartbeat" type="Dummy"><operations>'
             '<op id="vip-monitor-10s" name="monitor" interval="9s"/></operations></primitive>\n    </resources>')
    base = STAGE6.replace("</resources>", other, 1)
    with pytest.raises(CibConflict, match=r"primitive vip: id\(s\) \['vip-monitor-10s'\] already exist elsewhere"):
        plan(resources(lab, SEED), CibSnapshot.parse(base))


def test_conflict_is_a_cib_error() -> None:
    assert issubclass(CibConflict, CibError)


# ---------------------------------------------------------------- fence devices (params/lab.yaml as shipped)


def test_stage4_with_fencing_adds_one_device_per_node_and_turns_stonith_on() -> None:
    fenced = load_params(ROOT / "params" / "lab.yaml")
    assert fenced.pacemaker.stonith_enabled and fenced.pacemaker.fencing is not None
    bundle = properties(fenced, FAST_AS_CAPTURED)
    p = plan(bundle, CibSnapshot.parse(STAGE6))
    assert [(c.key, c.action) for c in p.changes] == [
        ("primitive fence-vm-node1", "add"),
        ("location fence-vm-node1-not-on-vm-node1", "add"),
        ("primitive fence-vm-node2", "add"),
        ("location fence-vm-node2-not-on-vm-node2", "add"),
        ("property stonith-enabled", "set"),
        ("property stonith-action", "set"),  # off: a fenced node stays off until someone looks at it
    ]
    conf = _conf(p.wanted_xml)
    devs = conf.findall("resources/primitive[@class='stonith']")
    assert [(d.get("id"), d.get("type"), d.get("provider")) for d in devs] == [
        ("fence-vm-node1", "fence_ipmilan", None), ("fence-vm-node2", "fence_ipmilan", None),
    ]
    attrs = {d.get("id"): {nv.get("name"): nv.get("value") for nv in d.iter("nvpair")} for d in devs}
    assert attrs["fence-vm-node1"]["pcmk_host_list"] == "vm-node1"
    assert attrs["fence-vm-node1"]["pcmk_delay_base"] == "5s"  # the preferred node wins a fence race
    assert "pcmk_delay_base" not in attrs["fence-vm-node2"]
    assert attrs["fence-vm-node2"]["ipport"] == "6232"
    for a in attrs.values():
        assert not {"password", "passwd", "password_script"} & set(a)  # the secret stays off the CIB
        assert a["ipmitool_path"] == "/usr/local/sbin/hakit-ipmitool"
    avoid = conf.findall("constraints/rsc_location")
    assert [(e.get("rsc"), e.get("score"), e.get("node")) for e in avoid if e.get("rsc", "").startswith("fence-")] == [
        ("fence-vm-node1", "-INFINITY", "vm-node1"), ("fence-vm-node2", "-INFINITY", "vm-node2"),
    ]
    # The article's resources and constraints are untouched, and a second plan has nothing to do.
    assert _owned_removed(p.wanted_xml, bundle) == _owned_removed(STAGE6, bundle)
    again = plan(bundle, CibSnapshot.parse(p.wanted_xml))
    assert again.empty and again.changes == []


# ---------------------------------------------------------------- op_defaults (pacemaker.op_timeout)


def _slow(params: Params, seconds: int | None) -> Params:
    return params.model_copy(update={"pacemaker": params.pacemaker.model_copy(update={"op_timeout": seconds})})


def test_op_timeout_becomes_op_defaults_in_schema_order(lab: Params) -> None:
    bundle = properties(_slow(lab, 60), FAST)
    assert "op_defaults timeout=60s\n" in bundle.crm()
    p = plan(bundle, CibSnapshot.parse(STAGE3))
    assert ("op_defaults timeout", "set", "unset (pacemaker default) -> 60s") in [
        (c.key, c.action, c.detail) for c in p.changes]
    conf = _conf(p.wanted_xml)
    assert [c.tag for c in conf] == ["crm_config", "op_defaults", "nodes", "resources", "constraints"]
    meta = conf.find("op_defaults/meta_attributes")
    assert meta is not None and meta.get("id") == "op-options"
    assert [nv.attrib for nv in meta] == [{"id": "op-options-timeout", "name": "timeout", "value": "60s"}]
    again = plan(bundle, CibSnapshot.parse(p.wanted_xml))
    assert again.empty and "op_defaults timeout" in again.unchanged
    longer = plan(properties(_slow(lab, 90), FAST), CibSnapshot.parse(p.wanted_xml))
    assert [(c.key, c.detail) for c in longer.changes] == [("op_defaults timeout", "60s -> 90s")]
    # rsc_defaults and op_defaults side by side keep the schema's order
    both = plan(properties(_slow(lab, 60), _sticky(5)), CibSnapshot.parse(STAGE3))
    assert [c.tag for c in _conf(both.wanted_xml)][:3] == ["crm_config", "rsc_defaults", "op_defaults"]


def test_no_op_timeout_no_op_defaults(lab: Params) -> None:
    assert lab.pacemaker.op_timeout is None
    assert "op_defaults" not in properties(lab, FAST).crm()


def test_op_timeout_raises_explicit_timeouts_below_it(lab: Params) -> None:
    def timeouts(params: Params) -> dict[str, str]:
        e = next(i for i in resources(params, FAST).items if i.key == "primitive httpd").xml()
        return {op.get("name"): op.get("timeout") for op in e.iter("op")}

    assert timeouts(lab) == {"start": "60s", "stop": "60s", "monitor": "20s"}  # the article's
    assert timeouts(_slow(lab, 45)) == {"start": "60s", "stop": "60s", "monitor": "45s"}  # only the one below
    assert timeouts(_slow(lab, 90)) == {"start": "90s", "stop": "90s", "monitor": "90s"}
