"""The article's cluster, unfenced, on real nodes: the split brain it allows, seen by the client's ARP view.

params/lab.yaml with `stonith_enabled: false` and no fence devices (the article's own choice),
deployed once on a fresh lab. The `split-brain` scenario cuts all traffic between the nodes (both
rings); without fencing each node believes the other is gone and starts the service itself, so
two MAC addresses answer for the VIP. The suite's own judging expects exactly that here (with
fencing the same scenario expects one node fenced and one MAC, tests/lab/test_failover.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit.failover.runner import run_suite
from hakit.failover.scenarios import SCENARIOS
from hakit.lab import Lab
from hakit.run import run as hakit_run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def unfenced(labu_params: Path, start_lab, tmp_path_factory) -> Lab:
    lab = start_lab(labu_params)
    folder = hakit_run(str(labu_params), stages="1-6", out_root=tmp_path_factory.mktemp("runs-unfenced"), html=False)
    assert folder.exists()
    yield lab
    lab.down()


def test_without_fencing_a_partition_gives_two_macs_for_the_vip(unfenced: Lab) -> None:
    lab = unfenced
    params = lab.params
    assert params.pacemaker.stonith_enabled is False and params.pacemaker.fencing is None
    assert lab.bmc_status() == []  # no virtual BMCs: nothing could fence
    df, _ = run_suite(lab, params, [SCENARIOS["split-brain"]], 1, params.cluster.profile, progress=print)
    row = df.iloc[0]
    assert row["ok"], row["problems"]
    assert row["dual_vip_samples"] > 0  # the split brain itself: both nodes claimed the VIP
    assert row["fenced"] == "-" and row["fencing"] == False  # noqa: E712 - numpy bool
    print(f"\nFIGURES unfenced split brain: {row['dual_vip_samples']} ARP samples with two MACs for the VIP; "
          f"ended {row['ended']}")
