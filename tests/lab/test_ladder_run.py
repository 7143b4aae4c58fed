"""`hakit bench failover --ladder` end to end on a lab of its own, cut to two rungs and one scenario:
the article's layout on `fast` without a device, then `fast` with the quorum device and cloned Apache.
Each structure gets fresh lab nodes and stages 00-06 (and 03q); the results folder holds every rung's
params, build records, trials, floors and the chart.

Proves: both rungs were built as their params say (the device rung's cluster counts qnetd's vote and has
no fence delay, the first rung's CIB had the delay), the planned move costs the cloned layout less than
the article's (only the VIP moves), and no floor is above what the probe measured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hakit import ladder
from hakit.facts.corosync import parse_quorumtool_status

# bench: left to `make test-bench` (about 2 min on one worker; `make test` keeps under 30 min here)
pytestmark = [pytest.mark.lab, pytest.mark.bench]

# A floor may sit a little above a measurement: the probe sees an outage to within its period (40 ms), and
# the VIP answers before its start operation returns (IPaddr2 sends its gratuitous ARPs after adding the
# address; on the ladder's lan rung the start took 0.12 s and one gateway-loss outage 0.12 s).
SLACK_S = 0.15


@pytest.fixture(scope="module")
def climbed(labl_params: Path, tmp_path_factory, start_lab):
    lab = start_lab(labl_params)  # the ladder takes it down and up again per structure
    lines: list[str] = []
    text, out = ladder.bench_ladder(str(labl_params), trials=1, scenarios="planned-move",
                                    rungs="fast,fast+qdevice+cloned", out_root=tmp_path_factory.mktemp("ladder"),
                                    progress=lines.append)
    yield lab, text, out, lines
    lab.down()


def test_every_rung_leaves_its_params_builds_trials_and_floors(climbed) -> None:
    _lab, text, out, lines = climbed
    for name in ("failover.csv", "floors.csv", "ladder.csv", "goals.csv", "ladder.png", "timelines.png",
                 "params-fast.yaml", "params-fast-qdevice-cloned.yaml"):
        assert (out / name).is_file(), name
    assert (out / "build-fast").is_dir() and (out / "build-fast-qdevice-cloned").is_dir()
    assert sum("fresh lab nodes" in ln for ln in lines) == 2
    assert any("03q quorum device: done in" in ln for ln in lines)
    df = pd.read_csv(out / "failover.csv")
    assert list(df["rung"]) == ["fast", "fast+qdevice+cloned"] and df["ok"].all(), df.to_string()
    assert "planned-move" in text and "fast+qdevice+cloned" in text


def test_the_rungs_ran_as_built(climbed) -> None:
    lab, _text, out, _lines = climbed
    first_cib = "\n".join(p.read_text() for p in (out / "build-fast").rglob("*.xml"))
    assert "pcmk_delay_base" in first_cib  # two_node without a device: the fence delay settles the race
    # the lab is left on the last rung: the device's vote counts, no delay, Apache runs on both nodes
    for n in lab.params.nodes:
        q = parse_quorumtool_status(lab.ssh(n.name, ["corosync-quorumtool", "-s"], check=True).stdout)
        assert q.qdevice is not None and q.qdevice.votes == 1 and not q.two_node, n.name
    cib = lab.ssh(lab.params.nodes[0].name, ["cibadmin", "--query", "--scope", "resources"], check=True).stdout
    assert "pcmk_delay_base" not in cib and "httpd-clone" in cib


def test_only_the_vip_moving_costs_less_and_floors_stay_below(climbed) -> None:
    _lab, _text, out, _lines = climbed
    df = pd.read_csv(out / "failover.csv").set_index("rung")
    article, cloned = df.loc["fast", "downtime_s"], df.loc["fast+qdevice+cloned", "downtime_s"]
    assert cloned < article, (article, cloned)
    fl = pd.read_csv(out / "floors.csv").set_index("rung")
    for rung in ("fast", "fast+qdevice+cloned"):
        assert fl.loc[rung, "floor_s"] <= df.loc[rung, "downtime_s"] + SLACK_S, (rung, fl.loc[rung, "why"])
        assert fl.loc[rung, "floor_s"] > 0, rung  # the start times came from the rung's own resource history
