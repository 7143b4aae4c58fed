"""Grow a running cluster 2 -> 3 and shrink it 3 -> 2, the client probe running throughout.

A two-node lab cluster is built (stages 1-6); `lab up` with the params that list a third node
boots only that node while the two run; `hakit run` with those params brings it in (stage 3
classes the new nodelist as a runtime change and starts the cluster on vm-node3 only; stage 4
adds its fence device and drops the two-node fence delay; the ping clone starts there). Then
`hakit node remove vm-node3` drains it, stops it and takes it out of the CIB and the nodelist
(two_node again, the fence delay back, its fence device gone). Each step is read on the nodes:
nothing restarted on vm-node1 and vm-node2 (daemon PIDs), `crm_verify -L` clean, quorum as
corosync-quorumtool reports it, fence devices for exactly the present nodes, and the client's
failed probes counted (goal 0). Every wait is on state.
"""

from __future__ import annotations

import re
import time

import pytest

import evidence

from hakit import membership, notebook
from hakit.failover import timeline
from hakit.failover.runner import settle
from hakit.failover.watch import HttpProbe
from hakit.lab import Lab
from hakit.params import load_params
from hakit.run import run as hakit_run
from hakit.stages import corosync, pipeline
from hakit.stages.driver import StageRun, run_stage

pytestmark = pytest.mark.lab

OLD = ("vm-node1", "vm-node2")
NEW = "vm-node3"
DAEMON_PIDS = "for u in corosync pacemaker pacemaker-controld; do systemctl show -p MainPID --value $u 2>/dev/null; done"
PIDS = "systemctl show -p MainPID --value corosync pacemaker"


@pytest.fixture(scope="module")
def grow_lab(start_lab, labg_params, tmp_path_factory):
    """The two-node cluster, built; yields (lab of 2, params files (2, 3), run folder root). Down at the end
    (with the three-node params, so vm-node3 goes too)."""
    two, three = labg_params
    lab = start_lab(two)
    p = lab.params
    hosts = notebook.connect_nodes(p)
    try:
        for st in pipeline.stages(p)[1:]:
            run_stage(st, hosts, dry_run=False)
        settle(hosts, p, timeout_s=120)
    finally:
        for h in hosts.values():
            h.close()
    yield lab, two, three, tmp_path_factory.mktemp("grow-runs")
    Lab(load_params(three), progress=print).down()


def _sh(lab: Lab, node: str, line: str) -> str:
    return lab.ssh(node, ["sh", "-c", line], check=True, timeout=120).stdout


def _quorum(lab: Lab, node: str) -> dict[str, str]:
    out = lab.ssh(node, ["corosync-quorumtool", "-s"], timeout=30).stdout
    return {k.strip(): v.strip() for k, v in re.findall(r"(?m)^(Expected votes|Total votes|Quorum|Flags|Nodes):(.*)$", out)}


def _fence_devices(lab: Lab, node: str) -> dict[str, str]:
    """fence device id -> its pcmk_delay_base ('' when unset), from the live CIB."""
    xml = _sh(lab, node, "cibadmin --query --scope resources")
    out = {}
    for m in re.finditer(r'<primitive[^>]*id="(fence-[^"]+)"[^>]*>(.*?)</primitive>', xml, re.S):
        d = re.search(r'name="pcmk_delay_base" value="([^"]*)"', m.group(2))
        out[m.group(1)] = d.group(1) if d else ""
    return out


