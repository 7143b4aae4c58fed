"""The article's pacemaker configuration (stages 4-6) as crm shell text and CIB XML.

Golden files pin the whole rendering per params set and timing profile; the
other tests check the values that matter one by one, so a wrong golden cannot
hide them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from hakit.params import Params
from hakit.profiles import FAST, SEED, Profile, get_profile
from hakit.render.cib import (
    Bundle,
    Clone,
    LocationPrefers,
    LocationRule,
    Primitive,
    Property,
    RscDefault,
    constraints,
    properties,
    resources,
    score_xml,
    xml_text,
)


def _bundles(params: Params, profile: Profile) -> tuple[Bundle, Bundle, Bundle]:
    return properties(params, profile), resources(params, profile), constraints(params)


def _xml(bundle: Bundle) -> dict[str, ET.Element]:
    """Each item's element by its id (nvpairs by name)."""
    out: dict[str, ET.Element] = {}
    for item in bundle.items:
        e = item.xml()
        out[e.get("name") if e.tag == "nvpair" else e.get("id")] = e  # type: ignore[index]
    return out


def _nv(e: ET.Element, kind: str = "instance_attributes") -> dict[str, str]:
    return {nv.get("name", ""): nv.get("value", "") for s in e.findall(kind) for nv in s.iter("nvpair")}


def _with_stickiness(profile: Profile, value: int | None) -> Profile:
    return profile.model_copy(update={"resources": profile.resources.model_copy(update={"resource_stickiness": value})})


@pytest.mark.parametrize("profile", ["seed", "fast"])
@pytest.mark.parametrize("params_name", ["lab", "lab3"])
def test_golden(
    params_name: str, profile: str, request: pytest.FixtureRequest, golden: Callable[[str, str], None]
) -> None:
    params: Params = request.getfixturevalue(params_name)
    bundles = _bundles(params, get_profile(profile))
    golden(f"cib/{params_name}-{profile}.crm", "".join(b.crm() for b in bundles))
    golden(f"cib/{params_name}-{profile}.xml", "".join(xml_text(b) for b in bundles))


def test_xml_text_is_well_formed_and_commented(lab: Params) -> None:
    for bundle in _bundles(lab, FAST):
        text = xml_text(bundle)
        root = ET.fromstring(f"<all>{text}</all>")
        assert [e.get("id") for e in root] == [i.xml().get("id") for i in bundle.items]
        for item in bundle.items:
            assert f"<!-- {item.section}: {item.key} -->" in text


def test_stage_names_and_keys(lab: Params) -> None:
    props, rscs, cons = _bundles(lab, FAST)
    assert props.stage.startswith("04") and rscs.stage.startswith("05") and cons.stage.startswith("06")
    assert props.ids() == [
        "primitive fence-vm-node1", "location fence-vm-node1-not-on-vm-node1",
        "primitive fence-vm-node2", "location fence-vm-node2-not-on-vm-node2",
        "property stonith-enabled", "property no-quorum-policy", "property stonith-action",
        "property dc-deadtime",
    ]
    assert _bundles(lab, SEED)[0].ids()[-1] == "property dc-deadtime"  # owned at pacemaker's default
    assert rscs.ids() == ["primitive vip", "primitive httpd", "clone cloned-ping-gateway"]
    assert cons.ids() == ["colocation httpd-with-vip", "location preferred-node", "location vip-needs-gateway"]
    assert {i.section for i in props.items} == {"resources", "constraints", "crm_config"}
    assert {i.section for i in rscs.items} == {"resources"}
    assert {i.section for i in cons.items} == {"constraints"}


def test_constraints_crm_text_is_the_articles(lab: Params) -> None:
    assert constraints(lab).crm() == (
        "colocation httpd-with-vip inf: httpd vip\n"
        "location preferred-node vip 100: vm-node1\n"
        "location vip-needs-gateway vip rule -inf: not_defined pingd or pingd lte 0\n"
    )


