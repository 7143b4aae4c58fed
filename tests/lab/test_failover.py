"""Notebook 07 headless on the built two-node lab: one trial of every scenario outside the extended set
(tests/lab/test_failover_extended.py runs those), with the correctness checks asserted, downtime
measured, and the CSV and both charts saved."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

from hakit.failover import scenarios

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_once_through_the_notebook(cluster2, lab2_params, tmp_path):
    lab, _ = cluster2
    # every scenario but the extended set (test_failover_extended.py), what needs kernel bonds
    # (slave-loss: tests/lab/test_vm_cluster.py; these are container nodes) and what needs a quorum
    # device (qnetd-loss, qnetd-then-node-loss: tests/lab/test_qdevice.py)
    names = [n for n, s in scenarios.SCENARIOS.items()
             if n not in scenarios.EXTENDED and not s.needs_bonds and not s.needs_qdevice]
    rec = tmp_path / "record"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "07_failover_tests.ipynb"), str(tmp_path / "07.ipynb"),
        parameters={"params_file": str(lab2_params), "dry_run": False, "scenarios": ",".join(names),
                    "trials": 1, "record_dir": str(rec)},
        cwd=str(ROOT), progress_bar=False,
    )
    df = pd.read_csv(rec / "failover.csv")
    assert list(df["scenario"]) == names
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    print(df[["scenario", "probe_rate_hz"]].to_string(index=False))  # the probe's rate: reported, not asserted
    for name in names:
        s = scenarios.SCENARIOS[name]
        row = by.loc[name]
        # (an unfenced split brain may show no failed probe at all: the lost node serves on)
        if s.outage_certain(bool(row["fencing"])):
            assert row["downtime_s"] > 0, name
        elif not s.outage_expected:
            assert row["downtime_s"] == 0 and row["failed_probes"] == 0, name
        assert row["served_before"] == "vm-node1"
    assert by.loc["node-crash", "served_after"] == "vm-node2"
    assert by.loc["gateway-loss", "served_after"] == "vm-node2"
    # The shipped failure policy (migration_threshold 1, no stickiness; the test labs' failure_timeout is
    # 20 s, conftest.TEST_FAILURE_TIMEOUT): an Apache crash moves httpd and, through the colocation, the
    # VIP; the failcount expires and both fail back.
    assert by.loc["apache-crash", "served_after"] == "vm-node2"
    assert by.loc["apache-crash", "httpd_failcount"] == 1
    # Whole incidents: every trial is watched until the service is back on the preferred node.
    assert (df["ended"].isin(["in place", "back on vm-node1"])).all(), df[["scenario", "ended"]].to_string()
    for name in ("node-crash", "apache-crash", "gateway-loss", "planned-move", "corosync-kill", "fence-failure"):
        assert by.loc[name, "ended"] == "back on vm-node1", name
    for name in ("idle", "ring0-loss", "split-brain"):
        assert by.loc[name, "ended"] == "in place" and by.loc[name, "failback_s"] == 0, name
    assert (df["incident_s"] - df["downtime_s"] - df["failback_s"]).abs().max() < 0.01
    print(df[["scenario", "downtime_s", "failback_s", "incident_s", "ended"]].to_string(index=False))
    # The test lab fences (params/lab.yaml): every lost node is powered off before its service
    # moves, no fault ever leaves two nodes answering for the VIP, and only the right node is fenced.
    assert (df["fencing"]).all()
    assert (df["dual_vip_samples"] == 0).all(), df[["scenario", "dual_vip_samples"]].to_string()
    fenced = by["fenced"].to_dict()
    assert fenced == {
        "idle": "-", "node-crash": "vm-node1", "apache-crash": "-", "gateway-loss": "-", "planned-move": "-",
        "ring0-loss": "-", "corosync-kill": "vm-node1", "split-brain": "vm-node2", "fence-failure": "vm-node1",
    }
    # split-brain: the preferred node wins the fence race and clients never notice.
    assert by.loc["split-brain", "served_after"] == "vm-node1"
    # fence-failure: nothing recovers until the BMC is back; at least one fencing attempt failed meanwhile.
    ff = by.loc["fence-failure"]
    assert ff["fence_failures"] >= 1 and ff["served_after"] == "vm-node2"
    assert ff["downtime_s"] >= ff["heal_s"] - 1, ff.to_string()
    for chart in ("timelines.png", "downtime.png"):
        assert (rec / chart).stat().st_size > 10_000