def _verify_clean(lab: Lab, node: str) -> str:
    r = lab.ssh(node, ["crm_verify", "-L", "-V"], timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (r.returncode, r.stdout, r.stderr)
    return "clean"


def _count(samples) -> tuple[int, int, list]:
    return len(samples), sum(not s.ok for s in samples), [round(o.duration or -1, 2) for o in timeline.outages(samples)]


def test_grow_two_to_three_keeps_the_service(grow_lab) -> None:
    lab, _two, three, runs = grow_lab
    p3 = load_params(three)
    before = {n: _sh(lab, n, PIDS) for n in OLD}
    lab3 = Lab(p3, progress=print)
    t0 = time.monotonic()
    lab3.up()  # boots vm-node3 only: the two run on
    boot_s = time.monotonic() - t0
    assert {n: _sh(lab, n, PIDS) for n in OLD} == before
    hosts = notebook.connect_nodes(p3)
    try:
        with HttpProbe(str(p3.vip.address)) as probe:
            t1 = time.monotonic()
            # stages 0-2 first (packages, bonding, the authkey on vm-node3), so stage 3 can be shown as a plan
            hakit_run(str(three), stages="0-2", out_root=runs, html=False)
            run = StageRun(corosync.CorosyncStage(p3), hosts, dry_run=True)
            run.gather()
            plan = run.make_plan()
            notes = " ".join(plan.notes)
            print("\n".join([*plan.notes, *plan.program()]))
            assert "class: nodelist change, no outage" in notes and f"{NEW} joins the nodelist" in notes, notes
            assert "quorum.two_node 1 -> (unset)" in notes, notes
            prog = plan.program()
            assert not any(re.search(r"systemctl (stop|restart)", ln) for ln in prog), prog
            starts = [ln for ln in prog if "systemctl start" in ln]
            assert starts and all(ln.startswith(NEW) for ln in starts), starts
            hakit_run(str(three), stages="3-6", out_root=runs, html=False)
            st = settle(hosts, p3, timeout_s=120)
            grow_s = time.monotonic() - t1
        total, failed, outages = _count(probe.snapshot())
        print(f"\nFIGURES grow 2 -> 3: vm-node3 booted in {boot_s:.1f} s; `hakit run` + settled in {grow_s:.1f} s; "
              f"{total} probes, {failed} failed, outages {outages}")
        assert failed == 0, outages
        assert {n: _sh(lab, n, PIDS) for n in OLD} == before  # nothing restarted on the two that ran
        assert st.serving("vip") == "vm-node1"
        assert st.started_on("ping-gateway") == ["vm-node1", "vm-node2", NEW]
        q = _quorum(lab, "vm-node1")
        print("quorum after the grow:", q)
        assert q["Expected votes"] == "3" and q["Total votes"] == "3" and q["Quorum"].split()[0] == "2", q
        assert "2Node" not in q["Flags"] and "Quorate" in q["Flags"], q
        fence = _fence_devices(lab, "vm-node1")
        assert fence == {"fence-vm-node1": "", "fence-vm-node2": "", "fence-vm-node3": ""}, fence
        _verify_clean(lab, "vm-node1")
        assert _sh(lab3, NEW, "systemctl is-enabled apache2 || true").strip() == "disabled"
    finally:
        for h in hosts.values():
            h.close()


def test_shrink_three_to_two_keeps_the_service(grow_lab) -> None:
    lab, two, three, _runs = grow_lab
    p2, p3 = load_params(two), load_params(three)
    lab3 = Lab(p3, progress=print)
    lab3.up()
    hosts = notebook.connect_nodes(p3)
    try:
        settle(hosts, p3, timeout_s=120)
        assert set(_fence_devices(lab, "vm-node1")) == {f"fence-{n}" for n in (*OLD, NEW)}, "the grow test runs first"
        before = {n: _sh(lab, n, PIDS) for n in OLD}
        # Params that simply lost the node: stage 3 refuses, names the way, changes nothing.
        run = StageRun(corosync.CorosyncStage(p2), {n: hosts[n] for n in OLD}, dry_run=True)
        run.gather()
        blocked = " ".join(run.make_plan().blocked.values())
        assert f"{NEW} is in the nodelist the cluster runs with, but not in the params" in blocked, blocked
        assert f"hakit node remove {NEW}" in blocked
        # The dry run shows the plan and changes nothing.
        dry = membership.remove(p3, hosts, NEW, dry_run=True, progress=print)
        assert any("class: node removal, no outage" in n for n in dry.plan.notes), dry.plan.notes
        assert _sh(lab3, NEW, "systemctl is-active corosync pacemaker").split() == ["active", "active"]
        assert {n: _sh(lab, n, PIDS) for n in OLD} == before
        with HttpProbe(str(p3.vip.address)) as probe:
            t0 = time.monotonic()
            r = membership.remove(p3, hosts, NEW, dry_run=False, progress=print)
            st = settle({n: hosts[n] for n in OLD}, p2, timeout_s=120)
            shrink_s = time.monotonic() - t0
        total, failed, outages = _count(probe.snapshot())
        print(f"\nFIGURES shrink 3 -> 2: {r.seconds}, settled after {shrink_s:.1f} s; {total} probes, {failed} failed, "
              f"outages {outages}")
        assert failed == 0, outages
        assert {n: _sh(lab, n, PIDS) for n in OLD} == before  # nothing restarted on the two that stay
        assert st.serving("vip") == "vm-node1" and set(st.nodes) == set(OLD), st.nodes
        q = _quorum(lab, "vm-node1")
        print("quorum after the shrink:", q)
        assert q["Expected votes"] == "2" and q["Total votes"] == "2" and "2Node" in q["Flags"], q
        assert _sh(lab, "vm-node1", "crm_node -l").split()[1::3] == list(OLD)
        fence = _fence_devices(lab, "vm-node1")
        assert fence == {"fence-vm-node1": "5s", "fence-vm-node2": ""}, fence
        assert "fence-vm-node3-not-on-vm-node3" not in _sh(lab, "vm-node1", "cibadmin --query --scope constraints")
        _verify_clean(lab, "vm-node1")
        assert _sh(lab3, NEW, "systemctl is-active corosync pacemaker || true").split() == ["inactive", "inactive"]
        assert _sh(lab3, NEW, "systemctl is-enabled corosync pacemaker || true").split() == ["disabled", "disabled"]
        # The params without the node now match the cluster: stage 3 has nothing to do.
        run = StageRun(corosync.CorosyncStage(p2), {n: hosts[n] for n in OLD}, dry_run=True)
        run.gather()
        after = run.make_plan()
        assert after.empty and not after.blocked, after.program()
        # The lab drops the node while the two run on (nothing of it left), the service untouched.
        lab3.drop(NEW)
        nn = lab3.net.node(NEW)
        left = [x for x in lab3.leftovers() if x.split()[-1] in {nn.netns, *(ln.host_end for ln in nn.links)}
                or f"/{NEW}/" in x or x.endswith(f"/{NEW}/root")]
        assert not lab3._node_running(NEW) and not left, left
        assert evidence.wait_until("the service answers", lambda: settle({n: hosts[n] for n in OLD}, p2, timeout_s=30))
    finally:
        for h in hosts.values():
            h.close()
