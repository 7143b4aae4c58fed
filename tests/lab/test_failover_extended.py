"""The extended failover faults (scenarios.EXTENDED) once each on the fenced two-node lab, judged by their rules.

The cluster runs a failure policy with migration_threshold 3 and failure_timeout 20 s for this module, so
apache-kill-loop shows the rule "with threshold N the move comes at the Nth kill" (the shipped threshold 1
moves at the first, as apache-crash does) and resource-fail a recovery in place. The shipped policy is put
back afterwards through the same call the failover suite uses to set up the cluster.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hakit import notebook
from hakit.failover import scenarios
from hakit.failover.profile import use_profile
from hakit.failover.suite import FailoverSuite

pytestmark = pytest.mark.lab

THRESHOLD, TIMEOUT = 3, 20


def _looping_policy(shipped: Path, out: Path) -> Path:
    text = shipped.read_text()
    text, n1 = re.subn(r"(?m)^(\s+migration_threshold:)\s*\S+", rf"\g<1> {THRESHOLD}", text)
    text, n2 = re.subn(r"(?m)^(\s+failure_timeout:)\s*\S+", rf"\g<1> {TIMEOUT}", text)
    assert n1 == n2 == 1, "the shipped params changed shape: pacemaker.resources not found"
    out.write_text(text)
    return out


def test_the_extended_faults_once_each(cluster2, lab2_params, tmp_path):
    lab, _ = cluster2
    params = notebook.load(_looping_policy(lab2_params, tmp_path / "threshold3.yaml"))
    assert params.pacemaker.resources.migration_threshold == THRESHOLD
    rec = tmp_path / "record"
    suite = FailoverSuite(params, "extended", 1, dry_run=False, record_dir=str(rec))
    started = time.monotonic()
    try:
        df = suite.run()
    finally:
        shipped = notebook.load(lab2_params)
        hosts = notebook.connect_nodes(shipped)
        try:
            back = use_profile(hosts, shipped, shipped.cluster.profile, tmp_path / "back")
        finally:
            for h in hosts.values():
                h.close()
    print(f"5 trials in {time.monotonic() - started:.0f} s; shipped policy back: {back}")
    suite.save()
    print(df[["scenario", "downtime_s", "failback_s", "incident_s", "served_after", "httpd_failcount", "fenced",
              "ended", "evidence"]].to_string(index=False))
    assert list(df["scenario"]) == list(scenarios.EXTENDED)
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    assert back, "the module's policy was in the CIB, so putting the shipped one back changed it"
    assert (df["dual_vip_samples"] == 0).all() and (df["served_before"] == "vm-node1").all()
    by = df.set_index("scenario")

    # pacemakerd-kill: systemd respawns it, the subdaemons are adopted, clients never notice.
    pk = by.loc["pacemakerd-kill"]
    assert (pk["failed_probes"], pk["fenced"], pk["served_after"], pk["ended"]) == (0, "-", "vm-node1", "in place")
    assert "6 of 6 subdaemons kept their PIDs" in pk["evidence"], pk["evidence"]

    # apache-kill-loop: restarted in place twice, moved at the third kill, back when the failcount expired.
    kl = by.loc["apache-kill-loop"]
    assert kl["httpd_failcount"] == THRESHOLD and kl["served_after"] == "vm-node2", kl.to_string()
    assert kl["evidence"].startswith(f"{THRESHOLD} kill(s)") and kl["ended"] == "back on vm-node1"

    # resource-fail: the injected failure is recorded, failcount 1, Apache restarted in place (3 > 1).
    rf = by.loc["resource-fail"]
    assert (rf["httpd_failcount"], rf["served_after"]) == (1, "vm-node1") and rf["downtime_s"] > 0
    assert "Simulated failure" in rf["evidence"], rf["evidence"]

    # passive-crash: the standby is fenced, the service never moves and no probe fails.
    pc = by.loc["passive-crash"]
    assert (pc["failed_probes"], pc["fenced"], pc["served_after"], pc["ended"]) == (0, "vm-node2", "vm-node1", "in place")

    # gateway-loss-both: the service stops everywhere, starts on the standby once it regains the gateway.
    gw = by.loc["gateway-loss-both"]
    assert gw["served_after"] == "vm-node2" and gw["downtime_s"] > 0 and gw["heal_s"] > 0, gw.to_string()
    assert "stopped on every node" in gw["evidence"] and gw["ended"] == "back on vm-node1"
    assert (rec / "failover.csv").exists()