def test_constraints_xml(lab: Params) -> None:
    x = _xml(constraints(lab))
    assert x["httpd-with-vip"].tag == "rsc_colocation"
    assert x["httpd-with-vip"].attrib == {"id": "httpd-with-vip", "score": "INFINITY", "rsc": "httpd", "with-rsc": "vip"}
    assert x["preferred-node"].attrib == {"id": "preferred-node", "rsc": "vip", "score": "100", "node": "vm-node1"}
    loc = x["vip-needs-gateway"]
    assert (loc.tag, loc.attrib) == ("rsc_location", {"id": "vip-needs-gateway", "rsc": "vip"})
    (rule,) = list(loc)
    assert rule.attrib == {"id": "vip-needs-gateway-rule", "score": "-INFINITY", "boolean-op": "or"}
    assert [e.attrib for e in rule] == [
        {"id": "vip-needs-gateway-rule-expression", "operation": "not_defined", "attribute": "pingd"},
        {"id": "vip-needs-gateway-rule-expression-0", "operation": "lte", "attribute": "pingd", "value": "0"},
    ]


@pytest.mark.parametrize(("crm", "xml"), [("inf", "INFINITY"), ("+inf", "INFINITY"), ("-inf", "-INFINITY"),
                                         ("INF", "INFINITY"), ("100", "100"), (-50, "-50")])
def test_score_xml(crm: str | int, xml: str) -> None:
    assert score_xml(crm) == xml


def test_preferred_node_from_params(lab: Params, lab3: Params) -> None:
    assert lab.pacemaker.preferred_node is None  # default: the first node
    moved = lab.model_copy(update={"pacemaker": lab.pacemaker.model_copy(update={"preferred_node": "vm-node2"})})
    assert "location preferred-node vip 100: vm-node2\n" in constraints(moved).crm()
    assert _xml(constraints(moved))["preferred-node"].get("node") == "vm-node2"
    three = lab3.model_copy(update={"pacemaker": lab3.pacemaker.model_copy(update={"preferred_node": "vm-node3"})})
    assert _xml(constraints(three))["preferred-node"].get("node") == "vm-node3"
    assert _xml(constraints(lab3))["preferred-node"].get("node") == "vm-node1"


@pytest.mark.parametrize("params_name", ["lab", "lab3"])
def test_vip_params(params_name: str, request: pytest.FixtureRequest) -> None:
    params: Params = request.getfixturevalue(params_name)
    vip = _xml(resources(params, FAST))["vip"]
    assert (vip.get("class"), vip.get("provider"), vip.get("type")) == ("ocf", "heartbeat", "IPaddr2")
    pub = params.networks.public
    assert _nv(vip) == {"ip": str(params.vip.address), "cidr_netmask": str(pub.subnet.prefixlen), "nic": "bond1"}
    assert pub.bond == "bond1"
    ia = vip.find("instance_attributes")
    assert ia is not None and ia.get("id") == "vip-instance_attributes"
    assert [nv.get("id") for nv in ia] == [
        "vip-instance_attributes-ip", "vip-instance_attributes-cidr_netmask", "vip-instance_attributes-nic"]


def test_vip_netmask_follows_public_subnet(lab: Params) -> None:
    pub = lab.networks.public.model_copy(update={"subnet": lab.networks.public.subnet.supernet(new_prefix=16)})
    wider = lab.model_copy(update={"networks": lab.networks.model_copy(update={"public": pub})})
    assert _nv(_xml(resources(wider, FAST))["vip"])["cidr_netmask"] == "16"
    assert "cidr_netmask=16 " in resources(wider, FAST).crm()


@pytest.mark.parametrize("params_name", ["lab", "lab3"])
def test_ping_clone(params_name: str, request: pytest.FixtureRequest) -> None:
    params: Params = request.getfixturevalue(params_name)
    clone = _xml(resources(params, SEED))["cloned-ping-gateway"]
    (ping,) = list(clone)
    assert (ping.tag, ping.get("id"), ping.get("type"), ping.get("provider")) == (
        "primitive", "ping-gateway", "ping", "pacemaker")
    t = SEED.resources
    assert _nv(ping) == {
        "host_list": str(params.networks.public.gateway),
        "multiplier": "1000",
        "dampen": f"{t.ping_dampen}s",
        "attempts": str(t.ping_attempts),
        "timeout": str(t.ping_timeout),
    }
    assert [op.attrib for op in ping.iter("op")] == [
        {"name": "monitor", "interval": "15s", "id": "ping-gateway-monitor-15s", "timeout": "60s"}]
    assert resources(params, SEED).crm().endswith("\nclone cloned-ping-gateway ping-gateway\n")


