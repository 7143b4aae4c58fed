"""The container lab's cables: one layout on every kernel unless the params ask, and links named by role.

`Lab` is built from params without touching the machine; `net.bonding_available` and `net.set_link` are
replaced so the host kernel's bonding never decides anything here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from hakit.failover import scenarios
from hakit.lab import Lab, LabError
from hakit.lab import lab as labmod
from hakit.lab import net
from hakit.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]


def params(tmp_path: Path, name: str = "lab.yaml", **lab: object):
    d = yaml.safe_load((ROOT / "params" / name).read_text())
    d["lab"] |= {"state_dir": str(tmp_path / "state"), **lab}
    return parse_params(d, name)


@pytest.fixture(params=[False, True], ids=["kernel-without-bonding", "kernel-with-bonding"])
def kernel(request, monkeypatch) -> bool:
    """This machine's kernel as the lab sees it, either way."""
    reason = "bonding driver loaded" if request.param else "kernel 6.1.0-fake has no bonding driver (no bonding.ko)"
    monkeypatch.setattr(net, "bonding_available", lambda: (request.param, reason))
    return request.param


def ends(links) -> list[str]:
    return [ln.node_end for ln in links]


def test_the_default_layout_is_the_same_on_every_kernel(tmp_path, kernel) -> None:
    lab = Lab(params(tmp_path), progress=lambda m: None)
    assert lab.cfg.links == "bond-names" and lab.net.links_mode == "bond-names"
    assert [ends(nn.links) for nn in lab.net.nodes] == [["bond0", "bond1"], ["bond0", "bond1"]]
    assert lab.bonding is kernel  # still reported (lab status), never used to pick the layout


def test_roles_and_bond_names_resolve_in_the_bond_names_layout() -> None:
    nn = net.plan_network(load_params(ROOT / "params/lab.yaml"), "bond-names").node("vm-node1")
    for name in ("ring0", "private", "bond0"):
        assert ends(nn.cables(name)) == ["bond0"]
    for name in ("ring1", "public", "bond1"):
        assert ends(nn.cables(name)) == ["bond1"]
    assert nn.cables("ring0")[0].host_end == "hk1priv"


def test_roles_and_bond_names_resolve_to_both_nics_in_the_slaves_layout() -> None:
    nn = net.plan_network(load_params(ROOT / "params/lab.yaml"), "slaves").node("vm-node2")
    for name in ("ring0", "private", "bond0"):
        assert ends(nn.cables(name)) == ["eth0", "eth1"]
    for name in ("ring1", "public", "bond1"):
        assert ends(nn.cables(name)) == ["eth2", "eth3"]
    assert ends(nn.cables("eth2")) == ["eth2"]  # one NIC of a pair: the bond's failover (VM nodes)


def test_a_vm_node_takes_the_same_roles_beside_a_container() -> None:
    L = net.plan_network(load_params(ROOT / "params/lab-bonding.yaml"), "bond-names")
    assert ends(L.node("vm-node1").cables("ring0")) == ["eth0", "eth1"]
    assert ends(L.node("vm-node2").cables("ring0")) == ["bond0"]


@pytest.mark.parametrize(("mode", "ifaces"), [("bond-names", "bond0, bond1"), ("slaves", "eth0, eth1, eth2, eth3")])
def test_an_unknown_link_names_the_roles_and_the_interfaces(mode: str, ifaces: str) -> None:
    nn = net.plan_network(load_params(ROOT / "params/lab.yaml"), mode).node("vm-node1")
    with pytest.raises(KeyError) as e:
        nn.cables("eth7")
    assert e.value.args[0] == (
        "node vm-node1 has no link 'eth7'; name a role: ring0 or private (bond0), ring1 or public (bond1); "
        f"or an interface: {ifaces}"
    )


@pytest.mark.parametrize(("mode", "host_ends"), [("bond-names", ["hk1priv"]), ("slaves", ["hk1pri0", "hk1pri1"])])
def test_pulling_ring0_pulls_every_private_cable_of_the_node(tmp_path, monkeypatch, mode, host_ends) -> None:
    pulled: list[tuple[str, bool]] = []
    monkeypatch.setattr(labmod.net, "set_link", lambda name, up: pulled.append((name, up)))
    msgs: list[str] = []
    lab = Lab(params(tmp_path, links=mode), progress=msgs.append)
    lab.link("vm-node1", "ring0", up=False)
    lab.link("vm-node1", "ring0", up=True)
    assert pulled == [(h, False) for h in host_ends] + [(h, True) for h in host_ends]
    assert msgs[0] == ("vm-node1: ring0 (bond0) cable pulled" if mode == "bond-names"
                       else "vm-node1: ring0 (eth0, eth1) cables pulled")
    with pytest.raises(KeyError, match="name a role: ring0 or private"):
        lab.link("vm-node1", "ring2", up=False)
    assert len(pulled) == 2 * len(host_ends)  # the unknown name touched nothing


def test_the_ring0_loss_scenario_asks_for_the_role() -> None:
    calls: list[tuple[str, str, bool]] = []
    fake_lab = SimpleNamespace(link=lambda node, link, up: calls.append((node, link, up)))
    s = scenarios.SCENARIOS["ring0-loss"]
    ctx = SimpleNamespace(lab=fake_lab, active="vm-node2")
    s.inject(ctx)
    s.restore(ctx)
    assert calls == [("vm-node2", "ring0", False), ("vm-node2", "ring0", True)]


def test_slaves_on_a_kernel_without_bonding_is_refused_before_anything_runs(tmp_path, kernel) -> None:
    lab = Lab(params(tmp_path, links="slaves"), progress=lambda m: None)
    assert [ln.node_end for ln in lab.net.node("vm-node1").links] == ["eth0", "eth1", "eth2", "eth3"]
    if kernel:
        return  # asked for, and this kernel can: the layout is the params' choice (preflight goes on to root, tools)
    with pytest.raises(LabError) as e:
        lab.preflight()
    msg = str(e.value)
    assert msg.startswith("lab.links: slaves gives container nodes four NICs to bond")
    assert "kernel 6.1.0-fake has no bonding driver" in msg and "lab.links: bond-names (the default)" in msg
    assert not (tmp_path / "state").exists()


def test_links_auto_is_no_longer_a_choice() -> None:
    d = yaml.safe_load((ROOT / "params/lab.yaml").read_text())
    d["lab"]["links"] = "auto"
    with pytest.raises(ParamsError) as e:
        parse_params(d, "x.yaml")
    assert "lab.links" in str(e.value) and "'bond-names' or 'slaves'" in str(e.value)
