"""`hakit check` on a built cluster: clean right after the runbooks, then each injected drift named
with its fix, and clean again once undone. It never changes a node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hakit import notebook
from hakit.check import check
from hakit.failover.runner import settle

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def cli_check(params_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hakit", "check", "--params", str(params_file)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_clean_then_each_drift_named_then_clean(cluster2, lab2_params: Path) -> None:
    lab, _ = cluster2
    params = lab.params
    clean = cli_check(lab2_params)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "matches the params" in clean.stdout
    hosts = notebook.connect_nodes(params)
    sh = hosts["vm-node1"].run
    try:
        sh("crm node standby vm-node2")
        sh("crm_resource --ban --resource vip --node vm-node2")  # what `crm resource move` leaves behind
        sh(f"sed -i 's/^    token: .*/    token: 4321/' {'/etc/corosync/corosync.conf'}")
        rep = check(params, hosts)
        whats = [(d.where, d.what, d.fix) for d in rep.drift]
        assert rep.exit_code == 1
        assert ("vm-node2", "in standby: it runs no resources", "crm node online vm-node2") in whats, whats
        assert any(w.startswith("leftover move constraint cli-ban-vip-on-vm-node2 (vip away from vm-node2)")
                   and f == "crm resource clear vip" for _, w, f in whats), whats
        assert any(d.where == "vm-node1" and "corosync.conf" in d.what and d.source == "03 corosync rings"
                   for d in rep.drift), whats
        out = cli_check(lab2_params)
        assert out.returncode == 1 and "drift(s) from the params" in out.stdout
    finally:
        sh("crm node online vm-node2", check=False)
        sh("crm_resource --clear --resource vip", check=False)
        hosts["vm-node1"].write_bytes("/etc/corosync/corosync.conf", hosts["vm-node2"].read_bytes(
            "/etc/corosync/corosync.conf"))
        settle(hosts, params, timeout_s=90)  # the standby node's resources are back before checking again
        for h in hosts.values():
            h.close()
    again = cli_check(lab2_params)
    assert again.returncode == 0, again.stdout
