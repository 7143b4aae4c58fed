"""Params validation: good files load; bad input fails with field, value and what is valid."""

import copy
from pathlib import Path

import pytest
import yaml

from hakit.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]


def lab_data() -> dict:
    return yaml.safe_load((ROOT / "params/lab.yaml").read_text())


@pytest.mark.parametrize("name", ["lab.yaml", "lab-3node.yaml", "example-real.yaml"])
def test_shipped_params_load(name):
    p = load_params(ROOT / "params" / name)
    assert len(p.nodes) >= 2
    assert p.vip.address in p.networks.public.subnet


def test_lab_defaults():
    p = load_params(ROOT / "params/lab.yaml")
    assert [n.name for n in p.nodes] == ["vm-node1", "vm-node2"]
    assert p.networks.private.bond == "bond0" and p.networks.public.bond == "bond1"
    assert p.lab is not None and p.lab.id == "hk"
    assert str(p.ssh_address(p.nodes[0])) == "10.77.1.11"


def bad(mutate) -> str:
    d = lab_data()
    mutate(d)
    with pytest.raises(ParamsError) as e:
        parse_params(d, "test.yaml")
    return str(e.value)


def test_unknown_key_is_a_typo():
    msg = bad(lambda d: d["cluster"].update(proflie="fast"))
    assert "cluster.proflie" in msg and "unknown key" in msg


def test_vip_outside_public_subnet():
    msg = bad(lambda d: d["vip"].update(address="10.77.0.100"))
    assert "vip.address" in msg and "10.77.0.100" in msg and "10.77.1.0/24" in msg


def test_malformed_ip():
    msg = bad(lambda d: d["nodes"][0].update(public_ip="10.77.1.300"))
    assert "nodes.0.public_ip" in msg and "10.77.1.300" in msg


def test_prefix_out_of_range():
    def m(d):
        d["networks"]["public"]["subnet"] = "10.77.1.0/40"
    assert "networks.public.subnet" in bad(m)


def test_prefix_too_small_for_a_cluster():
    def m(d):
        d["networks"]["private"]["subnet"] = "10.77.0.0/31"
    msg = bad(m)
    assert "/31" in msg and "/8 to /30" in msg


def test_duplicate_node_name():
    msg = bad(lambda d: d["nodes"][1].update(name="vm-node1"))
    assert "nodes[1].name vm-node1 repeats nodes[0].name" in msg


def test_duplicate_nodeid_and_ip():
    assert "nodeid" in bad(lambda d: d["nodes"][1].update(nodeid=1))
    assert "private_ip" in bad(lambda d: d["nodes"][1].update(private_ip="10.77.0.11"))


def test_single_node_is_refused():
    msg = bad(lambda d: d.update(nodes=d["nodes"][:1]))
    assert "at least 2" in msg


def test_node_address_outside_its_network():
    msg = bad(lambda d: d["nodes"][0].update(private_ip="10.77.1.50"))
    assert "nodes[0].private_ip 10.77.1.50 is outside the subnet 10.77.0.0/24" in msg


def test_bad_interface_name():
    def m(d):
        d["networks"]["public"]["bond"] = "bond 1"
    assert "not a valid Linux interface name" in bad(m)


def test_interface_used_twice():
    def m(d):
        d["networks"]["public"]["slaves"] = ["eth0", "eth3"]
    assert "eth0" in bad(m)


def test_overlapping_networks():
    def m(d):
        d["networks"]["public"]["subnet"] = "10.77.0.0/16"
    assert "overlaps" in bad(m)


def test_vip_collides_with_gateway():
    assert "already a node or gateway" in bad(lambda d: d["vip"].update(address="10.77.1.1"))


def test_real_hosts_need_pinned_keys():
    def m(d):
        del d["lab"]
    msg = bad(m)
    assert "ssh.known_hosts" in msg and "pinned" in msg


def test_bad_lab_id():
    msg = bad(lambda d: d["lab"].update(id="toolong"))
    assert "lab.id" in msg and "1-4" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("cluster: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(f)


def test_top_level_not_a_mapping(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(f)


def test_missing_required_field():
    msg = bad(lambda d: d.pop("vip"))
    assert "vip: required field is missing" in msg


def test_good_data_is_not_mutated_by_validation():
    d = lab_data()
    before = copy.deepcopy(d)
    parse_params(d)
    assert d == before
