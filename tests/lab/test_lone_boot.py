"""A two-node cluster whose nodes both went down, and one comes back alone: what `two_node`'s
`wait_for_all` protects, and what `no-quorum-policy=ignore` gives away.

Corosync's `two_node: 1` implies `wait_for_all`: a node that boots alone is not quorate until it
has seen its peer once. Pacemaker acts on that only if `no-quorum-policy` lets quorum matter. Proven
on the built lab (fencing on): both nodes lose power, vm-node1 alone is powered on, and

- under `ignore` (the article's, and the lab's params) the lone node, not quorate, fences the peer
  it cannot see (it is off already) and starts the service by itself;
- under `stop` it elects itself DC, finishes its transition (S_IDLE) without quorum, fences nobody
  and starts nothing, until the peer boots and quorum forms; then the service starts.

The module sets `stop` with crm_attribute for its second half and puts `ignore` back (stage 04's
value), so the cluster ends as the build made it. Every wait is on state.
"""

from __future__ import annotations

import time

import pytest

import evidence

from hakit import notebook
from hakit.facts.corosync import parse_quorumtool_status
from hakit.facts.pacemaker import ClusterStatus, parse_crm_mon, parse_fence_history
from hakit.failover.runner import settle
from hakit.lab import Lab

pytestmark = pytest.mark.lab

ALONE, PEER = "vm-node1", "vm-node2"


def _status(lab: Lab) -> ClusterStatus | None:
    r = lab.ssh(ALONE, ["crm_mon", "-1", "--output-as=xml"], timeout=20)
    return parse_crm_mon(r.stdout) if r.returncode == 0 else None


def _wait(what: str, check, timeout: float = 150.0):
    return evidence.wait_until(what, check, timeout, every=0.5)


def _fenced(lab: Lab, since: float) -> list:
    out = lab.ssh(ALONE, ["stonith_admin", "--history", PEER, "--verbose", "--output-as=xml"], check=True).stdout
    return [e for e in parse_fence_history(out) if e.target == PEER and e.ok and (e.completed or 0) >= since]


def _idle_dc(lab: Lab) -> bool:
    """The lone node is DC and its controller is idle: it has decided and done all it will do."""
    st = _status(lab)
    if st is None or st.dc != ALONE:
        return False
    return "S_IDLE" in lab.ssh(ALONE, ["crmadmin", "--status", ALONE], timeout=20).stdout


def _both_down_then_alone(lab: Lab) -> float:
    lab.power_cut(PEER)
    lab.power_cut(ALONE)
    t = time.time()
    lab.power_on(ALONE)
    return t


def _heal(lab: Lab, policy: str) -> None:
    for n in (ALONE, PEER):
        lab.power_on(n)
    lab.ssh(ALONE, ["crm_attribute", "--type", "crm_config", "--name", "no-quorum-policy", "--update", policy],
            check=True)
    hosts = notebook.connect_nodes(lab.params)
    try:
        settle(hosts, lab.params, timeout_s=180)
    finally:
        for h in hosts.values():
            h.close()


def test_a_node_booting_alone(cluster2) -> None:
    lab, _ = cluster2
    params = lab.params
    assert params.pacemaker.no_quorum_policy == "ignore" and params.pacemaker.stonith_enabled
    q = parse_quorumtool_status(lab.ssh(ALONE, ["corosync-quorumtool", "-s"], check=True).stdout)
    assert q.two_node and q.wait_for_all, q.flags  # two_node, and the wait_for_all it implies

    # ignore: the lone node fences its unseen peer and serves alone
    try:
        t0 = _both_down_then_alone(lab)
        st = _wait("the lone node runs the service", lambda: (s := _status(lab)) and s.where("vip") == ALONE
                   and s.where("httpd") == ALONE and s)
        ignore_s = time.time() - t0
        assert not st.quorate, "wait_for_all: a node that has not seen its peer since boot is not quorate"
        assert _fenced(lab, t0 - 1), "the lone node started the service without fencing its peer first"
        r = lab.ssh(ALONE, ["corosync-quorumtool", "-s"])
        q = parse_quorumtool_status(r.stdout)
        assert not q.quorate and q.wait_for_all and r.returncode == 2, (r.returncode, q)  # 2: not quorate
    finally:
        _heal(lab, "ignore")

    # stop: the lone node waits for its peer
    lab.ssh(ALONE, ["crm_attribute", "--type", "crm_config", "--name", "no-quorum-policy", "--update", "stop"],
            check=True)
    try:
        t1 = _both_down_then_alone(lab)
        _wait("the lone node is DC and idle", lambda: _idle_dc(lab))
        decided_s = time.time() - t1
        st = _status(lab)
        assert not st.quorate and st.no_quorum_policy == "stop"
        assert not st.running_on("vip") and not st.running_on("httpd"), st.resources
        assert not _fenced(lab, t1 - 1), "without quorum nobody may be fenced"
        t2 = time.time()
        lab.power_on(PEER)
        _wait("quorum and the service on vm-node1",
              lambda: (s := _status(lab)) and s.quorate and s.where("vip") == ALONE and s.where("httpd") == ALONE)
        print(f"\nFIGURES lone boot: under ignore it served alone {ignore_s:.1f} s after power-on, not quorate, "
              f"after fencing {PEER}; under stop it was idle without quorum {decided_s:.1f} s after power-on, "
              f"nothing started, nobody fenced, and served {time.time() - t2:.1f} s after {PEER} was powered on")
    finally:
        _heal(lab, "ignore")
