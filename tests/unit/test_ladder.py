"""The failover ladder's pure parts: rungs, their params, the floors and the tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hakit import fencing, ladder
from hakit.notebook import load as load_params
from hakit.profiles import get_profile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qparams():
    return load_params(str(ROOT / "params/lab-qdevice.yaml"))


def test_rungs_in_ladder_order_and_unknown_names_refused() -> None:
    assert [r.name for r in ladder.select_rungs("all")] == [
        "seed", "fast", "fast+qdevice", "fast+qdevice+cloned", "lan+qdevice+cloned"]
    assert [r.name for r in ladder.select_rungs("lan+qdevice+cloned, seed")] == ["seed", "lan+qdevice+cloned"]
    with pytest.raises(ValueError, match=r"unknown rung\(s\) \['fastest'\]; valid: all, seed, fast"):
        ladder.select_rungs("seed,fastest")
    with pytest.raises(ValueError, match="unknown"):
        ladder.select_rungs(" , ")


def test_rung_params_change_only_profile_layout_and_device(qparams) -> None:
    seed = ladder.rung_params(qparams, ladder.RUNGS[0])
    assert (seed.cluster.profile, seed.pacemaker.layout, seed.quorum_device) == ("seed", "article", None)
    top = ladder.rung_params(qparams, ladder.RUNGS[-1])
    assert (top.cluster.profile, top.pacemaker.layout) == ("lan", "cloned-apache")
    assert top.quorum_device == qparams.quorum_device
    assert top.nodes == qparams.nodes and top.lab == qparams.lab and top.vip == qparams.vip
    # the fence delay comes back without the device: the two-node race is settled by it again
    delays = [r.attributes.get("pcmk_delay_base") for r in fencing.stonith_resources(seed)]
    assert delays == ["5s", None]
    assert all("pcmk_delay_base" not in r.attributes for r in fencing.stonith_resources(top))


def test_rung_params_refuse_what_the_ladder_cannot_measure() -> None:
    plain = load_params(str(ROOT / "params/lab.yaml"))
    with pytest.raises(ValueError, match="rung fast\\+qdevice needs a quorum device.*lab-qdevice.yaml"):
        ladder.rung_params(plain, ladder.RUNGS[2])
    assert ladder.rung_params(plain, ladder.RUNGS[1]).cluster.profile == "fast"
    unfenced = plain.model_copy(update={"pacemaker": plain.pacemaker.model_copy(update={"stonith_enabled": False})})
    with pytest.raises(ValueError, match="stonith_enabled is false: the ladder measures with fencing on"):
        ladder.rung_params(unfenced, ladder.RUNGS[0])


def test_op_times_from_a_captured_status_section(load_fixture) -> None:
    times = ladder.op_times(load_fixture("captured/trixie/cibadmin-status-article.xml"))
    # vm-node1 started vip and httpd, vm-node2 stopped httpd at the build (its apache2 from boot)
    assert times[("vip", "start")] == 0.168 and times[("httpd", "start")] == 0.165
    assert times[("httpd", "stop")] == 2.061
    assert ("vip", "stop") not in times  # vm-node2 only probed the VIP: a probe is not a stop
    assert all(op in ("start", "stop") for _, op in times)


def test_fence_wait_follows_the_params_and_the_agent_default(qparams) -> None:
    assert fencing.fence_wait_s(qparams) == 0.0  # the lab's BMC: power_wait_s 0
    fen = qparams.pacemaker.fencing
    agent_default = qparams.model_copy(update={"pacemaker": qparams.pacemaker.model_copy(
        update={"fencing": fen.model_copy(update={"power_wait_s": None})})})
    assert fencing.fence_wait_s(agent_default) == 2.0
    assert [r.attributes.get("power_wait") for r in fencing.stonith_resources(qparams)] == ["0", "0"]
    assert all("power_wait" not in r.attributes for r in fencing.stonith_resources(agent_default))


def test_floors_add_the_settings_waits_to_what_must_start(qparams) -> None:
    times = {("vip", "start"): 0.1, ("vip", "stop"): 0.05, ("httpd", "start"): 0.5, ("httpd", "stop"): 2.0}
    seed = ladder.rung_params(qparams, ladder.RUNGS[0])
    f = ladder.floors(seed, get_profile("seed"), times).set_index("scenario")
    detect = get_profile("seed").failure_detection_ms(2) / 1000
    assert f.loc["node-crash", "floor_s"] == round(detect + 5 + 0.6, 2)  # off already: no power wait
    assert f.loc["corosync-kill", "floor_s"] == 0.6  # serves until powered off; power_wait_s 0, then the starts
    slow_bmc = seed.model_copy(update={"pacemaker": seed.pacemaker.model_copy(update={
        "fencing": seed.pacemaker.fencing.model_copy(update={"power_wait_s": 2})})})
    s = ladder.floors(slow_bmc, get_profile("seed"), times).set_index("scenario")
    assert (s.loc["corosync-kill", "floor_s"], s.loc["node-crash", "floor_s"]) == (2.6, f.loc["node-crash", "floor_s"])
    assert f.loc["planned-move", "floor_s"] == 0.65  # the VIP's stop and both starts; Apache's stop only at worst
    assert f.loc["planned-move", "worst_s"] == 2.65
    assert f.loc["apache-crash", "worst_s"] == round(2.65 + get_profile("seed").resources.httpd_monitor, 2)
    top = ladder.rung_params(qparams, ladder.RUNGS[-1])
    lan = get_profile("lan")
    g = ladder.floors(top, lan, times).set_index("scenario")
    assert g.loc["node-crash", "floor_s"] == round(lan.failure_detection_ms(2) / 1000 + 0.1, 2)  # no delay, VIP only
    assert (g.loc["planned-move", "floor_s"], g.loc["planned-move", "worst_s"]) == (0.1, 0.15)
    assert g.loc["gateway-loss", "floor_s"] == 0.1  # monitor and dampen delay the move, not the outage
    assert (g.loc[["split-brain", "ring0-loss"], "floor_s"] == 0).all()


def _trials(rows):
    return pd.DataFrame(rows, columns=["rung", "scenario", "trial", "downtime_s", "fenced"])


def test_ladder_and_goals_tables() -> None:
    df = _trials([
        ("seed", "node-crash", 1, 12.0, "vm-node1"), ("seed", "node-crash", 2, 14.0, "vm-node1"),
        ("lan+qdevice+cloned", "node-crash", 1, 2.0, "vm-node1"), ("lan+qdevice+cloned", "node-crash", 2, 3.0, "vm-node1"),
        ("seed", "split-brain", 1, 0.0, "vm-node2"), ("lan+qdevice+cloned", "split-brain", 1, 0.0, "vm-node2,vm-node1"),
        ("seed", "planned-move", 1, 2.2, "-"), ("lan+qdevice+cloned", "planned-move", 1, 0.6, "-"),
    ])
    fl = pd.DataFrame([("seed", "node-crash", 11.8), ("lan+qdevice+cloned", "node-crash", 1.4)],
                      columns=["rung", "scenario", "floor_s"])
    t = ladder.ladder_table(df, fl, ["seed", "lan+qdevice+cloned"])
    assert t.loc["node-crash", "seed"] == "13.00 (11.80)"
    assert t.loc["node-crash", "lan+qdevice+cloned"] == "2.50 (1.40)"
    assert t.loc["planned-move", "seed"] == "2.20 (nan)"
    g = ladder.goals_table(df).set_index("scenario")
    assert (g.loc["node-crash", "best_rung"], g.loc["node-crash", "median_s"], g.loc["node-crash", "met"]) == (
        "lan+qdevice+cloned", 2.5, "yes")
    assert g.loc["planned-move", "met"] == "no"  # 0.6 > 0.5
    # split-brain: both rungs at 0 s; the first (seed) is the best and fenced exactly one node
    assert g.loc["split-brain", "best_rung"] == "seed" and g.loc["split-brain", "met"] == "yes"
    assert "corosync-kill" not in g.index  # not run: not judged


def test_ladder_plot_has_a_bar_per_rung_and_scenario() -> None:
    df = _trials([("seed", "node-crash", 1, 12.0, "x"), ("fast", "node-crash", 1, 8.0, "x"),
                  ("seed", "planned-move", 1, 2.0, "-"), ("fast", "planned-move", 1, 2.1, "-")])
    fl = pd.DataFrame([("seed", "node-crash", 11.0)], columns=["rung", "scenario", "floor_s"])
    fig = ladder.ladder_plot(df, fl, ["seed", "fast"])
    assert len(fig.axes[0].patches) == 4
