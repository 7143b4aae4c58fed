"""Notebook 08's day-2 operations on the built two-node lab (fencing on).

The notebook headless, as a drill: standby and online, a move (its cli-prefer warned about) and its
clear, maintenance mode on and off, and a confirmed fence test of the passive node; each operation
ends where crm_simulate predicted, and the cluster matches the params afterwards. A dry run of the
whole notebook leaves the CIB as it was. Then through the library: a cleanup after a real Apache
crash moves the service back, and maintenance mode keeps Apache's process and the VIP running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import papermill as pm
import pytest

from hakit import cib, notebook, secretscan
from hakit.check import check
from hakit.failover.runner import settle
from hakit.operations import Operations
from hakit.stages.constraints import http_get

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "08_operations.ipynb"
APACHE_PID = ["sh", "-c", "cat /run/apache2/apache2.pid"]


def served_by(params) -> str | None:
    return http_get(f"http://{params.vip.address}/").node


def record(folder: Path) -> dict:
    return json.loads((folder / "record.json").read_text())


def test_the_notebook_dry_run_changes_nothing(cluster2, lab2_params, tmp_path):
    lab, _ = cluster2
    before = cib.CibSnapshot.parse(lab.ssh("vm-node1", ["cibadmin", "--query"], check=True).stdout)
    t0 = time.monotonic()
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "08-dry.ipynb"), cwd=str(ROOT), progress_bar=False,
                        parameters={"params_file": str(lab2_params), "record_dir": str(tmp_path / "rec"),
                                    "confirm_fence": "vm-node2"})
    print(f"notebook 08, dry run: {time.monotonic() - t0:.1f} s")
    after = cib.CibSnapshot.parse(lab.ssh("vm-node1", ["cibadmin", "--query"], check=True).stdout)
    assert after.version.config == before.version.config and after.config_sha256 == before.config_sha256
    rec = record(tmp_path / "rec")
    assert rec["dry_run"] and rec["executed"] == []
    assert {o["outcome"] for o in rec["outcomes"]} <= {"not applied", "unchanged"}
    assert lab.ssh("vm-node2", ["true"]).returncode == 0  # the fence test was only planned


def test_the_notebook_runs_the_drill_and_every_operation_lands_as_predicted(cluster2, lab2_params, tmp_path):
    lab, _ = cluster2
    params = lab.params
    rec_dir = tmp_path / "rec"
    t0 = time.monotonic()
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "08.ipynb"), cwd=str(ROOT), progress_bar=False,
                        parameters={"params_file": str(lab2_params), "dry_run": False, "record_dir": str(rec_dir),
                                    "confirm_fence": "vm-node2"})
    took = time.monotonic() - t0
    ops = {p.name: record(p) for p in sorted(rec_dir.iterdir()) if p.is_dir()}
    assert list(ops) == ["01-standby-vm-node2", "02-online-vm-node2", "03-move-vip", "04-clear-vip",
                         "05-cleanup-httpd", "06-maintenance-mode-on", "07-maintenance-mode-off",
                         "08-fence-test-vm-node2"]
    for name, rec in ops.items():
        assert rec["verification"]["ok"], (name, rec["verification"])
        assert rec["executed"] == rec["program"], name  # what the dry run would have shown, and nothing else
        checks = {c["check"]: c for c in rec["verification"]["checks"]}
        if name != "05-cleanup-httpd":  # a healthy cluster has nothing to clean up
            assert rec["outcomes"][0]["outcome"] == "changed", name
            assert checks["the cluster is where crm_simulate predicted"]["ok"], name
    assert ops["05-cleanup-httpd"]["outcomes"][0]["outcome"] == "unchanged"
    warned = (rec_dir / "03-move-vip" / "warnings.txt").read_text()
    assert "cli-prefer-vip: vip pinned to vm-node2" in warned and "crm resource clear vip" in warned
    readings = (rec_dir / "crm_mon.txt").read_text()
    assert readings.count("$ crm_mon -1 -Af") == 2 and "Started vm-node2" in readings.split("$ crm_mon")[2]
    fence = {c["check"]: c for c in ops["08-fence-test-vm-node2"]["verification"]["checks"]}
    assert fence["fenced (off) by the cluster's fencer"]["detail"].startswith("off by vm-node1")
    assert fence["powered on again through its fence device"]["ok"]
    assert fence["while vm-node2 was off: as crm_simulate predicted (step 1)"]["ok"]
    print(f"notebook 08, the drill with the fence test: {took:.1f} s;",
          (rec_dir / "08-fence-test-vm-node2" / "fence.txt").read_text().strip())
    print((rec_dir / "operations.csv").read_text())
    # The record is as clean of secrets as a `hakit run` folder must be, and the cluster matches the params.
    scan = secretscan.ScanReport()
    secrets = secretscan.params_secrets(params) + secretscan.fencing_secrets(params, scan)
    secrets += secretscan.authkey_secrets(params, scan)
    secretscan.scan_folder(rec_dir, secrets, scan)
    assert scan.clean, scan.to_dict()
    hosts = notebook.connect_nodes(params)
    try:
        rep = check(params, hosts)
        assert rep.clean, rep.lines()
    finally:
        for h in hosts.values():
            h.close()
    assert served_by(params) == "vm-node1"


def test_cleanup_after_an_apache_crash_brings_the_service_back(cluster2):
    lab, _ = cluster2
    params = lab.params
    hosts = notebook.connect_nodes(params)
    try:
        day2 = Operations(params, hosts, dry_run=False)
        assert day2.failcounts().frame.empty
        lab.kill_process("vm-node1", "apache2")
        moved = settle(hosts, params, timeout_s=60, on="vm-node2", cleanup=False)
        assert moved.failures, "the crash left no failed action"
        counts = day2.failcounts().frame
        row = counts[(counts["resource"] == "httpd") & (counts["failcount"] != "")].iloc[0]
        assert (row["node"], row["failcount"]) == ("vm-node1", 1) and row["what it does"].startswith("banned from vm-node1")
        t0 = time.monotonic()
        got = day2.cleanup("httpd")
        took = time.monotonic() - t0
        assert got.op.prediction.layout.where("vip") == ("vm-node1",)  # the ban ends, so the service fails back
        assert got.verified, got.run.verification
        assert day2.failcounts().frame.empty
        assert served_by(params) == "vm-node1"
        print(f"cleanup httpd: {took:.1f} s from the plan to the service back on vm-node1")
    finally:
        settle(hosts, params, timeout_s=90)
        for h in hosts.values():
            h.close()


def test_maintenance_mode_keeps_apache_and_the_vip_running(cluster2):
    lab, _ = cluster2
    params = lab.params
    hosts = notebook.connect_nodes(params)
    pid = lab.ssh("vm-node1", APACHE_PID, check=True).stdout.strip()
    try:
        day2 = Operations(params, hosts, dry_run=False)
        on = day2.maintenance(True)
        assert on.verified, on.run.verification
        shown = day2.read()
        assert "Resource management is DISABLED" in set(shown.legend["part"])
        assert "Started vm-node1 (maintenance)" in shown.raw
        assert lab.ssh("vm-node1", APACHE_PID, check=True).stdout.strip() == pid
        assert served_by(params) == "vm-node1"
        rep = check(params, hosts)
        assert any("maintenance-mode is on" in d.what for d in rep.drift), rep.lines()
        off = day2.maintenance(False)
        assert off.verified, off.run.verification
        assert lab.ssh("vm-node1", APACHE_PID, check=True).stdout.strip() == pid  # never restarted
        assert served_by(params) == "vm-node1"
    finally:
        hosts["vm-node1"].run("crm_attribute --type crm_config --name maintenance-mode --update false", check=False)
        settle(hosts, params, timeout_s=90)
        for h in hosts.values():
            h.close()
