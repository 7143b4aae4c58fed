"""The lab on real nodes: access, identity, packages, honesty about bonding, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hakit.lab import Lab, LabError
from hakit.lab import net as labnet

pytestmark = pytest.mark.lab


def sh(lab: Lab, node: str, cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return lab.ssh(node, ["sh", "-c", cmd], timeout=timeout)


def names(lab: Lab) -> list[str]:
    return [n.name for n in lab.params.nodes]


def test_every_node_answers_ssh_with_its_pinned_host_key(lab2):
    for name in names(lab2):
        r = sh(lab2, name, "hostname")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == name


def test_a_node_with_an_unknown_host_key_is_refused(lab2, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    argv = [a if not a.startswith("UserKnownHostsFile=") else f"UserKnownHostsFile={empty}" for a in lab2.ssh_argv("vm-node1")]
    r = subprocess.run(argv + ["true"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 255
    assert "Host key verification failed" in r.stderr


def test_known_hosts_pins_one_distinct_key_per_node(lab2):
    lines = lab2.known_hosts.read_text().splitlines()
    assert len(lines) == len(lab2.params.nodes)
    keys = {ln.split()[2] for ln in lines}
    assert len(keys) == len(lines)
    for n in lab2.params.nodes:
        assert any(ln.split()[0].split(",")[0] == n.name and str(n.public_ip) in ln.split()[0] for ln in lines)


def test_nodes_have_their_own_identity(lab2):
    ids = {sh(lab2, n, "cat /etc/machine-id").stdout.strip() for n in names(lab2)}
    assert len(ids) == len(names(lab2)) and all(len(i) == 32 for i in ids)


def test_cluster_packages_are_installed_from_debian(lab2):
    r = sh(lab2, "vm-node1", "dpkg-query -W -f='${Package} ${Status}\\n' corosync pacemaker crmsh resource-agents apache2 openssh-server")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 6 and all(ln.endswith("install ok installed") for ln in lines), r.stdout
    assert "Corosync Cluster Engine, version '3." in sh(lab2, "vm-node2", "corosync -v").stdout


def test_systemd_has_booted_every_node(lab2):
    for n in names(lab2):
        assert sh(lab2, n, "systemctl is-system-running").stdout.strip() in ("running", "degraded")
        assert sh(lab2, n, "systemctl is-active ssh").stdout.strip() == "active"


def test_cluster_services_wait_for_the_runbooks(lab2):
    # A node as the image makes it (a test before may have run the runbooks on this lab).
    lab2.down()
    lab2.up()
    r = sh(lab2, "vm-node1", "systemctl is-enabled corosync pacemaker")
    assert r.stdout.split() == ["disabled", "disabled"]


def test_bonding_is_reported_as_it_is(lab2):
    d = lab2.status_dict(probe=False)
    release = os.uname().release
    kernel_has_bonding = Path("/sys/module/bonding").exists() or any(
        Path("/lib/modules", release).glob("kernel/drivers/net/bonding/bonding.ko*")
    )
    assert d["bonding"]["available"] == kernel_has_bonding
    assert ("no bonding driver" in d["bonding"]["reason"]) is not kernel_has_bonding
    # Whatever this kernel can do, the layout is the default one: the interfaces carry the bond names
    # but are plain links, and nobody pretends otherwise.
    assert d["bonding"]["links"] == "bond-names"
    r = sh(lab2, "vm-node1", "ip -d -o link show bond0")
    assert " veth " in r.stdout and " bond " not in r.stdout
    assert sh(lab2, "vm-node1", "test -e /proc/net/bonding/bond0").returncode != 0


def test_up_again_changes_nothing(lab2):
    before = {n: lab2._node_state(n)["leader_pid"] for n in names(lab2)}
    msgs: list[str] = []
    lab2.progress = msgs.append
    try:
        lab2.up()
    finally:
        lab2.progress = lambda m: print(m, flush=True)
    assert any("already up, nothing changed" in m for m in msgs)
    assert {n: lab2._node_state(n)["leader_pid"] for n in names(lab2)} == before


def test_cli_status_json_and_ssh_exit_codes(lab2, lab2_params):
    hakit = [sys.executable, "-m", "hakit", "lab"]
    r = subprocess.run(hakit + ["status", "--json", "--params", str(lab2_params)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["up"] is True
    assert [n["name"] for n in d["nodes"]] == names(lab2)
    assert all(n["state"] == "running" and n["system_state"] in ("running", "degraded") for n in d["nodes"])
    assert Path(d["key_file"]).exists() and Path(d["known_hosts"]).exists()
    r = subprocess.run(hakit + ["ssh", "--params", str(lab2_params), "vm-node2", "sh", "-c", "exit 7"], capture_output=True, timeout=60)
    assert r.returncode == 7
    r = subprocess.run(hakit + ["ssh", "--params", str(lab2_params), "vm-node2", "uname", "-n"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "vm-node2"


def test_cli_names_an_unknown_node(lab2_params):
    r = subprocess.run(
        [sys.executable, "-m", "hakit", "lab", "power-cut", "--params", str(lab2_params), "vm-node9"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2
    assert "vm-node9" in r.stderr and "vm-node1" in r.stderr


def test_the_lab_routes_nowhere(lab2):
    L = lab2.net
    # The gateway namespace has exactly one link (to the public bridge) and no default route.
    links = subprocess.run(["ip", "-n", L.gw_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert sorted(ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()) == ["eth0", "lo"]
    routes = subprocess.run(["ip", "-n", L.gw_netns, "route"], capture_output=True, text=True).stdout
    assert "default" not in routes
    # Nodes route only to the lab gateway.
    r = sh(lab2, "vm-node1", "ip route show default")
    assert r.stdout.split()[:3] == ["default", "via", str(lab2.params.networks.public.gateway)]
    # And this machine refuses to forward anything into or out of the lab bridges.
    rules = subprocess.run(["nft", "list", "table", "inet", L.nft_table], capture_output=True, text=True).stdout
    for br in L.bridges.values():
        assert f'iifname "{br}" oifname "{br}" accept' in rules
    assert "drop" in rules


def test_nodes_reach_each_other_and_the_gateway(lab2):
    p = lab2.params
    r = sh(lab2, "vm-node1", f"ping -c1 -W2 {p.nodes[1].private_ip} && ping -c1 -W2 {p.networks.public.gateway}")
    assert r.returncode == 0, r.stdout + r.stderr


def test_power_cut_kills_at_once_and_power_on_keeps_the_disk(lab2):
    sh(lab2, "vm-node2", "echo before-cut > /root/marker; sync")
    leader_before = lab2._node_state("vm-node2")["leader_pid"]
    netns = lab2.net.node("vm-node2").netns
    t0 = time.monotonic()
    lab2.power_cut("vm-node2")
    print(f"\nFIGURES power cut: {time.monotonic() - t0:.2f} s until every process of the node was gone")
    assert labnet.netns_pids(netns) == []
    assert lab2.status(probe=False)[1].state == "off"
    assert sh(lab2, "vm-node2", "true", timeout=20).returncode == 255
    # The other node is untouched.
    assert sh(lab2, "vm-node1", "true").returncode == 0
    lab2.power_on("vm-node2")
    assert sh(lab2, "vm-node2", "cat /root/marker").stdout.strip() == "before-cut"
    # A new boot: a new init process (boot_id cannot show it: containers share the host kernel's).
    assert lab2._node_state("vm-node2")["leader_pid"] not in (None, leader_before)


def test_pulled_cable_is_carrier_loss_and_plugging_back_restores(lab2, lab2_params):
    """Through the CLI, by role: ring0 is pulled, the same link is plugged back as `private`."""
    peer = str(lab2.params.nodes[1].private_ip)
    (dev,) = [ln.node_end for ln in lab2.net.node("vm-node1").cables("ring0")]
    cli = [sys.executable, "-m", "hakit", "lab"]
    r = subprocess.run(cli + ["link-down", "--params", str(lab2_params), "vm-node1", "ring0"],
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0 and f"vm-node1: ring0 ({dev}) cable pulled" in r.stderr, r.stderr
        r = sh(lab2, "vm-node1", f"ip -o link show {dev}; ping -c1 -W1 {peer}")
        assert "NO-CARRIER" in r.stdout.splitlines()[0] and ",UP" in r.stdout.splitlines()[0]  # admin up, no carrier
        assert r.returncode != 0
        # The public link still works: SSH came over it.
        r = subprocess.run(cli + ["link-up", "--params", str(lab2_params), "vm-node1", "private"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        lab2.link("vm-node1", "ring0", up=True)
    r = sh(lab2, "vm-node1", f"cat /sys/class/net/{dev}/carrier; ping -c1 -W2 {peer}")
    assert r.stdout.splitlines()[0] == "1" and r.returncode == 0


def test_gateway_cut_is_per_node_and_undone(lab2):
    gw = str(lab2.params.networks.public.gateway)
    lab2.gateway("vm-node1", reachable=False)
    try:
        assert sh(lab2, "vm-node1", f"ping -c1 -W1 {gw}").returncode != 0
        assert sh(lab2, "vm-node2", f"ping -c1 -W2 {gw}").returncode == 0
        assert lab2.status_dict(probe=False)["gateway"]["blocked_sources"] == [str(lab2.params.nodes[0].public_ip)]
    finally:
        lab2.gateway("vm-node1", reachable=True)
    assert sh(lab2, "vm-node1", f"ping -c1 -W2 {gw}").returncode == 0
    assert lab2.status_dict(probe=False)["gateway"]["blocked_sources"] == []


def test_kill_process_hits_exactly_the_named_process_on_that_node(lab2):
    for n in names(lab2):
        sh(lab2, n, "systemd-run --unit=hakit-test-sleeper sleep 600")
    try:
        pids = lab2.kill_process("vm-node1", "sleep")
        assert len(pids) == 1
        time.sleep(0.3)
        assert sh(lab2, "vm-node1", "pgrep -x sleep").returncode == 1
        assert sh(lab2, "vm-node2", "pgrep -x sleep").returncode == 0  # the other node's sleep lives on
    finally:
        for n in names(lab2):
            sh(lab2, n, "systemctl stop hakit-test-sleeper 2>/dev/null; true")
    with pytest.raises(LabError, match="no process named 'no-such-daemon'"):
        lab2.kill_process("vm-node1", "no-such-daemon")


def test_fault_on_unknown_interface_names_the_valid_ones(lab2, lab2_params):
    valid = [ln.node_end for ln in lab2.net.node("vm-node1").links]
    with pytest.raises(KeyError) as e:
        lab2.link("vm-node1", "eth7", up=False)
    msg = e.value.args[0]
    assert msg.startswith("node vm-node1 has no link 'eth7'; name a role: ring0 or private")
    assert msg.endswith(f"; or an interface: {', '.join(valid)}")
    r = subprocess.run(
        [sys.executable, "-m", "hakit", "lab", "link-down", "--params", str(lab2_params), "vm-node1", "ring2"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and "node vm-node1 has no link 'ring2'; name a role: ring0 or private" in r.stderr


def test_cli_ssh_single_argument_is_a_shell_line(lab2, lab2_params):
    r = subprocess.run(
        [sys.executable, "-m", "hakit", "lab", "ssh", "--params", str(lab2_params), "vm-node1", "echo a b | wc -w"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "2"


def test_sysfs_shows_the_nodes_own_interfaces(lab2):
    # Resource agents and ifupdown read /sys/class/net; it must be the node's, not the host's.
    r = sh(lab2, "vm-node1", "ls /sys/class/net")
    assert sorted(r.stdout.split()) == sorted(["lo"] + [ln.node_end for ln in lab2.net.node("vm-node1").links])
