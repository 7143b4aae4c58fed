"""The all-VM lab (params/lab-vm.yaml): every node a qemu VM with Debian's kernel and four NICs.

What containers cannot show, on nodes that make real kernel bonds whatever this machine's kernel:
stage 01 failing on one node while another applied (the failed node puts itself back, the error
names the node that did change, the next run repairs it); then stages 00-06 with fencing through
`hakit run`, and node-crash, apache-crash and the loss of a bond's active slave judged by the
failover runner. A fresh lab per module; every wait is on state with a deadline.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import evidence

from hakit import notebook
from hakit.facts.bonding import parse_proc_bonding
from hakit.failover.suite import FailoverSuite
from hakit.lab import Lab
from hakit.remote import Host
from hakit.run import run as hakit_run
from hakit.stages import bonding as stage
from hakit.stages import driver

# allvm: the whole module runs in `make test-allvm`, not in `make test`. Under TCG on two shared cores its
# stages took 173 s alone but 22 min beside the other worker's labs, where stage 05 once failed (vm-node2
# not online), and it was the suite's long tail (README, "The all-VM lab").
pytestmark = [pytest.mark.lab, pytest.mark.vm, pytest.mark.allvm]

NODES = ("vm-node1", "vm-node2")
BONDS = (("bond0", ("eth0", "eth1")), ("bond1", ("eth2", "eth3")))
# The fault: ifupdown refuses to bring up the bonds on vm-node2 only (its own checks, `--no-act`, pass).
SHIM = "/usr/local/sbin/ifup"
SHIM_TEXT = """#!/bin/sh
# test fault (tests/lab/test_vm_cluster.py): refuse to bring the bonds up; checks (--no-act) pass through
case " $* " in *" --no-act "*) exec /usr/sbin/ifup "$@" ;; esac
for a in "$@"; do case "$a" in bond*) echo "ifup: test fault: refusing $a" >&2; exit 1 ;; esac; done
exec /usr/sbin/ifup "$@"
"""


def sh(lab: Lab, node: str, line: str, timeout: float = 60) -> str:
    """A shell line on a node by plain ssh (not the library under test); must succeed."""
    r = lab.ssh(node, ["sh", "-c", line], timeout=timeout)
    assert r.returncode == 0, f"{node}: {line}: exit {r.returncode}: {r.stderr}"
    return r.stdout


def network_state(lab: Lab, node: str) -> str:
    """What stage 01 may change on a node: its interfaces files and the IPv4 addresses per link."""
    return sh(lab, node, "cd /etc/network && find interfaces interfaces.d -type f -exec sha256sum {} + | sort; "
                         "ip -4 -br addr show | sort")


def kernel_bonds(lab: Lab, node: str) -> dict[str, object]:
    return {b: parse_proc_bonding(sh(lab, node, f"cat /proc/net/bonding/{b}"), b) for b, _ in BONDS}


@pytest.fixture(scope="module")
def vmlab(labv_params: Path, start_vm_lab) -> Iterator[Lab]:
    lab = start_vm_lab(labv_params)
    yield lab
    lab.down()


@pytest.fixture
def hosts(vmlab: Lab) -> Iterator[dict[str, Host]]:
    vmlab.up()
    hs = notebook.connect_nodes(vmlab.params)
    yield hs
    for h in hs.values():
        h.close()


def test_stage1_failing_on_one_node_reverts_it_and_names_the_node_that_changed(vmlab: Lab, hosts) -> None:
    params = vmlab.params
    for n in NODES:
        assert sh(vmlab, n, "ls /proc/net/bonding 2>/dev/null || true").strip() == "", f"{n} has bonds already"
    before = {n: network_state(vmlab, n) for n in NODES}
    sh(vmlab, "vm-node2", f"cat > {SHIM} <<'EOF'\n{SHIM_TEXT}EOF\nchmod 755 {SHIM}")
    try:
        s = stage.BondingStage(params, revert_after_s=stage.MIN_REVERT_S)
        plan = s.plan(s.gather(hosts))
        assert {o.node for o in plan.ops if o.mutates} == set(NODES)
        t0 = time.monotonic()
        with pytest.raises(driver.StageFailed) as e:
            driver.apply(plan, hosts, dry_run=False)  # as `hakit run` does: the nodes side by side
        took = time.monotonic() - t0
        err = e.value
        print(f"\nFIGURES stage 01 with vm-node2 failing: the error after {took:.1f} s: {err}")
        assert err.node == "vm-node2", str(err)
        # The node that applied is named, with what was done there; the failed one is not among the changed.
        assert [c for c in err.changed if c.startswith("vm-node1: safe apply bond0 bond1")], err.changed
        assert not [c for c in err.changed if c.startswith("vm-node2:")], err.changed
        # and the message says both: what failed where (here the node cut itself off, and its timer put
        # it back), and what was already carried out elsewhere.
        assert "on vm-node2 failed" in str(err) and ("ifup of the bonds failed" in str(err) or "revert timer" in str(err))
        assert "already carried out:\n  vm-node1: safe apply bond0 bond1" in str(err), str(err)
        # vm-node2: back as it was (files and addresses), reachable, no bond left, the timer gone.
        evidence.wait_until("vm-node2 back as before the stage", lambda: network_state(vmlab, "vm-node2") == before["vm-node2"], 60)
        assert sh(vmlab, "vm-node2", "ls /proc/net/bonding 2>/dev/null || true").strip() == ""
        assert sh(vmlab, "vm-node2", f"systemctl is-active {stage.REVERT_UNIT}.timer || true").strip() == "inactive"
        # vm-node1 kept its new bonds, as the error says.
        assert network_state(vmlab, "vm-node1") != before["vm-node1"]
        assert all(b.is_up and b.active_slave_up for b in kernel_bonds(vmlab, "vm-node1").values())
    finally:
        sh(vmlab, "vm-node2", f"rm -f {SHIM}")
    for h in hosts.values():
        h.close()
    hosts.update(notebook.connect_nodes(params))
    again = s.plan(s.gather(hosts))
    assert {o.node for o in again.ops if o.mutates} == {"vm-node2"}, str(again)
    res = driver.apply(again, hosts, dry_run=False)
    assert (res.outcome("vm-node1").outcome, res.outcome("vm-node2").outcome) == ("unchanged", "changed")
    assert stage.verify(hosts, params).ok


@pytest.fixture(scope="module")
def deployed(vmlab: Lab, labv_params: Path, tmp_path_factory) -> tuple[Lab, Path]:
    vmlab.up()
    t0 = time.monotonic()
    folder = hakit_run(str(labv_params), stages="all", out_root=tmp_path_factory.mktemp("runs-vm"), html=False)
    print(f"\nFIGURES all-VM lab: stages 00-06 in {time.monotonic() - t0:.1f} s")
    return vmlab, folder


def test_stages_00_to_06_build_a_fenced_cluster_on_kernel_bonds(deployed) -> None:
    lab, folder = deployed
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["ok"], summary.get("error")
    assert summary["secret_scan"]["clean"]
    print("FIGURES all-VM stages: " + ", ".join(f"{s['stage']} {s['status']} {s['duration_s']} s"
                                               for s in summary["stages"]))
    assert summary["stages"][0]["status"] == "unchanged"  # the ready VM image has the packages
    assert [s["status"] for s in summary["stages"][2:]] == ["changed"] * 5
    for n in NODES:
        bonds = kernel_bonds(lab, n)
        for b, slaves in BONDS:
            st = bonds[b]
            assert st.is_active_backup and st.is_up and st.active_slave == slaves[0], (n, b)
            assert [(s.name, s.mii_status) for s in st.slaves] == [(slaves[0], "up"), (slaves[1], "up")]
    links = sh(lab, "vm-node1", "corosync-cfgtool -n")
    me, peer = lab.params.node("vm-node1"), lab.params.node("vm-node2")
    for k, (a, b) in enumerate(((me.private_ip, peer.private_ip), (me.public_ip, peer.public_ip))):
        assert f"LINK: {k} udp ({a}->{b}) enabled connected" in links, links  # both rings, on the bonds' addresses
    crm = sh(lab, "vm-node1", "crm_mon -1")
    assert "fence-vm-node1" in crm and "fence-vm-node2" in crm
    assert lab.ssh("vm-node1", ["crm_verify", "-L"]).returncode == 0
    # pacemaker.op_timeout 60 (params/lab-vm.yaml): the op default, and Apache's monitor raised to it
    assert 'name="timeout" value="60s"' in sh(lab, "vm-node1", "cibadmin --query --scope op_defaults")
    ops = ET.fromstring(sh(lab, "vm-node1", "cibadmin --query --scope resources"))
    assert {op.get("name"): op.get("timeout") for op in ops.iterfind(".//primitive[@id='httpd']/operations/op")} == {
        "start": "60s", "stop": "60s", "monitor": "60s"}


# Under TCG this suite passed 2 of 5 runs here at first: once vip's stop and a fence monitor ran into their
# 20 s timeouts beside another worker's labs (pacemaker fenced vm-node2; since then op_timeout 60), once alone
# Apache took 49 s to move and the slave pull cost 3 gaps (4.76 s), once beside two other labs every trial
# starved. Run alone in sessions 10 and 11: 5 of 8 (2 of 2 after the deadline change); the slave-loss gaps
# were probes that passed the client's 0.3 s deadline on a slow VM, and VM labs now probe with 1 s (README,
# "The all-VM lab").
def test_node_crash_apache_crash_and_slave_loss_on_kernel_bonds(deployed, tmp_path: Path) -> None:
    lab, _ = deployed
    rec = tmp_path / "record"
    suite = FailoverSuite(lab.params, "slave-loss,apache-crash,node-crash", 1, dry_run=False, record_dir=str(rec))
    df = suite.run()
    suite.save()
    cols = ["scenario", "downtime_s", "detect_s", "recover_s", "failback_s", "served_after", "fenced", "ended",
            "httpd_failcount", "evidence", "problems"]
    print("\nFIGURES all-VM failover (seed profile, fencing on):\n" + df[cols].to_string(index=False))
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    assert by.loc["slave-loss", "served_after"] == "vm-node1" and by.loc["slave-loss", "fenced"] == "-"
    assert by.loc["apache-crash", "served_after"] == "vm-node2"
    # one failure; a second count only from httpd's recurring monitor reporting again before the slow stop (judge)
    assert by.loc["apache-crash", "httpd_failcount"] == 1 or "recurring monitor" in by.loc["apache-crash", "evidence"]
    assert by.loc["node-crash", "served_after"] == "vm-node2" and by.loc["node-crash", "fenced"] == "vm-node1"
    assert (df["ended"] != "").all() and (df["dual_vip_samples"] == 0).all()
    # The trial's record keeps the guest kernel's own account of the pull: the driver saw eth2's carrier go
    # and made eth3 the active slave (a container has no kernel log, so only VM nodes get this section).
    kernel = (rec / "journal" / "slave-loss-1" / "vm-node1.log").read_text().partition(driver.KERNEL_HEADER + "\n")[2]
    assert "bond1: (slave eth2): link status definitely down" in kernel, kernel
    assert "bond1: (slave eth3): making interface the new active one" in kernel, kernel
    sent = pd.read_csv(rec / "journal" / "slave-loss-1" / "probes.csv")  # every probe, on the journals' clock too
    assert (~sent["ok"]).sum() >= by.loc["slave-loss", "failed_probes"] and sent["wall"].str.endswith("+00:00").all()
    # After the trials: the bonds as stage 01 left them on both nodes (the pulled cable is back, and the
    # primary slave takes over again after updelay; vm-node1 was power-cycled and brought them up at boot).
    for n in NODES:
        evidence.wait_until(f"{n}: every bond on its primary slave", lambda n=n: all(
            b.active_slave == slaves[0] and b.is_up for (_, slaves), b in zip(BONDS, kernel_bonds(lab, n).values())), 30)
    # vm-node1 booted again after its fence: ifupdown brought its bonds up, the lab's first-address unit
    # left the slaves to it.
    log = sh(lab, "vm-node1", "journalctl -b -u hakit-lab-node --no-pager")
    assert "eth0 is configured by ifupdown; left to it" in log, log
