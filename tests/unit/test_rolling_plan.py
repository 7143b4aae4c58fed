"""The rollout's pure parts: node order, the plan a dry run shows, the error of a stopped rollout."""

from __future__ import annotations

import pytest

from hakit import rolling


def test_the_node_that_serves_goes_last_in_params_order_otherwise(lab) -> None:
    assert rolling.order(lab, "vm-node1") == ["vm-node2", "vm-node1"]
    assert rolling.order(lab, "vm-node2") == ["vm-node1", "vm-node2"]
    assert rolling.order(lab, None) == ["vm-node1", "vm-node2"]  # nothing serves: params order


def test_the_plan_lists_every_step_per_node_with_the_commands_it_runs(lab) -> None:
    r = rolling.Rollout("restart", rolling.RESTART, ["vm-node2", "vm-node1"], dry_run=True)
    text = r.plan_text()
    assert text[0] == "vm-node2: crm node standby vm-node2  (crm_attribute --node vm-node2 --name standby --update on)"
    assert text[1:4] == [f"vm-node2:   {c}" for c in rolling.RESTART]
    assert text[4] == "vm-node2: wait until vm-node2 is a cluster member again"
    assert text[5].startswith("vm-node2: crm node online vm-node2")
    assert len(text) == 12 and text[6].startswith("vm-node1: crm node standby")
    # pacemaker stops before corosync and starts after it: its resources left at standby, a clean leave
    assert rolling.RESTART.index("systemctl stop pacemaker") < rolling.RESTART.index("systemctl restart corosync") \
        < rolling.RESTART.index("systemctl start pacemaker")


def test_a_stopped_rollout_names_the_node_the_phase_what_is_done_and_untouched() -> None:
    e = rolling.RolloutFailed("vm-node2", "rejoin", "vm-node2 back in the membership: not within 30 s",
                              ["vm-node3"], ["vm-node1"])
    msg = str(e)
    assert msg.startswith("rollout stopped at vm-node2 (rejoin): vm-node2 back in the membership: not within 30 s.")
    assert "vm-node2 is left in standby" in msg and "done: vm-node3; untouched: vm-node1" in msg
    assert "crm node online vm-node2" in msg


def test_unknown_work_is_refused_before_any_host_is_read(lab) -> None:
    class NoHost(dict):
        def __getitem__(self, k):  # noqa: ANN001, ANN204
            raise AssertionError("a host was touched")

    with pytest.raises(rolling.RolloutRefused, match=r"work='reboot': use one of restart, upgrade"):
        rolling.rollout(lab, NoHost(), "reboot")