@pytest.mark.parametrize("profile", [SEED, FAST])
def test_monitor_intervals_follow_profile(lab: Params, profile: Profile) -> None:
    t = profile.resources
    x = _xml(resources(lab, profile))
    ops = {rid: [(o.get("name"), o.get("interval"), o.get("id"), o.get("timeout")) for o in e.iter("op")]
           for rid, e in x.items()}
    assert ops["vip"] == [("monitor", f"{t.vip_monitor}s", f"vip-monitor-{t.vip_monitor}s", None)]
    assert ops["httpd"] == [
        ("start", "0s", "httpd-start-0s", "60s"),
        ("stop", "0s", "httpd-stop-0s", "60s"),
        ("monitor", f"{t.httpd_monitor}s", f"httpd-monitor-{t.httpd_monitor}s", "20s"),
    ]
    assert ops["cloned-ping-gateway"][0][1] == f"{t.ping_monitor}s"
    crm = resources(lab, profile).crm()
    assert f"op monitor interval={t.vip_monitor}s\n" in crm
    assert f"op monitor interval={t.httpd_monitor}s timeout=20s\n" in crm
    assert "op start timeout=60s \\\n" in crm  # interval 0s is implied in crm text


def test_seed_and_fast_differ_only_in_timings(lab: Params) -> None:
    assert resources(lab, SEED).crm() != resources(lab, FAST).crm()
    seed, fast = properties(lab, SEED), properties(lab, FAST)  # neither sets stickiness
    assert fast.items[:-1] == seed.items and fast.items[-1] == Property("dc-deadtime", "5s")
    assert (seed.unset, fast.unset) == (("dc-deadtime",), ())


def test_dc_deadtime_as_the_cib_holds_it(lab: Params) -> None:
    """The value crm_attribute --update stores, in the set and with the id crm_attribute gives it."""
    assert (FAST.dc_deadtime, FAST.dc_deadtime_value, SEED.dc_deadtime_value) == (5, "5s", None)
    assert "property dc-deadtime=5s\n" in properties(lab, FAST).crm()
    assert _xml(properties(lab, FAST))["dc-deadtime"].attrib == {
        "id": "cib-bootstrap-options-dc-deadtime", "name": "dc-deadtime", "value": "5s"}


def test_profile_defaults_to_params_profile(lab: Params) -> None:
    assert lab.cluster.profile == "fast"
    assert resources(lab) == resources(lab, FAST)
    assert resources(lab) != resources(lab, SEED)


def test_apache_params_quoted_only_when_needed(lab: Params) -> None:
    httpd = next(i for i in resources(lab, FAST).items if isinstance(i, Primitive) and i.id == "httpd")
    assert "params configfile=/etc/apache2/apache2.conf statusurl=http://localhost/server-status \\\n" in httpd.crm()
    spaced = Primitive("x", "ocf:heartbeat:Dummy", (("state", "/var/run/my state"), ("fake", "plain")))
    assert spaced.crm() == 'primitive x ocf:heartbeat:Dummy \\\n    params state="/var/run/my state" fake=plain'


@pytest.mark.parametrize(("enabled", "value"), [(True, "true"), (False, "false")])
def test_stonith_enabled(lab: Params, enabled: bool, value: str) -> None:
    pm = lab.pacemaker.model_copy(update={"stonith_enabled": enabled})
    params = lab.model_copy(update={"pacemaker": pm})
    bundle = properties(params, FAST)
    assert f"property stonith-enabled={value}\n" in bundle.crm()
    nv = _xml(bundle)["stonith-enabled"]
    assert nv.attrib == {"id": "cib-bootstrap-options-stonith-enabled", "name": "stonith-enabled", "value": value}


@pytest.mark.parametrize("policy", ["ignore", "stop", "freeze", "demote"])
def test_no_quorum_policy(article: Params, policy: str) -> None:
    params = article.model_copy(update={"pacemaker": article.pacemaker.model_copy(update={"no_quorum_policy": policy})})
    bundle = properties(params, SEED)
    assert bundle.crm() == f"property stonith-enabled=false\nproperty no-quorum-policy={policy}\n"
    assert _xml(bundle)["no-quorum-policy"].get("id") == "cib-bootstrap-options-no-quorum-policy"


