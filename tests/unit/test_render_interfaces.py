"""ifupdown bond stanzas: golden files per node and the bond options model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from hakit.params import Node, Params
from hakit.render.interfaces import BondOptions, render_all_interfaces, render_interfaces


def stanzas(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """(auto interfaces, {iface header: option lines}) from ifupdown text."""
    autos: list[str] = []
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("auto "):
            autos += line.split()[1:]
            current = None
        elif line.startswith("iface "):
            current = blocks.setdefault(line, [])
        else:
            assert current is not None and line.startswith("    "), line
            current.append(line.strip())
    return autos, blocks


@pytest.mark.parametrize("params_name", ["lab", "lab3"])
def test_golden(params_name: str, request: pytest.FixtureRequest, golden: Callable[[str, str], None]) -> None:
    params: Params = request.getfixturevalue(params_name)
    for node, files in render_all_interfaces(params).items():
        assert sorted(files) == ["hakit-bond0", "hakit-bond1"]
        for name, text in files.items():
            golden(f"interfaces/{params_name}/{node}/{name}", text)


def test_private_bond_stanzas(lab: Params) -> None:
    autos, blocks = stanzas(render_interfaces(lab, "vm-node2")["hakit-bond0"])
    assert autos == ["bond0"]
    assert blocks == {
        "iface bond0 inet static": [
            "address 10.77.0.12/24",
            "bond-slaves eth0 eth1",
            "bond-mode active-backup",
            "bond-miimon 100",
            "bond-downdelay 200",
            "bond-updelay 200",
            "bond-primary eth0",
        ],
        "iface eth0 inet manual": ["bond-master bond0"],
        "iface eth1 inet manual": ["bond-master bond0"],
    }


def test_gateway_only_on_public_bond(lab: Params) -> None:
    files = render_interfaces(lab, "vm-node1")
    _, public = stanzas(files["hakit-bond1"])
    assert public["iface bond1 inet static"][:3] == [
        "address 10.77.1.11/24",
        "gateway 10.77.1.1",
        "bond-slaves eth2 eth3",
    ]
    assert "bond-primary eth2" in public["iface bond1 inet static"]
    assert "gateway" not in files["hakit-bond0"]


def test_addresses_differ_per_node(lab3: Params) -> None:
    all_files = render_all_interfaces(lab3)
    assert list(all_files) == ["vm-node1", "vm-node2", "vm-node3"]
    for node in lab3.nodes:
        text = all_files[node.name]["hakit-bond0"]
        assert f"address {node.private_ip}/24" in text
        assert f"on {node.name}" in text.splitlines()[0]


def test_custom_bond_options(lab: Params) -> None:
    text = render_interfaces(lab, "vm-node1", BondOptions(miimon=50, downdelay=150, updelay=0))["hakit-bond1"]
    _, blocks = stanzas(text)
    options = blocks["iface bond1 inet static"][4:7]
    assert options == ["bond-miimon 50", "bond-downdelay 150", "bond-updelay 0"]


def test_bond_option_defaults_are_the_articles() -> None:
    defaults = BondOptions().model_dump()
    assert defaults == {"mode": "active-backup", "miimon": 100, "downdelay": 200, "updelay": 200}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"downdelay": 250}, "downdelay 250 ms is not a multiple of miimon 100 ms"),
        ({"updelay": 150}, "use 100 or 200"),
        ({"miimon": 0}, "miimon"),
        ({"mode": "balance-rr"}, "active-backup"),
        ({"lacp_rate": "fast"}, "lacp_rate"),
    ],
)
def test_bad_bond_options(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        BondOptions(**changes)
    assert needle in str(err.value)


def test_unknown_node(lab: Params) -> None:
    with pytest.raises(KeyError, match="vm-node1, vm-node2"):
        render_interfaces(lab, "vm-node9")
    stranger = Node(name="other", nodeid=9, private_ip="10.77.0.99", public_ip="10.77.1.99")
    with pytest.raises(KeyError, match="'other' is not in the params"):
        render_interfaces(lab, stranger)
