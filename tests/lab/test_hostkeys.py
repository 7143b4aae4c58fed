"""A node whose host key changed is refused before anything is sent (issue #7).

vm-node2 gets a freshly generated ed25519 host key while the lab's known_hosts
still pins the old one. A headless run of stage 2 (which, applied, would write
the corosync authkey on every node) and `notebook.connect_nodes` must stop
naming the node with both fingerprints, and no node may have been changed or
even logged into by the runbook. The original key is put back afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from hakit import notebook
from hakit.lab import Lab
from hakit.remote import HostKeyError
from hakit.run import RunFailed, run

pytestmark = pytest.mark.lab

NODE = "vm-node2"
KEY = "/etc/ssh/ssh_host_ed25519_key"
SAVE = "/root/.hakit-hostkey-test"  # the original key pair while the test runs
# What stage 2 would change on each node, or "absent".
AUTHKEY_STAT = ["sh", "-c", "stat -c '%Y %s %a' /etc/corosync/authkey 2>/dev/null || echo absent"]


def fp(key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line ("type base64 [comment]")."""
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def pinned_line(lab: Lab, name: str) -> str:
    for line in lab.known_hosts.read_text().splitlines():
        names, rest = line.split(None, 1)
        if name in names.split(","):
            return rest
    raise AssertionError(f"{name} is not pinned in {lab.known_hosts}")


def offered_line(address: str, port: int) -> str | None:
    p = subprocess.run(
        ["ssh-keyscan", "-t", "ed25519", "-T", "3", "-p", str(port), address],
        capture_output=True, text=True, timeout=15,
    )
    lines = [ln for ln in p.stdout.splitlines() if ln and not ln.startswith("#")]
    return lines[0].split(None, 1)[1] if lines else None


def wait_offered(address: str, port: int, key_line: str, timeout: float = 20) -> None:
    """Until sshd on the node offers this key (sshd re-executes on reload)."""
    want = fp(key_line)
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = offered_line(address, port)
        if got and fp(got) == want:
            return
        time.sleep(0.3)
    raise AssertionError(f"{address} offers {got and fp(got)}, expected {want}")


def ssh_with_key(lab: Lab, name: str, known_hosts: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """lab.ssh, but trusting the given known_hosts file (ssh takes the first -o, so replace it)."""
    argv = [f"UserKnownHostsFile={known_hosts}" if a.startswith("UserKnownHostsFile=") else a for a in lab.ssh_argv(name)]
    return subprocess.run(argv + ["--", shlex.join(command)], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)


def accepted_logins(lab: Lab, kh: Path, since: int) -> int:
    """Public-key logins sshd accepted on NODE since `since` (epoch s), this query's own included.

    OpenSSH 9.2 (Debian 12) logs them as `sshd`, OpenSSH 10.0 (Debian 13) as `sshd-session`."""
    cmd = ["sh", "-c", f"journalctl --since @{since} -o cat _COMM=sshd _COMM=sshd-session "
                       "| grep -c 'Accepted publickey' || true"]
    r = ssh_with_key(lab, NODE, kh, cmd)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_changed_host_key_stops_the_run_before_anything_is_sent(lab2: Lab, lab2_params: Path, tmp_path: Path):
    lab = lab2
    params = lab.params
    address, port = str(params.ssh_address(params.node(NODE))), params.ssh.port
    pinned = pinned_line(lab, NODE)
    assert fp(offered_line(address, port) or "x AAAA") == fp(pinned), "the lab is not in its pinned state"
    before = {n.name: lab.ssh(n.name, AUTHKEY_STAT, check=True).stdout for n in params.nodes}

    # A new key pair on the node, the original saved beside it.
    gen = lab.ssh(NODE, ["sh", "-c", (
        f"set -e; rm -rf {SAVE}; mkdir -m 700 {SAVE}; cp -p {KEY} {KEY}.pub {SAVE}/; "
        f"ssh-keygen -q -t ed25519 -N '' -C hakit-test-new -f {SAVE}/new; cat {SAVE}/new.pub"
    )], check=True)
    new = " ".join(gen.stdout.split()[:2])
    assert fp(new) != fp(pinned)
    new_kh = tmp_path / "known_hosts.new"
    new_kh.write_text(f"{NODE},{params.node(NODE).public_ip},{params.node(NODE).private_ip} {new}\n")
    swapped = False
    try:
        lab.ssh(NODE, ["sh", "-c", (
            f"set -e; install -m 600 {SAVE}/new {KEY}; install -m 644 {SAVE}/new.pub {KEY}.pub; systemctl reload ssh"
        )], check=True)
        swapped = True
        wait_offered(address, port, new)
        since = int(time.time()) - 1
        baseline = accepted_logins(lab, new_kh, since)

        # The library's own connect: refused, naming the node and both keys.
        with pytest.raises(HostKeyError) as e:
            notebook.connect_nodes(params)
        msg = str(e.value)
        assert e.value.host == NODE
        assert f"host key of {NODE} ({address}) does not match" in msg
        assert f"pinned {fp(pinned)}" in msg and f"offered {fp(new)}" in msg and "Nothing was sent" in msg

        # A headless run of stage 2 (applied, not a dry run) stops the same way.
        with pytest.raises(RunFailed) as r:
            run(str(lab2_params), stages="2", out_root=tmp_path / "runs", html=False)
        text = str(r.value)
        assert f"failed on {NODE}: `ssh connect`" in text, text
        assert fp(pinned) in text and fp(new) in text, text

        # Nothing was sent: no login on vm-node2 beyond our two probes, no authkey written anywhere.
        assert accepted_logins(lab, new_kh, since) == baseline + 1
        after = {n.name: ssh_with_key(lab, n.name, new_kh if n.name == NODE else lab.known_hosts, AUTHKEY_STAT).stdout
                 for n in params.nodes}
        assert after == before
    finally:
        restore = f"set -e; cp -p {SAVE}/ssh_host_ed25519_key {SAVE}/ssh_host_ed25519_key.pub /etc/ssh/; systemctl reload ssh; rm -rf {SAVE}"
        if swapped:
            r = ssh_with_key(lab, NODE, new_kh, ["sh", "-c", restore])
        else:
            r = lab.ssh(NODE, ["sh", "-c", restore])
        assert r.returncode == 0, f"could not restore the host key of {NODE}: {r.stderr}"
        wait_offered(address, port, pinned)
    assert lab.ssh(NODE, ["true"]).returncode == 0  # the pinned key works again
