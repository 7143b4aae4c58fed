"""The quorum device: params validation, the rendered quorum section, the qnetd/quorumtool parsers on
output captured from the lab (corosync-qdevice/qnetd 3.0.3, Debian 13), and stage 03q's plan on facts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hakit.errors import ParamsError
from hakit.facts.corosync import parse_quorumtool_status
from hakit.facts.qnetd import parse_qdevice_status, parse_qnetd_list
from hakit.fencing import stonith_resources
from hakit.ops import Barrier, CopySecretFile
from hakit.params import load_params, parse_params
from hakit.render.corosync import parse_corosync_conf, render_corosync_conf
from hakit.stages import qdevice as stage
from hakit.stages.packages import wanted_for

ROOT = Path(__file__).resolve().parents[2]
CAP = "captured/trixie/"
PARAMS = ROOT / "params" / "lab-qdevice.yaml"


def _data() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def _with(**qd) -> dict:
    d = _data()
    d["quorum_device"] = {**d["quorum_device"], **qd}
    return d


def test_shipped_params_have_a_device():
    p = load_params(PARAMS)
    assert p.quorum_device is not None
    assert (p.quorum_device.host, p.quorum_device.algorithm, p.quorum_device.tls) == ("qnetd", "ffsplit", "on")


def test_yaml_bare_on_is_tls_on():
    assert parse_params(_with(tls=True)).quorum_device.tls == "on"


@pytest.mark.parametrize("change, words", [
    ({"host": "vm-node1"}, ["quorum_device.host", "'vm-node1'", "cluster node"]),
    ({"address": "10.93.1.11"}, ["quorum_device.address", "10.93.1.11", "vm-node1's public_ip"]),
    ({"address": "10.93.1.100"}, ["quorum_device.address", "vip.address"]),
    ({"address": "10.9.9.9"}, ["quorum_device.address", "10.9.9.9", "outside the subnet 10.93.1.0/24"]),
    ({"address": "qnetd.example.org"}, ["quorum_device.address", "IPv4 address in 10.93.1.0/24"]),
    ({"tls": False}, ["quorum_device.tls", "'on' or 'required'", "'off'"]),
    ({"algorithm": "2nodelms"}, ["quorum_device.algorithm", "'ffsplit' or 'lms'", "'2nodelms'"]),
    ({"port": 70000}, ["quorum_device.port", "65535", "70000"]),
    ({"host": "Q_NETD"}, ["quorum_device.host", "'Q_NETD'", "host name"]),
])
def test_bad_device_refused_naming_field_value_and_what_is_valid(change, words):
    with pytest.raises(ParamsError) as e:
        parse_params(_with(**change))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_quorum_policy_ignore_refused_with_a_device():
    d = _data()
    del d["pacemaker"]["no_quorum_policy"]
    with pytest.raises(ParamsError, match="no_quorum_policy is ignore .* set pacemaker.no_quorum_policy: stop"):
        parse_params(d)


def test_ffsplit_needs_an_even_cluster():
    d = _data()
    d["nodes"].append({"name": "vm-node3", "nodeid": 3, "private_ip": "10.93.0.13", "public_ip": "10.93.1.13"})
    with pytest.raises(ParamsError, match="ffsplit is for clusters with an even number of nodes, and this one has 3; use algorithm lms"):
        parse_params(d)
    d["quorum_device"]["algorithm"] = "lms"
    assert parse_params(d).quorum_device.algorithm == "lms"


def test_rendered_quorum_section_has_the_device_and_no_two_node():
    p = load_params(PARAMS)
    q = parse_corosync_conf(render_corosync_conf(p))["quorum"]
    assert "two_node" not in q
    assert q["device"]["model"] == "net"
    assert q["device"]["votes"] == "1"  # corosync-qdevice refuses ffsplit without it
    assert q["device"]["net"] == {"host": "10.93.1.50", "algorithm": "ffsplit", "tls": "on"}
    lms = parse_corosync_conf(render_corosync_conf(parse_params(_with(algorithm="lms", port=5500))))["quorum"]
    assert "votes" not in lms["device"] and lms["device"]["net"]["port"] == "5500"


def test_without_a_device_two_node_stays():
    p = load_params(ROOT / "params" / "lab.yaml")
    assert parse_corosync_conf(render_corosync_conf(p))["quorum"]["two_node"] == "1"


def test_no_fence_delay_with_a_device():
    with_dev = load_params(PARAMS)
    assert all("pcmk_delay_base" not in r.attributes for r in stonith_resources(with_dev))
    d = _data()
    del d["quorum_device"]
    d["pacemaker"]["no_quorum_policy"] = "ignore"
    without = parse_params(d)
    assert [r.attributes.get("pcmk_delay_base") for r in stonith_resources(without)] == ["5s", None]


def test_stage00_installs_qdevice_only_with_a_device():
    assert "corosync-qdevice" in wanted_for(load_params(PARAMS), "trixie")
    assert "corosync-qdevice" not in wanted_for(load_params(ROOT / "params" / "lab.yaml"), "trixie")


# ---------------------------------------------------------------- parsers on captured output


def test_quorumtool_with_qdevice_captured(load_fixture):
    q = parse_quorumtool_status(load_fixture(CAP + "quorumtool-2node-qdevice.txt"))
    assert q.quorate and not q.two_node
    assert (q.expected_votes, q.total_votes) == (3, 3)
    assert q.qdevice is not None and q.qdevice.votes == 1
    assert [m.qdevice for m in q.members] == ["A,V,NMW", "A,V,NMW"]


@pytest.mark.parametrize("fixture", ["qnetd-tool-l-2node.txt", "qnetd-tool-lv-2node.txt"])
def test_qnetd_tool_lists_the_cluster(fixture, load_fixture):
    clusters = parse_qnetd_list(load_fixture(CAP + fixture))
    c = clusters["hakit-testq"]
    assert c.algorithm.startswith("Fifty-Fifty split")
    assert [x.nodeid for x in c.clients] == [1, 2]
    assert all(x.acked for x in c.clients)  # "ACK (ACK)" and "No change (ACK)": both in force
    assert c.client(2).membership == (1, 2) and c.client(2).address.endswith(":49834")
    assert all(x.tls_verified for x in c.clients) == (fixture.endswith("lv-2node.txt"))


def test_quorumtool_qnetd_lost_captured(load_fixture):
    q = parse_quorumtool_status(load_fixture(CAP + "quorumtool-2node-qdevice-qnetd-lost.txt"))
    assert q.quorate and (q.expected_votes, q.total_votes) == (3, 2)
    assert q.qdevice is not None and q.qdevice.votes == 0
    assert [m.qdevice for m in q.members] == ["A,NV,NMW", "A,NV,NMW"]


def test_qdevice_tool_connected_and_connecting(load_fixture):
    up = parse_qdevice_status(load_fixture(CAP + "qdevice-tool-s-connected.txt"))
    assert up.connected and (up.model, up.algorithm, up.qnetd_host) == ("Net", "Fifty-Fifty split", "10.193.1.50:5403")
    down = parse_qdevice_status(load_fixture(CAP + "qdevice-tool-s-connecting.txt"))
    assert not down.connected and down.state == "Connecting"
    with pytest.raises(ValueError, match="corosync-qdevice-tool"):
        parse_qdevice_status("Can't connect to QDevice socket (is QDevice running?): No such file or directory\n")


def test_qnetd_tool_empty_and_garbage():
    assert parse_qnetd_list("") == {}
    with pytest.raises(ValueError, match="corosync-qnetd-tool"):
        parse_qnetd_list("    Node ID 1:\n")


# ---------------------------------------------------------------- stage 03q plan (pure)

CA = "a" * 64


def _facts(qnetd: dict | None = None, **node) -> stage.QdeviceFacts:
    q = {"installed": True, "has_db": True, "ca_sha256": CA, "active": True, "enabled": True} | (qnetd or {})
    n = {"installed": True, "has_db": True, "ca_sha256": CA, "has_cluster_cert": True, "active": True,
         "enabled": True, "device_model": "net"} | node
    return stage.QdeviceFacts(stage.QnetdFacts("qnetd", **q),
                              {x: stage.NodeFacts(x, **n) for x in ("vm-node1", "vm-node2")})


def test_plan_done_changes_nothing():
    p = stage.plan(load_params(PARAMS), _facts())
    assert p.empty and not p.ops
    assert set(p.no_change) == {"vm-node1", "vm-node2", "qnetd"}


def test_plan_fresh_follows_the_documented_certificate_flow():
    p = stage.plan(load_params(PARAMS), _facts({"has_db": False, "ca_sha256": None, "active": False, "enabled": False},
                                               has_db=False, ca_sha256=None, has_cluster_cert=False, active=False,
                                               enabled=False))
    prog = [ln for ln in p.program()]
    text = "\n".join(prog)
    order = ["corosync-qnetd-certutil -i", "systemctl start corosync-qnetd", "corosync-qdevice-net-certutil -i -c",
             "corosync-qdevice-net-certutil -r -n hakit-qdev", "corosync-qnetd-certutil -s -c",
             "corosync-qdevice-net-certutil -M -c", "corosync-qdevice-net-certutil -m -c",
             "systemctl start corosync-qdevice", "systemctl enable corosync-qdevice"]
    pos = [text.index(o) for o in order]
    assert pos == sorted(pos), text
    copies = [o for o in p.ops if isinstance(o, CopySecretFile)]
    # CA to both nodes, request to qnetd, signed certificate back, PKCS#12 to the second node
    assert [(c.src_node, c.node) for c in copies] == [
        ("qnetd", "vm-node1"), ("qnetd", "vm-node2"), ("vm-node1", "qnetd"), ("qnetd", "vm-node1"), ("vm-node1", "vm-node2")]
    p12 = copies[-1]
    assert p12.path == stage.P12 and p12.mode == 0o600
    assert any(isinstance(o, Barrier) for o in p.ops)
    # no command line carries key material: files travel by SFTP, only paths are named
    assert all(".p12" not in o.describe() or "copy" in o.describe() or "-M" in o.describe() or "-m" in o.describe()
               for o in p.ops)


def test_plan_node_from_another_ca_redoes_every_node_and_restarts_qdevice():
    p = stage.plan(load_params(PARAMS), _facts(ca_sha256="b" * 64))
    assert "corosync-qnetd-certutil -i" not in "\n".join(p.program())  # the qnetd CA is kept
    assert sum("corosync-qdevice-net-certutil -i" in ln for ln in p.program()) == 2
    assert [ln for ln in p.program() if "restart corosync-qdevice" in ln] == [
        "vm-node1  systemctl restart corosync-qdevice", "vm-node2  systemctl restart corosync-qdevice"]
    ca_copies = [o for o in p.ops if isinstance(o, CopySecretFile) and o.src_path == stage.QNETD_CA]
    assert {o.expect_sha256 for o in ca_copies} == {CA}  # pinned to the CA the plan saw


def test_plan_one_node_wiped_redoes_and_restarts_every_node():
    f = _facts()
    wiped = stage.NodeFacts("vm-node2", True, False, None, False, True, True, "net")
    p = stage.plan(load_params(PARAMS), stage.QdeviceFacts(f.qnetd, {"vm-node1": f.nodes["vm-node1"], "vm-node2": wiped}))
    assert sum("corosync-qdevice-net-certutil -i" in ln for ln in p.program()) == 2
    assert [ln for ln in p.program() if "restart corosync-qdevice" in ln] == [
        "vm-node1  systemctl restart corosync-qdevice", "vm-node2  systemctl restart corosync-qdevice"]


def test_plan_blocked_before_stage03_or_packages():
    p = stage.plan(load_params(PARAMS), _facts(device_model=None))
    assert set(p.blocked) == {"vm-node1", "vm-node2"} and not p.ops
    assert "run stage 03" in p.blocked["vm-node1"]
    p = stage.plan(load_params(PARAMS), _facts(installed=False))
    assert "00_packages" in p.blocked["vm-node1"]


def test_node_state_fact_parses():
    f = stage.parse_node_facts("installed=yes\ndb=yes\nca=" + CA + "\ncert=no\nmodel=net\nactive=inactive\nenabled=disabled\n")
    assert f.has_db and not f.has_cluster_cert and f.device_model == "net" and not f.active and not f.done(CA)
    q = stage.parse_qnetd_facts("installed=yes\ndb=no\nca=\nactive=failed\nenabled=enabled\n")
    assert not q.has_db and q.ca_sha256 is None and q.enabled and not q.active


def test_dry_run_sends_only_reads_and_connects_nothing_new():
    from hakit.runner import FakeRunner
    from hakit.stages.driver import StageRun

    params = load_params(PARAMS)
    node_state = "installed=yes\ndb=no\nca=\ncert=no\nmodel=net\nactive=inactive\nenabled=disabled\n"
    hosts = {n: FakeRunner(n).answer("certutil -L", node_state) for n in ("vm-node1", "vm-node2")}
    hosts["qnetd"] = FakeRunner("qnetd").answer("corosync-qnetd", "installed=yes\ndb=no\nca=\nactive=inactive\nenabled=disabled\n")
    run = StageRun(stage.QdeviceStage(params), hosts, dry_run=True)
    run.gather()
    plan = run.make_plan()
    res = run.apply()
    assert res.dry_run and not plan.empty and "corosync-qdevice-net-certutil -M" in "\n".join(res.program)
    reads = (r"^dpkg-query -W -f='\$\{db:Status-Abbrev\}' corosync-q(netd|device) .*(certutil -L|systemctl is-enabled)",)
    for h in hosts.values():
        assert h.sent and not h.changing(reads), (h.name, [s.what for s in h.changing(reads)])
