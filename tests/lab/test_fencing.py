"""Fencing on real lab nodes: Debian's fence_ipmilan on one node powers another off and on
through the lab's virtual BMCs, with the password never on a command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from hakit import fencing
from hakit.lab import Lab
from hakit.lab import bmc as labbmc
from hakit.lab import net as labnet
from hakit.lab import node as labnode
from hakit.remote import connect_all
from hakit.stages.properties import install_credentials

pytestmark = pytest.mark.lab

FROM, TARGET = "vm-node1", "vm-node2"


@pytest.fixture
def fenced(lab2: Lab) -> Lab:
    """The test lab with every BMC up and the fencing credentials on every node."""
    assert lab2.has_bmcs, "params/lab.yaml configures pacemaker.fencing, so the lab must run virtual BMCs"
    with connect_all(lab2.params) as hosts:
        install_credentials(hosts, lab2.params)
    return lab2


def device(lab: Lab, target: str) -> fencing.StonithResource:
    return next(r for r in fencing.stonith_resources(lab.params) if r.target == target)


def agent_stdin(lab: Lab, target: str, action: str) -> str:
    """What pacemaker's fencer hands the agent: the CIB's instance attributes on stdin."""
    res = device(lab, target)
    lines = [f"action={action}"] + [f"{k}={v}" for k, v in res.attributes.items() if not k.startswith("pcmk_")]
    return "\n".join(lines) + "\n"


def run_agent(lab: Lab, target: str, action: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run the real fence agent on FROM against TARGET's BMC, attributes on stdin as pacemaker does."""
    res = device(lab, target)
    argv = lab.ssh_argv(FROM) + ["--", res.agent]
    return subprocess.run(argv, input=agent_stdin(lab, target, action), capture_output=True, text=True, timeout=timeout)


def wait_ssh_ready(lab: Lab, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = lab.ssh(name, ["systemctl", "is-system-running", "--wait"], timeout=30)
        if r.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} not SSH-ready within {timeout} s")


def test_one_virtual_bmc_per_node_listens_only_on_the_private_host_address(fenced):
    bmcs = fenced.status_dict(probe=False)["bmc"]
    host = str(fenced.params.lab.host_private_ip)
    assert [(b["node"], b["address"], b["state"]) for b in bmcs] == [
        (n.name, f"{host}:{labbmc.PORT_BASE + i}", "up") for i, n in enumerate(fenced.params.nodes, start=1)
    ]
    listening = subprocess.run(["ss", "-H", "-u", "-l", "-n", "-p"], capture_output=True, text=True).stdout
    for b in bmcs:
        port = b["address"].rsplit(":", 1)[1]
        bound = [ln.split()[3] for ln in listening.splitlines() if f"pid={b['pid']}," in ln]
        assert bound == [f"{host}:{port}"], listening  # not 0.0.0.0, not the public bridge


def test_agent_status_says_on(fenced):
    r = run_agent(fenced, TARGET, "status")
    assert r.returncode == 0, r.stderr
    assert "Status: ON" in r.stdout


def test_agent_off_kills_the_node_and_on_brings_it_back(fenced):
    fenced.ssh(TARGET, ["sh", "-c", "echo fenced-disk > /root/fence-marker; sync"], check=True)
    leader = fenced._node_state(TARGET)["leader_pid"]
    netns = fenced.net.node(TARGET).netns
    argv = fenced.ssh_argv(FROM) + ["--", device(fenced, TARGET).agent]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdin is not None
    p.stdin.write(agent_stdin(fenced, TARGET, "off"))
    p.stdin.close()
    p.stdin = None  # written and closed: communicate() only reads
    dead_after = None
    while p.poll() is None or dead_after is None:
        if dead_after is None and not labnode.pid_alive(leader):
            dead_after = time.monotonic() - t0
        if time.monotonic() - t0 > 60:
            break
        time.sleep(0.01)
    out, err = p.communicate(timeout=60)
    agent_done = time.monotonic() - t0
    assert p.returncode == 0, err
    assert "Powered OFF" in out
    assert dead_after is not None, "the node's init survived a successful fence"
    assert labnet.netns_pids(netns) == []
    assert fenced.status(probe=False)[1].state == "off"
    assert fenced.ssh(TARGET, ["true"], timeout=20).returncode == 255
    assert fenced.ssh(FROM, ["true"]).returncode == 0  # the fencing node lives on
    r = run_agent(fenced, TARGET, "status")
    assert r.returncode == 2 and "Status: OFF" in r.stdout  # the agent's documented exit code for "off"

    t1 = time.monotonic()
    r = run_agent(fenced, TARGET, "on")
    on_done = time.monotonic() - t1
    assert r.returncode == 0, r.stderr
    assert "Powered ON" in r.stdout
    wait_ssh_ready(fenced, TARGET)
    ready_after = time.monotonic() - t1
    assert fenced.ssh(TARGET, ["cat", "/root/fence-marker"]).stdout.strip() == "fenced-disk"
    assert fenced._node_state(TARGET)["leader_pid"] not in (None, leader)
    print(
        f"\nFIGURES fence off: node dead after {dead_after:.2f} s, agent done after {agent_done:.2f} s; "
        f"fence on: agent done after {on_done:.2f} s, SSH-ready after {ready_after:.2f} s"
    )


