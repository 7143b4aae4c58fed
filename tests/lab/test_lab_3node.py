"""A three-node lab beside the two-node one: its own names, all nodes reachable."""

import pytest

from hakit.lab import Lab
from hakit.params import load_params

pytestmark = pytest.mark.lab


def test_three_nodes_come_up_beside_the_two_node_lab(lab2, lab3_params, start_lab):
    lab3 = start_lab(lab3_params)
    try:
        st = lab3.status()
        assert [s.state for s in st] == ["running"] * 3
        assert all(s.system_state in ("running", "degraded") for s in st)
        for n in lab3.params.nodes:
            r = lab3.ssh(n.name, ["sh", "-c", f"hostname; ping -c1 -W2 {lab3.params.nodes[0].private_ip} >/dev/null && echo ok"])
            assert r.stdout.split() == [n.name, "ok"]
        # The two-node lab is undisturbed.
        assert lab2.ssh("vm-node1", ["true"]).returncode == 0
    finally:
        lab3.down()
    assert Lab(load_params(lab3_params)).leftovers() == []
    assert lab2.ssh("vm-node2", ["true"]).returncode == 0
