"""`hakit check`'s live-state rules on captured crm_mon and CIB output (pure), and its stage-plan rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hakit.check import Drift, DriftReport, live_drift, plan_drift
from hakit.facts.pacemaker import parse_crm_mon
from hakit.ops import Barrier, Command
from hakit.params import Params, parse_params
from hakit.stages.base import Plan

CAP = Path(__file__).parent / "fixtures" / "captured"
ROOT = Path(__file__).resolve().parents[2]
MON = (CAP / "crm_mon-2node-resources.xml").read_text()
CIB = (CAP / "cib-after-stage6.xml").read_text()


def unfenced() -> Params:
    """The lab params as the captured cluster ran them: the article's, without fencing."""
    d = yaml.safe_load((ROOT / "params" / "lab.yaml").read_text())
    d["pacemaker"]["stonith_enabled"] = False
    d["pacemaker"].pop("fencing", None)
    return parse_params(d)


def test_a_healthy_cluster_has_no_live_drift() -> None:
    assert live_drift(unfenced(), parse_crm_mon(MON), CIB) == []


def test_standby_node_is_named_with_its_fix() -> None:
    mon = MON.replace('name="vm-node2" id="2" online="true" standby="false"', 'name="vm-node2" id="2" online="true" standby="true"')
    assert mon != MON
    (d,) = live_drift(unfenced(), parse_crm_mon(mon), CIB)
    assert (d.where, d.fix) == ("vm-node2", "crm node online vm-node2") and "standby" in d.what


def test_a_leftover_move_constraint_is_named() -> None:
    cib = CIB.replace("<constraints>", '<constraints><rsc_location id="cli-prefer-vip" rsc="vip" role="Started" '
                                       'node="vm-node2" score="INFINITY"/>', 1)
    assert cib != CIB
    (d,) = live_drift(unfenced(), parse_crm_mon(MON), cib)
    assert d.what == "leftover move constraint cli-prefer-vip (vip on vm-node2)" and d.fix == "crm resource clear vip"


def test_failed_actions_and_maintenance_mode_are_named() -> None:
    failed = parse_crm_mon((CAP / "crm_mon-2node-failed-action.xml").read_text())
    drifts = live_drift(unfenced(), failed, CIB)
    assert any(d.what.startswith("failed action ") and "crm resource cleanup" in d.fix for d in drifts), drifts
    cib = CIB.replace("</cluster_property_set>", '<nvpair id="mm" name="maintenance-mode" value="true"/>'
                                                 "</cluster_property_set>", 1)
    assert any("maintenance-mode is on" in d.what for d in live_drift(unfenced(), parse_crm_mon(MON), cib))


def test_fence_devices_that_do_not_run_are_named(lab: Params) -> None:
    assert lab.pacemaker.stonith_enabled
    drifts = live_drift(lab, parse_crm_mon(MON), CIB)
    assert [d.what for d in drifts] == ["fence device fence-vm-node1 (powers off vm-node1) is not running",
                                        "fence device fence-vm-node2 (powers off vm-node2) is not running"]


class PlanOnly:
    name = "99 toy"

    def __init__(self, plan: Plan):
        self._plan = plan

    def gather(self, hosts):
        return None

    def plan(self, facts) -> Plan:
        return self._plan

    def verify(self, hosts, wait=True):
        raise AssertionError("check never verifies or applies")


def test_a_stage_plan_becomes_drift_rows_without_barriers_or_reads() -> None:
    p = Plan("99 toy", ops=[Command(node="a", argv="check", read_only=True), Barrier(text="x"),
                            Command(node="b", argv="fix it", reason="b drifted")], blocked={"c": "no key"})
    rows = plan_drift(PlanOnly(p), "99_toy", {})
    assert rows == [Drift("c", "blocked: no key", "99_toy", "99 toy"), Drift("b", "fix it (b drifted)", "99_toy", "99 toy")]


def test_exit_codes() -> None:
    assert DriftReport("c").exit_code == 0
    assert DriftReport("c", [Drift("a", "x", "y", "z")]).exit_code == 1
    with pytest.raises(AssertionError):
        PlanOnly(Plan("x")).verify({})