def test_agent_fails_clearly_when_the_bmc_is_unavailable_and_the_node_is_untouched(fenced):
    leader = fenced._node_state(TARGET)["leader_pid"]
    fenced.bmc(TARGET, available=False)
    try:
        assert fenced.status_dict(probe=False)["bmc"][1]["state"] == "down"
        t0 = time.monotonic()
        r = run_agent(fenced, TARGET, "off")
        took = time.monotonic() - t0
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Connection timed out" in r.stderr or "Failed" in r.stderr, r.stderr
        assert fenced._node_state(TARGET)["leader_pid"] == leader and labnode.pid_alive(leader)
        assert fenced.ssh(TARGET, ["true"]).returncode == 0
        print(f"\nFIGURES fence against an unavailable BMC fails after {took:.1f} s")
    finally:
        fenced.bmc(TARGET, available=True)
    r = run_agent(fenced, TARGET, "status")
    assert r.returncode == 0 and "Status: ON" in r.stdout


# Runs on the fencing node: sweeps every process's command line while the agent runs,
# comparing with the credential file on the node itself (the secret never leaves it).
POLLER = r"""
import json, os, sys, time
secret = open(sys.argv[1], "rb").read().strip()
stop, marker = sys.argv[2], b"hakit-cmdline-probe"
sweeps, hits, marker_seen, ipmitools = 0, 0, False, set()
while not os.path.exists(stop):
    sweeps += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        hits += secret in argv
        parts = argv.split(b"\0")
        marker_seen = marker_seen or marker in parts
        if parts[0].endswith(b"/ipmitool") and b"chassis" in parts:  # ipmitool itself, mid-run
            ipmitools.add(pid)
print(json.dumps({"sweeps": sweeps, "hits": hits, "marker_seen": marker_seen, "ipmitool_runs": len(ipmitools)}))
"""


def sweep_while_agent_runs(lab: Lab, dev: fencing.Device, stdin: str, runs: int) -> dict:
    """Run the agent `runs` times on FROM while POLLER sweeps every command line there."""
    lab.ssh(FROM, ["sh", "-c", f"cat > /tmp/agent.in << 'EOF'\n{stdin}EOF"], check=True)
    script = (
        "rm -f /tmp/poll.stop; "
        f"python3 -c '{POLLER}' {dev.credential_path} /tmp/poll.stop > /tmp/poll.out & P=$!; sleep 0.3; "
        f"for i in $(seq {runs}); do {dev.agent} < /tmp/agent.in > /dev/null 2>&1 || exit 9; done; "
        # A known argument on a command line: proves the sweep sees what it should.
        "sh -c 'sleep 0.3' hakit-cmdline-probe; "
        "touch /tmp/poll.stop; wait $P; cat /tmp/poll.out"
    )
    r = lab.ssh(FROM, ["sh", "-c", script], timeout=180)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["marker_seen"] and seen["ipmitool_runs"] >= 1, seen  # the sweep caught ipmitool's own argv
    return seen