def test_stickiness_only_when_profile_sets_it(lab: Params) -> None:
    assert FAST.resources.resource_stickiness is None and SEED.resources.resource_stickiness is None
    assert not any(isinstance(i, RscDefault) for i in properties(lab, FAST).items)
    assert "rsc_defaults" not in properties(lab, SEED).crm()

    sticky = _with_stickiness(FAST, 100)
    bundle = properties(lab, sticky)
    assert bundle.crm().endswith("rsc_defaults resource-stickiness=100\n")
    (rd,) = [i for i in bundle.items if isinstance(i, RscDefault)]
    assert rd.section == "rsc_defaults" and rd.key == "rsc_defaults resource-stickiness"
    assert rd.xml().attrib == {"id": "rsc-options-resource-stickiness", "name": "resource-stickiness", "value": "100"}
    assert "<!-- rsc_defaults: rsc_defaults resource-stickiness -->" in xml_text(bundle)

    zero = properties(lab, _with_stickiness(FAST, 0))  # 0 is a value, not "unset"
    assert "rsc_defaults resource-stickiness=0\n" in zero.crm()


def test_item_types(lab: Params) -> None:
    props, rscs, cons = _bundles(lab, FAST)
    assert [type(i).__name__ for i in props.items] == ["Primitive", "LocationPrefers"] * 2 + ["Property"] * 4
    assert [type(i) for i in rscs.items] == [Primitive, Primitive, Clone]
    assert [type(i).__name__ for i in cons.items] == ["Colocation", "LocationPrefers", "LocationRule"]
    rule = cons.items[2]
    assert isinstance(rule, LocationRule) and isinstance(cons.items[1], LocationPrefers)
    assert rule.boolean_op == "or" and rule.score == "-inf"


def test_fence_device_crm_and_xml(lab: Params) -> None:
    dev = next(i for i in properties(lab, FAST).items if isinstance(i, Primitive))
    assert dev.crm() == (
        "primitive fence-vm-node1 stonith:fence_ipmilan \\\n"
        "    params ip=10.77.0.254 ipport=6231 username=hakit lanplus=1 cipher=3 "
        "ipmitool_path=/usr/local/sbin/hakit-ipmitool method=onoff pcmk_host_list=vm-node1 power_wait=0 pcmk_delay_base=5s \\\n"
        "    op monitor interval=60s"
    )
    x = dev.xml()
    assert x.attrib == {"id": "fence-vm-node1", "class": "stonith", "type": "fence_ipmilan"}  # no provider
    loc = next(i for i in properties(lab, FAST).items if isinstance(i, LocationPrefers))
    assert loc.crm() == "location fence-vm-node1-not-on-vm-node1 fence-vm-node1 -inf: vm-node1"


def test_article_properties_have_no_devices(article: Params) -> None:
    assert properties(article, SEED).crm() == "property stonith-enabled=false\nproperty no-quorum-policy=ignore\n"


def _policy(params: Params, **kw: object) -> Params:
    pm = params.pacemaker
    return params.model_copy(update={"pacemaker": pm.model_copy(update={"resources": pm.resources.model_copy(update=kw)})})


def test_failure_policy_is_meta_of_vip_and_httpd_only(lab: Params) -> None:
    assert lab.pacemaker.resources.migration_threshold == 1 and lab.pacemaker.resources.failure_timeout == 60
    x = _xml(resources(lab, FAST))
    for rid in ("vip", "httpd"):
        assert _nv(x[rid], "meta_attributes") == {"migration-threshold": "1", "failure-timeout": "60s"}
        meta = x[rid].find("meta_attributes")
        assert meta is not None and meta.get("id") == f"{rid}-meta_attributes"
        assert [nv.get("id") for nv in meta] == [
            f"{rid}-meta_attributes-migration-threshold", f"{rid}-meta_attributes-failure-timeout"]
    assert _nv(x["cloned-ping-gateway"], "primitive/meta_attributes") == {}  # the clone restarts in place
    assert resources(lab, FAST).crm().count("    meta migration-threshold=1 failure-timeout=60s \\\n") == 2


