"""Node by node on a running cluster (hakit.rolling), the client probe running throughout.

A rolling restart of corosync and pacemaker on both nodes: every daemon restarted, nobody fenced,
the service back on its node, and the client's outages counted (the passive node costs none; the
active one one move away and one back). A pacemaker restart under maintenance-mode: Apache keeps
its PIDs, no probe fails. A node that does not rejoin stops the rollout: it stays in standby with
the service elsewhere, the node before it is done, and the error says so. Waits are on state.
"""

from __future__ import annotations

import pytest

import evidence

from hakit import notebook, rolling
from hakit.failover import timeline
from hakit.failover.runner import settle
from hakit.failover.watch import HttpProbe
from hakit.operations import Operations
from hakit.stages import cibstage

pytestmark = pytest.mark.lab

NODES = ("vm-node1", "vm-node2")
DAEMON_PIDS = "for u in corosync pacemaker; do systemctl show -p MainPID --value $u; done"
APACHE_PIDS = "pgrep -x apache2 | sort"
# The fault: pacemaker.service "starts" but runs no pacemakerd, so the node never rejoins.
DROPIN_DIR = "/run/systemd/system/pacemaker.service.d"
DROPIN = "[Service]\nExecStart=\nExecStart=/bin/sleep infinity\n"


@pytest.fixture
def healthy2(cluster2):
    lab, _ = cluster2
    hosts = notebook.connect_nodes(lab.params)
    settle(hosts, lab.params, timeout_s=120)
    yield lab, hosts
    for h in hosts.values():
        h.close()


def _pids(lab, node: str, line: str) -> str:
    return lab.ssh(node, ["sh", "-c", line], check=True).stdout


def _fenced(lab) -> str:
    return lab.ssh("vm-node2", ["stonith_admin", "--history", "*", "--output-as=xml"], check=True).stdout.count("<fence_event")


def test_a_rolling_restart_restarts_every_node_and_keeps_the_service(healthy2) -> None:
    lab, hosts = healthy2
    params = lab.params
    before = {n: _pids(lab, n, DAEMON_PIDS) for n in NODES}
    fences = _fenced(lab)
    dry = rolling.rollout(params, hosts, "restart", dry_run=True)
    assert dry.order == ["vm-node2", "vm-node1"]
    assert {n: _pids(lab, n, DAEMON_PIDS) for n in NODES} == before  # the dry run restarted nothing
    with HttpProbe(str(params.vip.address)) as probe:
        r = rolling.rollout(params, hosts, "restart", dry_run=False, progress=print)
    samples = probe.snapshot()
    print(r.frame().to_string(index=False))
    assert [s.outcome for s in r.steps] == ["done", "done"]
    for n in NODES:
        old, new = before[n].split(), _pids(lab, n, DAEMON_PIDS).split()
        assert all(a != b for a, b in zip(old, new)) and "0" not in new, (n, old, new)
    assert _fenced(lab) == fences  # clean leaves: nobody was fenced
    st = settle(hosts, params, timeout_s=60)
    assert st.serving("vip") == "vm-node1" and not any(s.standby for s in st.nodes.values())
    out = timeline.outages(samples)
    print(f"\nFIGURES rolling restart, 2 nodes: {len(samples)} probes, {sum(not s.ok for s in samples)} failed, "
          f"outages {[round(o.duration or -1, 2) for o in out]}; per node: "
          + ", ".join(f"{s.node} standby {s.standby_s} s, work {s.work_s} s, rejoin {s.rejoin_s} s, "
                      f"healthy {s.healthy_s} s" for s in r.steps))
    # The passive node went first and cost the client nothing; the active node's standby moved the
    # service once, its online brought it back: at most those two gaps.
    assert len(out) <= 2, out


def test_a_pacemaker_restart_under_maintenance_mode_moves_nothing(healthy2) -> None:
    lab, hosts = healthy2
    params = lab.params
    apache = _pids(lab, "vm-node1", APACHE_PIDS)
    pm = _pids(lab, "vm-node1", DAEMON_PIDS).split()[1]
    with HttpProbe(str(params.vip.address)) as probe:
        rolling.maintenance_restart(params, hosts, "vm-node1", dry_run=False, progress=print)
    samples = probe.snapshot()
    failed = [s for s in samples if not s.ok]
    print(f"\nFIGURES pacemaker restart under maintenance-mode: {len(samples)} probes, {len(failed)} failed")
    after = _pids(lab, "vm-node1", APACHE_PIDS)
    if failed or after != apache:  # what the nodes did meanwhile, for the reader of the failure
        for n in NODES:
            print(lab.ssh(n, ["journalctl", "--since", "-2min", "--no-pager", "-o", "short-precise",
                              "-t", "pacemaker-controld", "-t", "IPaddr2", "-t", "apache",
                              "-t", "pacemaker-schedulerd", "-t", "pacemakerd"]).stdout[-8000:])
    assert _pids(lab, "vm-node1", DAEMON_PIDS).split()[1] != pm  # pacemaker did restart
    assert after == apache  # Apache never did
    assert len(samples) > 25 and failed == []


def test_a_node_that_does_not_rejoin_stops_the_rollout_in_standby(healthy2) -> None:
    lab, hosts = healthy2
    params = lab.params
    before = {n: _pids(lab, n, DAEMON_PIDS) for n in NODES}
    lab.ssh("vm-node1", ["sh", "-c", f"mkdir -p {DROPIN_DIR} && printf '{DROPIN}' > {DROPIN_DIR}/test-fault.conf "
                         "&& systemctl daemon-reload"], check=True)
    try:
        with pytest.raises(rolling.RolloutFailed) as e:
            rolling.rollout(params, hosts, "restart", dry_run=False, rejoin_timeout_s=30, progress=print)
        err = e.value
        assert (err.node, err.phase, err.done, err.untouched) == ("vm-node1", "rejoin", ["vm-node2"], [])
        assert "vm-node1 back in the membership: not within 30 s" in str(err) and "left in standby" in str(err)
        # vm-node2 was done (restarted), vm-node1 is in standby and the service runs on vm-node2.
        assert _pids(lab, "vm-node2", DAEMON_PIDS) != before["vm-node2"]
        s = cibstage.status(hosts["vm-node2"])
        assert s.serving("vip") == "vm-node2" and s.serving("httpd") == "vm-node2"
        cib = lab.ssh("vm-node2", ["crm_attribute", "--node", "vm-node1", "--name", "standby", "--query"], check=True)
        assert "value=on" in cib.stdout
    finally:
        lab.ssh("vm-node1", ["sh", "-c", f"rm -f {DROPIN_DIR}/test-fault.conf && systemctl daemon-reload && "
                             "systemctl restart pacemaker"], check=False)
        evidence.wait_until("vm-node1 a member again", lambda: (n := cibstage.status(hosts["vm-node2"]).nodes.get(
            "vm-node1")) is not None and n.online and not n.pending, timeout=90)
        Operations(params, hosts, dry_run=False).online("vm-node1")
        settle(hosts, params, timeout_s=120)