def test_password_is_on_no_command_line_while_the_agent_runs(fenced):
    dev = next(d for d in fencing.devices(fenced.params) if d.node == TARGET)
    # Control: stock ipmitool with the password from password_script, as fence_ipmilan would
    # run it without hakit's wrapper. The agent puts `-P <password>` on ipmitool's command
    # line, and the sweep must see it there, or it could not see a leak at all.
    base = "".join(ln + "\n" for ln in agent_stdin(fenced, TARGET, "status").splitlines() if not ln.startswith("ipmitool_path="))
    control = sweep_while_agent_runs(fenced, dev, base + f"password_script=cat {dev.credential_path}\n", runs=3)
    assert control["hits"] > 0, control
    # The stonith attributes stage 4 renders: the wrapper, no password anywhere.
    seen = sweep_while_agent_runs(fenced, dev, agent_stdin(fenced, TARGET, "status"), runs=5)
    assert seen["hits"] == 0, "the BMC password appeared on a command line"
    print(f"\nFIGURES command-line sweeps saw ipmitool {seen['ipmitool_runs']} time(s) and the password never "
          f"(stock ipmitool, the control: seen {control['hits']} time(s) in {control['ipmitool_runs']} runs)")
    # Nor is it in what stage 4 puts in the CIB, on the BMC daemon's command line, or in its log.
    secret = labbmc.password_file(fenced.dir).read_text().strip()
    in_cib = any(secret in v for r_ in fencing.stonith_resources(fenced.params) for v in r_.attributes.values())
    assert not in_cib, "the BMC password is in the stonith attributes"
    pid = fenced.status_dict(probe=False)["bmc"][1]["pid"]
    on_daemon_argv = secret in " ".join(labnode.cmdline(pid))
    assert not on_daemon_argv, "the BMC password is on the virtual BMC's command line"
    in_log = secret in (labbmc.bmc_dir(fenced.dir) / f"{TARGET}.log").read_text()
    assert not in_log, "the BMC password is in the virtual BMC's log"


def test_credentials_are_root_only_and_a_second_install_changes_nothing(fenced):
    with connect_all(fenced.params) as hosts:
        result = install_credentials(hosts, fenced.params)
    assert [o.outcome for o in result.outcomes] == ["unchanged"] * len(fenced.params.nodes)
    assert result.executed == []
    paths = [d.credential_path for d in fencing.devices(fenced.params)]
    r = fenced.ssh(FROM, ["stat", "-c", "%n %U:%G %a", fencing.CRED_DIR, *paths, fencing.WRAPPER], check=True)
    got = [ln.split(" ", 1)[1] for ln in r.stdout.splitlines()]
    assert got == ["root:root 700"] + ["root:root 600"] * len(paths) + ["root:root 755"]


def test_cli_bmc_down_and_up_show_in_status(fenced, lab2_params):
    hakit = [sys.executable, "-m", "hakit", "lab"]

    def status() -> list[str]:
        r = subprocess.run(hakit + ["status", "--json", "--no-probe", "--params", str(lab2_params)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return [b["state"] for b in json.loads(r.stdout)["bmc"]]

    r = subprocess.run(hakit + ["bmc-down", "--params", str(lab2_params), TARGET], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        assert status() == ["up", "down"]
        text = subprocess.run(hakit + ["status", "--no-probe", "--params", str(lab2_params)],
                              capture_output=True, text=True, timeout=60).stdout
        assert f"{TARGET} {fenced.params.lab.host_private_ip}:{labbmc.PORT_BASE + 2} DOWN" in text
    finally:
        r = subprocess.run(hakit + ["bmc-up", "--params", str(lab2_params), TARGET], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert status() == ["up", "up"]


def test_lab_down_leaves_no_bmc_process_even_unrecorded(fenced):
    pids = {b["node"]: b["pid"] for b in fenced.status_dict(probe=False)["bmc"]}
    assert all(labbmc.is_our_bmc(p, fenced.dir, n) for n, p in pids.items())
    # Lose one record, as after a crash: down must still find that daemon by its exact command line.
    fenced._record_node(TARGET, bmc_pid=None)
    removed = fenced.down()
    assert any("not recorded" in r for r in removed), removed
    for n, p in pids.items():
        assert not labnode.pid_alive(p), f"{n}'s virtual BMC (pid {p}) survived lab down"
    assert labbmc.find_daemons(fenced.dir) == {}
    assert fenced.leftovers() == []