def test_restart_in_place_is_one_setting_away(lab: Params) -> None:
    in_place = _policy(lab, migration_threshold=None)
    assert not in_place.pacemaker.resources.moves_on_failure
    x = _xml(resources(in_place, FAST))
    assert _nv(x["httpd"], "meta_attributes") == {"failure-timeout": "60s"}
    bare = _policy(lab, migration_threshold=None, failure_timeout=None)
    assert _xml(resources(bare, FAST))["httpd"].find("meta_attributes") is None
    assert "meta" not in resources(bare, FAST).crm()


def test_stickiness_counts_twice_against_the_preferred_score(lab: Params) -> None:
    assert lab.pacemaker.resources.fails_back
    sticky = _policy(lab, resource_stickiness=60)
    assert not sticky.pacemaker.resources.fails_back  # 60 + 60 > 100 (measured: vip scores 120 on the survivor)
    assert _policy(lab, resource_stickiness=40).pacemaker.resources.fails_back
    assert _nv(_xml(resources(sticky, FAST))["vip"], "meta_attributes")["resource-stickiness"] == "60"


# ---- the cloned-apache layout (pacemaker.layout): Apache on every node, only the VIP moves


def _cloned(params: Params) -> Params:
    return params.model_copy(update={"pacemaker": params.pacemaker.model_copy(update={"layout": "cloned-apache"})})


def test_cloned_golden(lab: Params, golden: Callable[[str, str], None]) -> None:
    bundles = _bundles(_cloned(lab), FAST)
    golden("cib/lab-cloned-apache-fast.crm", "".join(b.crm() for b in bundles))
    golden("cib/lab-cloned-apache-fast.xml", "".join(xml_text(b) for b in bundles))


def test_cloned_apache_is_a_clone_of_the_same_primitive(lab: Params) -> None:
    article, cloned = resources(lab, FAST), resources(_cloned(lab), FAST)
    httpd = next(i for i in article.items if isinstance(i, Primitive) and i.id == "httpd")
    clone = next(i for i in cloned.items if isinstance(i, Clone) and i.id == "httpd-clone")
    assert clone.primitive == httpd  # same agent, params, ops and failure policy (migration-threshold inside)
    assert article.ids() == ["primitive vip", "primitive httpd", "clone cloned-ping-gateway"]
    assert cloned.ids() == ["primitive vip", "clone httpd-clone", "clone cloned-ping-gateway"]
    e = clone.xml()
    assert [c.tag for c in e] == ["primitive", "meta_attributes"]
    assert _nv(e, "meta_attributes") == {"interleave": "true"}
    assert _nv(e.find("primitive"), "meta_attributes") == {"migration-threshold": "1", "failure-timeout": "60s"}
    assert clone.crm().endswith("clone httpd-clone httpd \\\n    meta interleave=true")


def test_cloned_constraints_put_the_vip_with_apache(lab: Params) -> None:
    b = constraints(_cloned(lab))
    assert b.crm().splitlines()[0] == "colocation vip-with-httpd inf: vip httpd-clone"
    x = _xml(b)
    assert x["vip-with-httpd"].attrib == {"id": "vip-with-httpd", "score": "INFINITY", "rsc": "vip",
                                          "with-rsc": "httpd-clone"}
    assert "httpd-with-vip" not in x
    assert x["preferred-node"].get("rsc") == "vip" and x["vip-needs-gateway"].get("rsc") == "vip"
    # the location preference and the gateway rule are the same elements in both layouts
    article = _xml(constraints(lab))
    for cid in ("preferred-node", "vip-needs-gateway"):
        assert ET.tostring(x[cid]) == ET.tostring(article[cid])


def test_notebook_06_shows_both_layouts_side_by_side(lab: Params) -> None:
    from hakit.stages.constraints import layout_texts

    t = layout_texts(lab)
    assert list(t) == ["article", "cloned-apache"]
    assert t["article"].endswith("colocation httpd-with-vip inf: httpd vip\n") and "clone" not in t["article"]
    assert t["cloned-apache"].endswith("clone httpd-clone httpd \\\n    meta interleave=true\n"
                                       "colocation vip-with-httpd inf: vip httpd-clone\n")
    assert t["article"].split("\ncolocation")[0] in t["cloned-apache"]  # the same httpd primitive in both
