"""Bad input that tests/unit/test_params.py does not pin down (issue #7).

Each message must name the field, the value and what would be valid. Cases
already covered there (with the same strength) are not repeated here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from hakit import profiles
from hakit.params import ParamsError, load_params, parse_params
from hakit.profiles import FAST, Profile
from hakit.remote import RemoteError, check_ssh_files
from hakit.run import run

ROOT = Path(__file__).resolve().parents[2]


def data(name: str = "lab.yaml") -> dict:
    return yaml.safe_load((ROOT / "params" / name).read_text())


def bad(d: dict) -> str:
    with pytest.raises(ParamsError) as e:
        parse_params(d, "test.yaml")
    return str(e.value)


def test_duplicate_public_ip_names_both_nodes_and_the_address():
    d = data()
    d["nodes"][1]["public_ip"] = d["nodes"][0]["public_ip"]
    assert "nodes[1].public_ip 10.77.1.11 repeats nodes[0].public_ip; each node needs its own" in bad(d)


def test_duplicate_nodeid_names_the_value():
    d = data()
    d["nodes"][1]["nodeid"] = 1
    assert "nodes[1].nodeid 1 repeats nodes[0].nodeid; each node needs its own" in bad(d)


def test_single_node_names_the_count():
    d = data()
    d["nodes"] = d["nodes"][:1]
    assert "nodes: 1 node(s) given; an active/passive cluster needs at least 2" in bad(d)


def test_malformed_ip_says_what_is_valid():
    d = data()
    d["nodes"][0]["private_ip"] = "10.77.0"
    assert "nodes.0.private_ip: Input is not a valid IPv4 address (got '10.77.0')" in bad(d)


@pytest.mark.parametrize("prefix", ["40", "33", "31", "7"])
def test_netmask_out_of_range_names_field_value_and_range(prefix):
    d = data()
    d["networks"]["public"]["subnet"] = f"10.77.1.0/{prefix}"
    msg = bad(d)
    assert f"networks.public.subnet: prefix length /{prefix} is out of range; use /8 to /30" in msg
    assert f"10.77.1.0/{prefix}" in msg


def test_unknown_top_level_key():
    d = data()
    d["nodse"] = d["nodes"]
    msg = bad(d)
    assert "nodse: unknown key (a typo?)" in msg and "params/lab.yaml" in msg


def test_unknown_deeply_nested_key():
    d = data()
    d["networks"]["public"]["gatway"] = "10.77.1.1"
    assert "networks.public.gatway: unknown key (a typo?)" in bad(d)


def test_unknown_key_in_a_node():
    d = data()
    d["nodes"][1]["public-ip"] = "10.77.1.12"
    assert "nodes.1.public-ip: unknown key (a typo?)" in bad(d)


def test_unknown_profile_is_refused_at_load_time():
    d = data()
    d["cluster"]["profile"] = "turbo"
    assert "cluster.profile 'turbo' is not a timing profile; use one of: fast, lan, seed" in bad(d)


def test_profile_too_tight_for_the_cluster_size_is_refused_at_load_time(monkeypatch):
    # Built-in profiles cannot break the rule (coefficient 0); a scaled one can, with 3 nodes.
    scaled = Profile(**{**FAST.model_dump(), "name": "scaled", "token_coefficient": 650})
    monkeypatch.setattr(profiles, "PROFILES", {**profiles.PROFILES, "scaled": scaled})
    d = data("lab-3node.yaml")
    d["cluster"]["profile"] = "scaled"
    msg = bad(d)
    assert "profile 'scaled'" in msg and "3 nodes" in msg and "consensus must be >= 1980 ms but is 1200 ms" in msg
    d2 = data()
    d2["cluster"]["profile"] = "scaled"
    parse_params(d2)  # two nodes: the coefficient does not apply


def test_missing_params_file_names_the_path(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError) as e:
        load_params(p)
    assert str(p) in str(e.value) and "params/lab.yaml" in str(e.value)


def real_params(tmp_path: Path, **ssh: str) -> Path:
    d = data("example-real.yaml")
    d["pacemaker"]["fencing"]["password_file"] = str(tmp_path / "bmc")
    d["ssh"].update(ssh)
    out = tmp_path / "real.yaml"
    out.write_text(yaml.safe_dump(d))
    return out


def test_missing_known_hosts_for_real_hosts(tmp_path):
    key = tmp_path / "id"
    key.write_text("key\n")
    kh = tmp_path / "absent_known_hosts"
    p = load_params(real_params(tmp_path, key_file=str(key), known_hosts=str(kh)))  # the file is checked at connect
    with pytest.raises(RemoteError) as e:
        check_ssh_files(p)
    assert f"ssh.known_hosts {kh} does not exist" in str(e.value)
    assert "lab up" not in str(e.value)  # real hosts: no lab hint


def test_unreadable_known_hosts_for_real_hosts(tmp_path):
    key = tmp_path / "id"
    key.write_text("key\n")
    kh = tmp_path / "kh_is_a_dir"
    kh.mkdir()  # unreadable even for root, unlike chmod 000
    p = load_params(real_params(tmp_path, key_file=str(key), known_hosts=str(kh)))
    with pytest.raises(RemoteError) as e:
        check_ssh_files(p)
    assert f"ssh.known_hosts {kh} cannot be read: Is a directory" in str(e.value)


def test_run_with_bad_params_raises_params_error_and_contacts_no_host(tmp_path, monkeypatch):
    """Nodes on TEST-NET-1 (nothing there), no lab section, one bad value: ParamsError, no folder, no socket."""
    d = data("example-real.yaml")
    d["nodes"][0]["public_ip"] = "192.0.2.11"
    d["nodes"][1]["public_ip"] = "192.0.2.12"
    d["networks"]["public"].update(subnet="192.0.2.0/24", gateway="192.0.2.1")
    d["vip"]["address"] = "198.51.100.100"  # outside the public subnet: the one error
    d["ssh"].update(key_file=str(tmp_path / "id"), known_hosts=str(tmp_path / "kh"))
    d["pacemaker"]["fencing"]["password_file"] = str(tmp_path / "bmc")
    assert "lab" not in d
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(d))

    contacts: list[object] = []

    def refuse(self, address, *a, **kw):  # any connect in this process would show here
        contacts.append(address)
        raise AssertionError(f"a host was contacted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    out = tmp_path / "runs"
    with pytest.raises(ParamsError) as e:
        run(str(bad_file), stages="all", out_root=out, html=False, progress=contacts.append)
    assert "vip.address 198.51.100.100 is outside the subnet 192.0.2.0/24" in str(e.value)
    assert not out.exists(), "no run folder for a run that never started"
    assert contacts == [], "no host contacted and no progress reported"


# ---- a key given twice, an empty value: refused before any host is touched (issue #18)


def test_a_key_given_twice_is_refused_naming_the_key_and_both_lines(tmp_path: Path):
    text = (ROOT / "params" / "lab.yaml").read_text()
    assert "\nvip:\n" in text
    f = tmp_path / "dup.yaml"
    f.write_text(text + "\nvip:\n  address: 10.77.1.200\n")
    with pytest.raises(ParamsError) as e:
        load_params(f)
    first = text.splitlines().index("vip:") + 1
    last = len(text.splitlines()) + 2
    assert f"key 'vip' is given twice in one section (lines {first} and {last})" in str(e.value)


def test_a_nested_duplicate_key_is_refused_too(tmp_path: Path):
    text = (ROOT / "params" / "lab.yaml").read_text()
    f = tmp_path / "dup2.yaml"
    f.write_text(text.replace("  name: hakit-lab", "  name: hakit-lab\n  name: other", 1))
    assert "name: other" in f.read_text()
    with pytest.raises(ParamsError, match="key 'name' is given twice"):
        load_params(f)


def test_the_same_key_in_two_sections_is_fine():
    assert load_params(ROOT / "params" / "lab.yaml").cluster.name == "hakit-lab"  # `name` also under nodes


@pytest.mark.parametrize("value, word", [("", "empty"), ("   ", "only white space")])
@pytest.mark.parametrize("path", [("cluster", "name"), ("cluster", "profile"), ("ssh", "user"), ("lab", "id")])
def test_an_empty_value_is_refused_naming_the_field(path, value, word):
    d = data()
    d.setdefault(path[0], {})[path[1]] = value
    msg = bad(d)
    assert f"{path[0]}: {path[1]} is {word}; give a value" in msg, msg


def test_an_empty_node_name_is_refused():
    d = data()
    d["nodes"][0]["name"] = ""
    assert "nodes.0: name is empty; give a value" in bad(d)


def test_a_refused_file_means_no_login(tmp_path: Path, monkeypatch):
    """Nothing connects when the params are refused: the SSH layer is never reached."""
    from hakit import remote

    calls = []
    monkeypatch.setattr(remote.Host, "open", lambda self: calls.append(self.name))
    f = tmp_path / "dup.yaml"
    f.write_text((ROOT / "params" / "lab.yaml").read_text() + "\nvip:\n  address: 10.77.1.200\n")
    with pytest.raises(ParamsError):
        run(str(f), stages="2")
    assert calls == []


def test_failure_policy_bad_values_name_the_field():
    d = data()
    d["pacemaker"]["resources"] = {"migration_threshold": 0}
    assert "pacemaker.resources.migration_threshold: Input should be greater than or equal to 1 (got 0)" in bad(d)
    d["pacemaker"]["resources"] = {"failure_timeout": "1m"}
    assert "pacemaker.resources.failure_timeout" in bad(d) and "(got '1m')" in bad(d)


def test_stickiness_tie_with_the_preferred_node_is_refused():
    d = data()
    d["pacemaker"]["resources"]["resource_stickiness"] = 50
    msg = bad(d)
    assert "pacemaker.resources: resource_stickiness 50" in msg and "use below 50 (fail back) or above it" in msg


def test_restart_in_place_is_a_null_threshold():
    d = data()
    d["pacemaker"]["resources"]["migration_threshold"] = None
    p = parse_params(d, "test.yaml").pacemaker.resources
    assert not p.moves_on_failure and p.meta() == (("failure-timeout", "60s"),)


@pytest.mark.parametrize("release", ["bullseye", "Trixie", "13", "sid"])
def test_unknown_lab_release_names_field_value_and_the_releases(release):
    d = data()
    d["lab"]["release"] = release
    assert f"lab.release: Input should be 'trixie' or 'bookworm' (got '{release}')" in bad(d)


def test_lab_release_defaults_to_trixie_and_lab_bookworm_yaml_picks_bookworm():
    d = data()
    del d["lab"]["release"]
    assert parse_params(d, "test.yaml").lab.release == "trixie"
    for name in ("lab.yaml", "lab-3node.yaml", "lab-bonding.yaml", "lab-trixie.yaml"):
        assert load_params(ROOT / "params" / name).lab.release == "trixie", name
    assert load_params(ROOT / "params" / "lab-bookworm.yaml").lab.release == "bookworm"


# ---- the Apache layout (issue #16): a name pacemaker.layout knows, and no untested combination


def test_an_unknown_layout_names_the_field_value_and_the_valid_ones():
    d = data()
    d["pacemaker"]["layout"] = "cloned"
    msg = bad(d)
    assert "pacemaker.layout" in msg and "'cloned'" in msg
    assert "'article'" in msg and "'cloned-apache'" in msg


def test_the_layout_defaults_to_the_articles():
    assert parse_params(data()).pacemaker.layout == "article"
    d = data()
    d["pacemaker"]["layout"] = "cloned-apache"
    assert parse_params(d).pacemaker.cloned_apache


def test_stickiness_with_the_cloned_layout_is_refused_naming_both_fields():
    d = data()
    d["pacemaker"]["layout"] = "cloned-apache"
    d["pacemaker"]["resources"]["resource_stickiness"] = 200
    msg = bad(d)
    assert "pacemaker.layout cloned-apache" in msg and "resource_stickiness 200" in msg
    assert "leave resource_stickiness out or use layout article" in msg



@pytest.mark.parametrize("value", [5, 19, 3601, "slow"])
def test_op_timeout_out_of_range_names_field(value) -> None:
    d = data()
    d.setdefault("pacemaker", {})["op_timeout"] = value
    msg = bad(d)
    assert "pacemaker.op_timeout" in msg and str(value) in msg
