"""The fault catalogue as data: which scenarios run by default, what fencing changes in the expectations."""

from __future__ import annotations

import pytest

from hakit.failover import scenarios as catalogue
from hakit.failover.scenarios import SCENARIOS, select


def names(spec, fencing=None):
    return [s.name for s in select(spec, fencing=fencing)]


def test_default_is_the_six_plus_split_brain_with_or_without_fencing():
    six = ["node-crash", "apache-crash", "gateway-loss", "planned-move", "ring0-loss", "corosync-kill"]
    assert names("default", True) == names("default", False) == six + ["split-brain"]


def test_all_leaves_out_fence_failure_only_without_fencing():
    assert "fence-failure" in names("all", True)
    assert "fence-failure" not in names("all", False)
    assert names("all", True) == list(SCENARIOS)


def test_naming_a_fencing_scenario_on_an_unfenced_cluster_is_refused():
    with pytest.raises(ValueError, match=r"fence-failure tests fencing.*stonith_enabled is false"):
        select("node-crash,fence-failure", fencing=False)
    assert names("fence-failure", True) == ["fence-failure"]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['nod-crash'\]: unknown; valid: all, default, extended, idle, node-crash"):
        select("nod-crash")


@pytest.mark.parametrize(
    ("name", "fencing", "certain", "split", "fenced"),
    [
        ("corosync-kill", False, False, True, None),  # the lost node serves on: no outage is certain
        ("corosync-kill", True, True, False, "vm-node1"),
        ("split-brain", False, False, True, None),
        ("split-brain", True, False, False, "vm-node2"),  # the preferred node wins the fence race
        ("node-crash", True, True, False, "vm-node1"),
        ("node-crash", False, True, False, None),
        ("fence-failure", True, True, False, "vm-node1"),
        ("ring0-loss", True, False, False, None),
    ],
)
def test_expectations_follow_fencing(name, fencing, certain, split, fenced):
    s = SCENARIOS[name]
    assert s.outage_certain(fencing) is certain
    assert s.split_brain(fencing) is split
    assert s.fenced_node(fencing, "vm-node1", "vm-node2") == fenced


def test_fence_failure_heals_before_it_gives_up_observing():
    s = SCENARIOS["fence-failure"]
    assert s.needs_fencing and s.heal is not None
    assert 0 < s.heal_after_s < (s.observe_s or 0)
    assert catalogue.FENCING == ("split-brain", "fence-failure")


def test_on_three_nodes_isolating_the_active_node_moves_the_service_and_fences_it():
    two = {s.name: s for s in select("default", fencing=True)}
    three = {s.name: s for s in select("default", fencing=True, nodes=3, no_quorum_policy="stop")}
    assert two["split-brain"] is SCENARIOS["split-brain"]  # the catalogue states the two-node case
    sb = three["split-brain"]
    assert sb.moves and sb.outage_certain(True) and sb.fenced_node(True, "a", "b") == "a"
    assert sb.expected_node("a", "b") == "b"
    assert not sb.split_brain(False)  # under stop the lone node stops its service: no second copy
    assert "stops its resources" in sb.expected
    ignore = select("split-brain", fencing=False, nodes=3, no_quorum_policy="ignore")[0]
    assert ignore.split_brain(False) and "both sides serve" in ignore.expected
    # every other scenario plays out the same on three nodes
    assert all(three[n] is SCENARIOS[n] for n in three if n != "split-brain")


def test_slave_loss_only_where_the_nodes_have_kernel_bonds():
    assert "slave-loss" not in [s.name for s in select("all", fencing=True, bonds=False)]
    assert "slave-loss" in [s.name for s in select("all", fencing=True, bonds=True)]
    with pytest.raises(ValueError, match=r"slave-loss pulls a slave of a real bond.*params/lab-vm.yaml"):
        select("node-crash,slave-loss", bonds=False)
    s = SCENARIOS["slave-loss"]
    assert s.needs_bonds and not s.moves and not s.outage_expected and "slave-loss" not in catalogue.DEFAULT


def test_the_lab_knows_which_nodes_get_kernel_bonds(lab):
    from hakit.notebook import load
    from hakit.notebook import repo_root

    names_ = [n.name for n in lab.nodes]
    assert lab.lab.real_bonds(names_) is False  # containers, bond-names links
    vm = load(repo_root() / "params" / "lab-vm.yaml")
    assert vm.lab.real_bonds([n.name for n in vm.nodes]) is True
    mixed = load(repo_root() / "params" / "lab-bonding.yaml")
    assert mixed.lab.real_bonds(["vm-node1"]) and not mixed.lab.real_bonds(["vm-node1", "vm-node2"])
