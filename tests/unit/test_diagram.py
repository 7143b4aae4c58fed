"""The cluster diagram renders from 2- and 3-node params and shows what the params say."""

from __future__ import annotations

import pytest

from hakit import diagram
from hakit.params import load_params


@pytest.mark.parametrize("name", ["lab.yaml", "lab-3node.yaml"])
def test_diagram_shows_nodes_networks_bonds_vip_gateway_and_lab_host(root, name, tmp_path):
    params = load_params(root / "params" / name)
    d = diagram.draw(params)
    svg = d._repr_svg_()
    nets = params.networks
    expected = [params.cluster.name, str(params.vip.address), str(nets.public.gateway),
                str(nets.private.subnet), str(nets.public.subnet), nets.private.bond, nets.public.bond,
                *nets.private.slaves, *nets.public.slaves,
                str(params.lab.host_private_ip), str(params.lab.host_public_ip)]
    for n in params.nodes:
        expected += [n.name, str(n.private_ip), str(n.public_ip)]
    missing = [t for t in expected if t not in svg]
    assert not missing, f"not in the drawing: {missing}"
    assert svg.count(f">{nets.private.slaves[0]}<") == len(params.nodes)  # one pair of slaves per node
    d.savefig(tmp_path / "cluster.png", dpi=60)
    assert (tmp_path / "cluster.png").read_bytes()[:4] == b"\x89PNG"


def test_real_hosts_have_no_lab_host_box(root):
    svg = diagram.draw(load_params(root / "params" / "example-real.yaml")).svg()
    assert "this machine" not in svg and "VIP" in svg
