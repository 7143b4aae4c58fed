"""Stage 1 (bonding) on a real kernel: the VM lab node (qemu, its own Debian kernel, eth0..eth3).

One VM boots once for this file (params/lab-bonding.yaml with the test lab's id and
subnets); the tests run in order: the node as the lab promises it, the stage applied
for real, slave failover timed, a broken config reverted by the runbook's safe apply,
and a clean `lab down`. (A VM node's power cut and its bonds at the next boot are proven in
tests/lab/test_vm_cluster.py, where fencing power-cycles vm-node1.)
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest

from hakit import notebook
from hakit.facts.bonding import parse_proc_bonding
from hakit.lab import Lab
from hakit.lab import node as labnode
from hakit.lab.bondwatch import measure_switch
from hakit.lab.vm import find_qemus, mac_address
from hakit.params import Params
from hakit.remote import Host
from hakit.stages import bonding as stage
from hakit.stages import driver

pytestmark = [pytest.mark.lab, pytest.mark.vm]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_bonding.ipynb"
VM = "vm-node1"
CT = "vm-node2"
FIGURES: dict[str, object] = {}


@pytest.fixture
def hosts(labvm: Lab) -> Iterator[dict[str, Host]]:
    hs = notebook.connect_nodes(labvm.params)
    yield hs
    for h in hs.values():
        h.close()


def sh(lab: Lab, node: str, line: str, timeout: float = 60) -> str:
    """A shell line on a node by plain ssh (not through the library under test); must succeed."""
    r = lab.ssh(node, ["sh", "-c", line], timeout=timeout)
    assert r.returncode == 0, f"{line}: exit {r.returncode}: {r.stderr}"
    return r.stdout


def ping(lab: Lab, address: str, count: int = 3) -> bool:
    """Ping from the peer node (the container), as the cluster would reach the VM."""
    r = lab.ssh(CT, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", address], timeout=30)
    return r.returncode == 0


def proc_bond(lab: Lab, name: str):
    return parse_proc_bonding(sh(lab, VM, f"cat /proc/net/bonding/{name}"), name)


# ------------------------------------------------------------------ the node


def test_vm_node_is_a_real_kernel_with_four_nics_and_a_pinned_host_key(labvm: Lab) -> None:
    st = {s["name"]: s for s in labvm.status_dict()["nodes"]}
    assert st[VM]["kind"] == "vm" and st[VM]["state"] == "running" and st[CT]["kind"] == "container"
    assert st[VM]["system_state"] in ("running", "degraded")
    pid = labvm._node_state(VM)["qemu_pid"]
    argv = labnode.cmdline(pid)
    assert argv[0].endswith("qemu-system-x86_64") and f"guest={labvm.machine(VM)}" in argv
    assert "tcg,tb-size=256" in argv and "-nodefaults" in argv
    FIGURES["qemu PSS MiB"], FIGURES["qemu RSS MiB"] = st[VM]["memory_mib"], st[VM]["memory_rss_mib"]
    # Its own kernel, with a bonding driver (whatever this machine's kernel has).
    assert sh(labvm, VM, "uname -r").strip() != os.uname().release
    sh(labvm, VM, "modprobe -n bonding")
    # The article's NIC names, in order, with the MACs the lab gave them.
    links = json.loads(sh(labvm, VM, "ip -j link show"))
    macs = {ln["ifname"]: ln["address"] for ln in links if ln["ifname"].startswith("eth")}
    assert macs == {f"eth{k}": mac_address(labvm.cfg.id, VM, f"eth{k}") for k in range(4)}
    # The host key is pinned: the node's own key is the one in known_hosts, under its name and both addresses.
    node_key = sh(labvm, VM, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    n = labvm.params.node(VM)
    pinned = [ln.split() for ln in labvm.known_hosts.read_text().splitlines() if ln.startswith(f"{VM},")]
    assert pinned == [[f"{VM},{n.public_ip},{n.private_ip}", *node_key]]
    assert sh(labvm, VM, "hostname").strip() == VM
    # A wrong pin is refused before anything is sent.
    bad = labvm.known_hosts.with_name("known_hosts.wrong")
    other_key = sh(labvm, CT, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    bad.write_text(" ".join([str(n.public_ip), *other_key]) + "\n")
    argv = [a.replace(str(labvm.known_hosts), str(bad)) for a in labvm.ssh_argv(VM)] + ["true"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    bad.unlink()
    assert r.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr


# ------------------------------------------------------------------ stage 1 for real


def test_stage1_applies_bonds_verifies_and_a_second_run_changes_nothing(labvm: Lab, hosts) -> None:
    params: Params = labvm.params
    s = stage.BondingStage(params, revert_after_s=60)
    facts = s.gather(hosts)
    # The container's plain links can be bonded by no kernel; its driver fact is the host kernel's, not asserted.
    assert facts[VM].driver and facts[CT].plain_links(stage.bond_names(params), stage.slave_names(params))
    plan = s.plan(facts)
    assert {o.node for o in plan.ops if o.mutates} == {VM} and CT in plan.not_applicable
    assert [type(o).__name__ for o in plan.ops_for(VM)] == ["ValidateInterfaces", "SafeApplyBonds"]
    t0 = time.monotonic()
    result = driver.apply(plan, hosts, dry_run=False)
    FIGURES["stage 1 apply s"] = round(time.monotonic() - t0, 1)
    assert result.outcome(VM).outcome == "changed", result.outcome(VM).detail
    assert "revert timer cancelled" in result.outcome(VM).detail
    assert result.outcome(CT).outcome == "not applied"
    assert result.outcome(CT).detail.startswith(stage.NO_NICS), result.outcome(CT).detail
    v = stage.verify(hosts, params)
    assert v.ok, str(v)
    # Independently: the kernel's own view, and the addresses on the bonds, none left on a slave.
    for bond, slaves in (("bond0", ("eth0", "eth1")), ("bond1", ("eth2", "eth3"))):
        b = proc_bond(labvm, bond)
        assert b.is_active_backup and b.is_up and b.active_slave == slaves[0] == b.primary_slave
        assert (b.miimon_ms, b.updelay_ms, b.downdelay_ms) == (100, 200, 200)
        assert [(s.name, s.mii_status) for s in b.slaves] == [(slaves[0], "up"), (slaves[1], "up")]
    addrs = {a["ifname"]: [i["local"] for i in a["addr_info"] if i["family"] == "inet"]
             for a in json.loads(sh(labvm, VM, "ip -j addr show"))}  # fmt: skip
    n = params.node(VM)
    assert addrs["bond0"] == [str(n.private_ip)] and addrs["bond1"] == [str(n.public_ip)]
    assert all(addrs[f"eth{k}"] == [] for k in range(4))
    assert f"default via {params.networks.public.gateway} dev bond1" in sh(labvm, VM, "ip route show default")
    assert ping(labvm, str(n.private_ip)) and ping(labvm, str(n.public_ip))
    assert sh(labvm, VM, "systemctl is-active hakit-bonding-revert.timer || true").strip() == "inactive"

    before = sh(labvm, VM, "sha256sum /etc/network/interfaces.d/*; ip -br addr")
    again = s.plan(s.gather(hosts))
    assert again.empty and VM in again.no_change and not again.ops_for(VM), str(again)
    r2 = driver.apply(again, hosts, dry_run=False)
    assert r2.outcome(VM).outcome == "unchanged" and not r2.changed
    assert sh(labvm, VM, "sha256sum /etc/network/interfaces.d/*; ip -br addr") == before


def test_pulling_the_active_slaves_cable_switches_the_bond_and_the_node_stays_reachable(labvm: Lab, hosts) -> None:
    params = labvm.params
    n = params.node(VM)
    failover, failback = [], []
    for _ in range(3):
        out = measure_switch(labvm, VM, "bond1", "eth2", plug=False)
        assert (out.before, out.after) == ("eth2", "eth3")
        failover.append(out.switch_ms)
        b = proc_bond(labvm, "bond1")  # ssh runs over bond1: the node is reachable through the backup
        assert b.active_slave == "eth3" and b.slave("eth2").mii_status == "down" and b.is_up
        assert ping(labvm, str(n.public_ip)) and ping(labvm, str(n.private_ip))
        assert stage.verify(hosts, params).failed[0].check == "bond1 slaves eth2 and eth3 both up"
        back = measure_switch(labvm, VM, "bond1", "eth2", plug=True)
        assert (back.before, back.after) == ("eth3", "eth2")  # the primary takes over again after updelay
        failback.append(back.switch_ms)
    FIGURES["failover ms (all)"], FIGURES["failback ms (all)"] = failover, failback
    FIGURES["failover ms median"] = statistics.median(failover)
    FIGURES["failback ms median"] = statistics.median(failback)
    # miimon 100, downdelay 200, updelay 200: the driver waits out the delay before it switches, so a
    # faster switch would mean the delays were not applied. How much slower it is depends on the emulated
    # CPU and the machine's load: printed (FIGURES), not asserted.
    assert statistics.median(failover) >= 100, failover
    assert statistics.median(failback) >= 150, failback
    assert stage.verify(hosts, params).ok


def test_broken_bond_config_is_reverted_by_the_runbooks_safe_apply(labvm: Lab, labvm_params: Path, tmp_path: Path) -> None:
    """Crossed cabling in the params (eth1 and eth2 swapped): both active slaves end up on the private
    network, the public address (SSH) is cut off, the revert timer puts the working bonds back."""
    broken = tmp_path / "broken.yaml"
    text = labvm_params.read_text()
    assert text.count("slaves: [eth0, eth1]") == 1 and text.count("slaves: [eth2, eth3]") == 1
    broken.write_text(text.replace("slaves: [eth0, eth1]", "slaves: [eth0, eth2]").replace("slaves: [eth2, eth3]", "slaves: [eth1, eth3]"))
    good_files = sh(labvm, VM, "sha256sum /etc/network/interfaces.d/*")
    out = tmp_path / "01_bonding-broken.ipynb"
    t0 = time.monotonic()
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(
            str(NOTEBOOK), str(out), cwd=str(ROOT),
            parameters=dict(params_file=str(broken), dry_run=False, revert_after_s=stage.MIN_REVERT_S),
        )  # fmt: skip
    FIGURES["broken apply to runbook done s"] = round(time.monotonic() - t0, 1)
    cells = nbformat.read(out, as_version=4).cells
    shown = "".join(json.dumps(o) for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    # The runbook says both: the apply failed, and the node put itself back.
    assert "failed" in shown and "no SSH session within 20 s after applying" in shown
    assert "the revert timer fired after 20 s and restored the old files and addresses" in shown
    assert "bond0 over eth0+eth1, bond1 over eth2+eth3" in shown
    back = re.search(r"node reachable again over SSH (\d+) s after the apply", shown)
    assert back and stage.MIN_REVERT_S < int(back.group(1)) < stage.MIN_REVERT_S + stage.REVERT_GRACE_S
    FIGURES["auto-revert: apply to reachable again s"] = int(back.group(1))
    assert "StageFailed" in shown  # the notebook stops loudly at the apply: the broken bonds did not verify
    # Reachable again, the working config back, the revert on record in the node's journal.
    n = labvm.params.node(VM)
    assert ping(labvm, str(n.public_ip))
    assert sh(labvm, VM, "sha256sum /etc/network/interfaces.d/*") == good_files
    hs = notebook.connect_nodes(labvm.params)
    try:
        assert stage.verify(hs, labvm.params).ok
    finally:
        for h in hs.values():
            h.close()
    journal = sh(labvm, VM, "journalctl -b -t hakit-bonding --no-pager -o cat")
    assert "revert: restoring the network files saved before the last apply" in journal and "revert: done" in journal
    fired = float(sh(labvm, VM, f"cat {stage.WORK_DIR}/{stage.REVERTED_FILE}").strip())
    assert fired > time.time() - 300


def test_lab_down_leaves_no_qemu_tap_or_socket(labvm: Lab) -> None:
    machine, lid = labvm.machine(VM), labvm.cfg.id
    sock = labvm.vm_paths(VM).qmp
    assert sock.exists() and find_qemus(machine)
    labvm.down()
    procs = [p for p in os.listdir("/proc") if p.isdigit() and labnode.pid_alive(int(p))
             and f"guest={machine}" in labnode.cmdline(int(p))]  # fmt: skip
    assert procs == []
    names = [ln.split(":")[1].strip() for ln in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()]
    assert [x for x in names if x.startswith(lid)] == []
    assert not sock.exists() and labvm.leftovers() == []
    print("VM figures:", json.dumps(FIGURES))
