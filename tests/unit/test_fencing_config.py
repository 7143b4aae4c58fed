"""Fencing params, the stonith resources stage 4 renders, and the ipmitool wrapper's argument handling."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hakit import fencing
from hakit.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55word"


def data(name: str) -> dict:
    return yaml.safe_load((ROOT / "params" / name).read_text())


def real(**fencing_section) -> dict:
    d = data("example-real.yaml")
    d["pacemaker"] = {"stonith_enabled": True, "fencing": fencing_section}
    return d


def good_real() -> dict:
    return {
        "username": "fence",
        "password": SECRET,
        "devices": {"web1": {"address": "10.0.2.11"}, "web2": {"address": "bmc-web2.example.net", "port": 6230}},
    }


def error(d: dict) -> str:
    with pytest.raises(ParamsError) as e:
        parse_params(d, "x.yaml")
    return str(e.value)


# ----------------------------------------------------------------- params


def test_shipped_labs_fence_and_the_real_example_waits_for_its_devices():
    for name in ("lab.yaml", "lab-3node.yaml", "example-real.yaml"):
        p = load_params(ROOT / "params" / name)
        assert p.pacemaker.fencing is not None and p.pacemaker.fencing.agent == "fence_ipmilan", name
        # The labs bring their own BMCs, so they fence by default; real BMC addresses must be checked first.
        assert p.pacemaker.stonith_enabled is (name != "example-real.yaml"), name


def test_stonith_enabled_without_fencing_is_refused():
    d = data("lab.yaml")
    d["pacemaker"] = {"stonith_enabled": True}
    msg = error(d)
    assert "pacemaker.stonith_enabled is true but pacemaker.fencing is not set" in msg


def test_stonith_enabled_with_lab_fencing_is_accepted():
    d = data("lab.yaml")
    d["pacemaker"]["stonith_enabled"] = True
    assert parse_params(d).pacemaker.stonith_enabled


def test_lab_devices_come_from_the_lab_section():
    p = load_params(ROOT / "params/lab-3node.yaml")
    devs = fencing.devices(p)
    assert [(d.node, d.address, d.port, d.username, d.cipher) for d in devs] == [
        ("vm-node1", "10.78.0.254", 6231, "hakit", 3),
        ("vm-node2", "10.78.0.254", 6232, "hakit", 3),
        ("vm-node3", "10.78.0.254", 6233, "hakit", 3),
    ]
    assert devs[0].password_file == p.lab.dir / "bmc" / "password"


@pytest.mark.parametrize("key, value", [("devices", {"vm-node1": {"address": "10.77.0.254"}}), ("username", "x"),
                                        ("password_file", "/tmp/pw")])
def test_lab_refuses_its_own_devices_and_credentials(key, value):
    d = data("lab.yaml")
    d["pacemaker"]["fencing"][key] = value
    msg = error(d)
    assert f"pacemaker.fencing.{key} is set, but in the lab" in msg and "remove it" in msg


def test_lab_refuses_a_cipher_its_bmcs_do_not_offer():
    d = data("lab.yaml")
    d["pacemaker"]["fencing"]["cipher"] = 17
    assert "pacemaker.fencing.cipher 17 is not offered by the lab's virtual BMCs; use 3" in error(d)


def test_lab_refuses_plain_lan():
    d = data("lab.yaml")
    d["pacemaker"]["fencing"]["lanplus"] = False
    assert "pacemaker.fencing.lanplus is false, but the lab's virtual BMCs speak IPMI v2 lanplus only" in error(d)


def test_real_hosts_need_a_device_per_node():
    f = good_real()
    del f["devices"]["web2"]
    assert "pacemaker.fencing.devices has no device for web2" in error(real(**f))


def test_real_device_for_an_unknown_node_names_the_nodes():
    f = good_real()
    f["devices"]["web3"] = {"address": "10.0.2.13"}
    msg = error(real(**f))
    assert "names web3, which is not a node; nodes are: web1, web2" in msg


def test_real_devices_need_a_username_and_a_password():
    f = good_real()
    del f["username"]
    assert "pacemaker.fencing.devices.web1: no username" in error(real(**f))
    f = good_real()
    del f["password"]
    assert "pacemaker.fencing.devices.web1: no password; set pacemaker.fencing.password_file" in error(real(**f))


def test_password_and_password_file_together_are_refused():
    f = good_real()
    f["password_file"] = "/root/pw"
    assert "pacemaker.fencing sets both password and password_file; keep one" in error(real(**f))


def test_unknown_agent_lists_the_valid_ones():
    msg = error(real(**good_real(), agent="fence_ipmi"))
    assert "pacemaker.fencing.agent" in msg and "'fence_ipmi'" in msg and "'fence_ipmilan'" in msg and "'fence_idrac'" in msg


def test_bad_bmc_address_and_port():
    f = good_real()
    f["devices"]["web1"] = {"address": "bmc web1", "port": 70000}
    msg = error(real(**f))
    assert "pacemaker.fencing.devices.web1.address" in msg and "neither an IP address nor a DNS name" in msg
    assert "pacemaker.fencing.devices.web1.port" in msg


def test_two_nodes_on_one_bmc_are_refused():
    f = good_real()
    f["devices"]["web2"] = {"address": "10.0.2.11"}
    assert "two nodes share one BMC address and port" in error(real(**f))


def test_a_too_long_password_is_refused_without_showing_it():
    f = good_real()
    f["password"] = "x" * 21 + SECRET
    msg = error(real(**f))
    assert "pacemaker.fencing.password" in msg and "IPMI v2 accepts 1 to 20" in msg
    assert SECRET not in msg and "value not shown" in msg


def test_secret_never_shows_in_the_model_repr():
    p = parse_params(real(**good_real()))
    assert SECRET not in repr(p) and SECRET not in str(p.model_dump())
    assert SECRET not in repr(fencing.devices(p))


# ----------------------------------------------------------------- stonith resources


def test_stonith_resources_for_real_hosts_carry_no_secret():
    p = parse_params(real(**good_real()))
    res = fencing.stonith_resources(p)
    assert [r.id for r in res] == ["fence-web1", "fence-web2"]
    assert res[1].attributes == {
        "ip": "bmc-web2.example.net",
        "ipport": "6230",
        "username": "fence",
        "lanplus": "1",
        "ipmitool_path": fencing.WRAPPER,
        "method": "onoff",
        "pcmk_host_list": "web2",
    }
    assert res[1].avoid_node == "web2" and res[1].agent == "fence_ipmilan"
    for r in res:
        assert not {"password", "passwd", "password_script"} & set(r.attributes)
        assert all(SECRET not in v for v in r.attributes.values())


def test_two_node_race_is_settled_for_the_preferred_node_only():
    p = load_params(ROOT / "params/lab.yaml")
    delays = {r.target: r.attributes.get("pcmk_delay_base") for r in fencing.stonith_resources(p)}
    assert delays == {"vm-node1": f"{fencing.TWO_NODE_DELAY}s", "vm-node2": None}
    p3 = load_params(ROOT / "params/lab-3node.yaml")
    assert all("pcmk_delay_base" not in r.attributes for r in fencing.stonith_resources(p3))


def test_no_fencing_means_no_resources():
    d = data("lab.yaml")
    del d["pacemaker"]["fencing"]
    d["pacemaker"]["stonith_enabled"] = False
    assert fencing.stonith_resources(parse_params(d)) == []


# ----------------------------------------------------------------- passwords


def test_read_password_from_file_takes_the_first_line(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\nignored\n")
    f = good_real()
    del f["password"]
    f["password_file"] = str(pw)
    dev = fencing.devices(parse_params(real(**f)))[0]
    assert fencing.read_password(dev) == SECRET.encode()


def test_read_password_names_a_missing_file(tmp_path):
    f = good_real()
    del f["password"]
    f["password_file"] = str(tmp_path / "nope")
    dev = fencing.devices(parse_params(real(**f)))[0]
    with pytest.raises(fencing.FencingError, match="does not exist"):
        fencing.read_password(dev)


# ----------------------------------------------------------------- the ipmitool wrapper


def wrapper(tmp_path: Path) -> Path:
    """The real wrapper script, pointed at a temp credential dir and an ipmitool that prints its argv."""
    fake = tmp_path / "ipmitool"
    fake.write_text('#!/bin/sh\nfor a do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    (tmp_path / "cred").mkdir()
    script = tmp_path / "hakit-ipmitool"
    script.write_text(fencing.WRAPPER_SCRIPT.replace(fencing.CRED_DIR, str(tmp_path / "cred")).replace(fencing.IPMITOOL, str(fake)))
    script.chmod(0o755)
    return script


def test_wrapper_drops_the_agents_password_and_reads_the_file(tmp_path):
    w = wrapper(tmp_path)
    cred = tmp_path / "cred" / "10.0.2.11-6230.password"
    cred.write_text("x")
    # As fence_ipmilan calls it (fence-agents 4.12 create_command), with an empty -P.
    argv = [str(w), "-I", "lanplus", "-H", "10.0.2.11", "-p", "6230", "-U", "fence", "-P", "", "-C", "3",
            "chassis", "power", "status"]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["-f", str(cred), "-I", "lanplus", "-H", "10.0.2.11", "-p", "6230", "-U", "fence",
                                     "-C", "3", "chassis", "power", "status"]


def test_wrapper_default_port_and_missing_credential(tmp_path):
    w = wrapper(tmp_path)
    r = subprocess.run([str(w), "-I", "lan", "-H", "bmc1", "-P", "leaked?", "chassis", "power", "off"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "no credential for BMC bmc1:623" in r.stderr and "leaked?" not in r.stderr
    r = subprocess.run([str(w), "-H", "../../etc", "chassis", "power", "off"], capture_output=True, text=True)
    assert r.returncode == 2 and "no usable BMC address" in r.stderr


@pytest.mark.parametrize(("delay", "want"), [(2, "2s"), (0, None)])
def test_the_fence_delay_comes_from_the_params(delay, want):
    d = data("lab.yaml")
    d["pacemaker"]["fencing"]["delay_s"] = delay
    delays = {r.target: r.attributes.get("pcmk_delay_base") for r in fencing.stonith_resources(parse_params(d))}
    assert delays == {"vm-node1": want, "vm-node2": None}


def test_a_fence_delay_out_of_range_names_the_field():
    d = data("lab.yaml")
    d["pacemaker"]["fencing"]["delay_s"] = 90
    assert "pacemaker.fencing.delay_s" in error(d) and "90" in error(d)
