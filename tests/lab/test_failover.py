"""Notebook 07 headless on the built two-node lab: one trial of every scenario, with the
correctness checks asserted, downtime measured, and the CSV and both charts saved."""

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
    names = list(scenarios.SCENARIOS)
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
    assert (df["probe_rate_hz"] >= 20).all(), df[["scenario", "probe_rate_hz"]].to_string()
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
    assert by.loc["apache-crash", "served_after"] == "vm-node1"
    assert by.loc["apache-crash", "httpd_failcount"] == 1
    # Without fencing, killing corosync leaves two nodes answering for the VIP; the ARP watch must see it.
    assert by.loc["corosync-kill", "dual_vip_samples"] > 0
    assert by.loc["node-crash", "dual_vip_samples"] == 0
    for chart in ("timelines.png", "downtime.png"):
        assert (rec / chart).stat().st_size > 10_000
