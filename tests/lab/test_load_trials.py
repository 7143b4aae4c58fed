"""Failover trials under a client load (failover.load) on the fenced two-node lab.

The load (200 requests/s over 4 kept-alive and 4 fresh connections) runs beside the probe through an
idle trial and a planned move. Apache's own access log proves the requests reached it; the planned
move shows up in the load's errors as it does in the probe's.
"""

from __future__ import annotations

import math

import pytest

from hakit.failover.load import LoadSpec
from hakit.failover.suite import FailoverSuite

pytestmark = pytest.mark.lab

LOAD = LoadSpec(rate_hz=200, keepalive=4, fresh=4)
LOG = "/var/log/apache2/access.log"


def _served(lab, node: str) -> int:
    r = lab.ssh(node, ["sh", "-c", f"cat {LOG}* 2>/dev/null | wc -l"], timeout=30)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_idle_and_planned_move_under_load(cluster2, tmp_path) -> None:
    lab, _ = cluster2
    params = lab.params
    before = {n.name: _served(lab, n.name) for n in params.nodes}
    suite = FailoverSuite(params, "idle,planned-move", 1, dry_run=False, record_dir=str(tmp_path / "rec"), load=LOAD)
    assert "client load: 200 requests/s over 4 keep-alive and 4 fresh connections" in str(suite)
    df = suite.run()
    suite.save()
    cols = ["scenario", "downtime_s", "failed_probes", "probes", "load_requests", "load_errors", "load_p50_ms",
            "load_p99_ms", "ok", "problems"]
    print("\nFIGURES failover under load (200/s, 4 keep-alive + 4 fresh):\n" + df[cols].to_string(index=False))
    after = {n.name: _served(lab, n.name) for n in params.nodes}
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    idle, move = by.loc["idle"], by.loc["planned-move"]
    assert (df["load_hz"] == 200).all()
    # idle: the load ran, much heavier than the probe, and nothing failed
    assert idle["load_errors"] == 0 and idle["failed_probes"] == 0
    assert idle["load_requests"] > 4 * idle["probes"], idle.to_string()
    assert not math.isnan(idle["load_p50_ms"]) and idle["load_p50_ms"] <= idle["load_p99_ms"]
    # the planned move stops Apache on one node and starts it on the other: the load saw it too
    assert move["failed_probes"] > 0 and move["load_errors"] > 0, move.to_string()
    # every answered request was logged by an Apache: the load reached the service, not something else
    answered = int(sum(t.row.load_requests - t.row.load_errors for t in suite.done))
    logged = sum(after.values()) - sum(before.values())
    assert logged >= answered, (logged, answered)
