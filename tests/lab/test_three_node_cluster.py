"""Three nodes end to end: stages 00-06 with three BMCs, then what only three nodes can show.

A fresh 3-node lab (params/lab-3node.yaml: fencing on, no-quorum-policy stop, no `two_node`),
deployed once per module with `hakit run`. Then, read on the nodes and from the client side:
losing one node (the passive one) keeps quorum and the service, and that node is fenced;
losing two leaves the survivor without quorum, and under no-quorum-policy=stop it stops the
service (the client sees it go) and fences nobody; when the others return, quorum and the
service come back. Every wait is on state (crm_mon, the client's HTTP answer), with a deadline.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import evidence

from hakit import notebook
from hakit.facts.pacemaker import ClusterStatus, parse_crm_mon, parse_fence_history
from hakit.failover.runner import settle
from hakit.lab import Lab
from hakit.run import run as hakit_run

pytestmark = pytest.mark.lab

NODES = ("vm-node1", "vm-node2", "vm-node3")


def _status(lab: Lab, via: str = "vm-node1") -> ClusterStatus:
    return parse_crm_mon(lab.ssh(via, ["crm_mon", "-1", "--output-as=xml"], check=True).stdout)


def _serves(lab: Lab) -> str | None:
    """The node named by the page on the VIP, from this machine (None: no answer)."""
    r = subprocess.run(["curl", "-s", "--noproxy", "*", "-m", "1", f"http://{lab.params.vip.address}/"],
                       capture_output=True, text=True)
    return next((n for n in NODES if n in r.stdout), None) if r.returncode == 0 else None


def _wait(what: str, check, timeout: float = 90.0):
    return evidence.wait_until(what, check, timeout, every=0.2)


def _fences(lab: Lab, target: str) -> list:
    out = lab.ssh("vm-node1", ["stonith_admin", "--history", target, "--verbose", "--output-as=xml"], check=True).stdout
    return [e for e in parse_fence_history(out) if e.target == target and e.completed is not None]


def _heal(lab: Lab) -> ClusterStatus:
    """Every node powered on (again, if fencing turned one off) and the cluster back in its normal layout."""
    def all_online():
        for n in NODES:
            if not lab._node_running(n):
                lab.power_on(n, wait=False)
        return set(_status(lab).online) == set(NODES)
    _wait("all three nodes online", all_online, timeout=180)
    hosts = notebook.connect_nodes(lab.params)
    try:
        return settle(hosts, lab.params, timeout_s=120)
    finally:
        for h in hosts.values():
            h.close()


@pytest.fixture(scope="module")
def three(lab3_params: Path, tmp_path_factory, start_lab) -> tuple[Lab, Path]:
    lab = start_lab(lab3_params)
    folder = hakit_run(str(lab3_params), stages="all", out_root=tmp_path_factory.mktemp("runs-3node"), html=False)
    yield lab, folder
    lab.down()


@pytest.fixture
def healthy(three) -> Lab:
    lab, _ = three
    lab.up()
    _heal(lab)
    return lab


def test_three_nodes_deployed_with_a_fence_device_each(three) -> None:
    lab, folder = three
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["ok"], summary.get("error")
    assert summary["secret_scan"]["clean"]
    # 00 on a ready image has nothing to install; 01 finds no NICs to bond in a container
    assert [s["status"] for s in summary["stages"]] == ["unchanged"] * 2 + ["changed"] * 5
    assert {o["node"] for o in summary["stages"][3]["outcomes"]} == set(NODES)  # corosync.conf on all three
    st = _status(lab)
    assert st.online == list(NODES) and st.quorate and st.no_quorum_policy == "stop"
    for n in NODES:
        (dev,) = st.instances(f"fence-{n}")
        assert dev.active and not dev.failed and n not in dev.nodes, (n, dev.nodes)
    q = lab.ssh("vm-node1", ["corosync-quorumtool", "-s"], check=True).stdout
    assert "Expected votes:   3" in q and "Total votes:      3" in q and "2Node" not in q, q
    assert lab.ssh("vm-node1", ["crm_verify", "-L"]).returncode == 0
    assert _serves(lab) == "vm-node1"


def test_one_node_lost_keeps_quorum_and_the_service(healthy: Lab) -> None:
    lab = healthy
    fenced_before = len(_fences(lab, "vm-node3"))
    t0 = time.monotonic()
    lab.power_cut("vm-node3")
    try:
        _wait("vm-node3 fenced by the other two", lambda: len(_fences(lab, "vm-node3")) > fenced_before)
        st = _status(lab)
        assert st.quorate and "vm-node3" not in st.online and st.where("vip") == "vm-node1"
        assert _fences(lab, "vm-node3")[-1].status == "success"
        assert _serves(lab) == "vm-node1"
        print(f"\nFIGURES 3 nodes, passive node lost: fenced after {time.monotonic() - t0:.1f} s, quorum kept, "
              "service on vm-node1 throughout")
    finally:
        _heal(lab)


def test_two_nodes_lost_stop_the_service_without_quorum(healthy: Lab) -> None:
    lab = healthy
    fences = {n: len(_fences(lab, n)) for n in ("vm-node2", "vm-node3")}
    t0 = time.monotonic()
    lab.power_cut("vm-node2")
    lab.power_cut("vm-node3")
    try:
        gone = _wait("the client loses the service", lambda: _serves(lab) is None and time.monotonic())
        st = _wait("vm-node1 without quorum, the service stopped",
                   lambda: (s := _status(lab)) and not s.quorate and not s.running_on("vip")
                   and not s.running_on("httpd") and s)
        assert st.no_quorum_policy == "stop"
        # Without quorum nobody may be fenced: the survivor cannot tell it is not the one cut off.
        assert {n: len(_fences(lab, n)) for n in fences} == fences
        stop_s = gone - t0
        t1 = time.monotonic()
        for n in ("vm-node2", "vm-node3"):
            lab.power_on(n, wait=False)
        back = _wait("the service answers again", lambda: _serves(lab) and time.monotonic(), timeout=180)
        print(f"\nFIGURES 3 nodes, two lost: the client lost the service {stop_s:.1f} s after the cut "
              f"(no-quorum-policy=stop); it answered again {back - t1:.1f} s after both were powered on")
    finally:
        _heal(lab)


def test_the_default_failover_suite_on_three_nodes(healthy: Lab, lab3_params: Path, tmp_path: Path) -> None:
    """The default suite, one trial each, on three fenced nodes. pacemaker picks the node the service
    moves to (the runner reads it from crm_simulate); cutting the active node off is no split brain
    here: the two others keep quorum, fence it and take over, and it stops its service meanwhile."""
    from hakit.failover import scenarios
    from hakit.failover.suite import FailoverSuite

    rec = tmp_path / "record"
    suite = FailoverSuite(notebook.load(lab3_params), "default", 1, dry_run=False, record_dir=str(rec))
    df = suite.run()
    suite.save()
    print(df[["scenario", "downtime_s", "failback_s", "served_after", "fenced", "ended", "problems"]].to_string(index=False))
    assert list(df["scenario"]) == list(scenarios.DEFAULT)
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    assert (df["served_before"] == "vm-node1").all() and (df["dual_vip_samples"] == 0).all()
    for name in ("node-crash", "gateway-loss", "planned-move", "corosync-kill", "split-brain", "apache-crash"):
        assert by.loc[name, "served_after"] in ("vm-node2", "vm-node3"), name
        assert by.loc[name, "ended"] == "back on vm-node1", name
    assert by.loc["ring0-loss", "downtime_s"] == 0 and by.loc["ring0-loss", "fenced"] == "-"
    # the isolated node is the one fenced, by the two that kept quorum
    assert by.loc["split-brain", "fenced"] == "vm-node1" and by.loc["split-brain", "downtime_s"] > 0
    assert by.loc["node-crash", "fenced"] == "vm-node1" and by.loc["corosync-kill", "fenced"] == "vm-node1"
    assert (rec / "failover.csv").is_file()
