"""`lab down` leaves nothing behind: after a clean run, a half-finished up, or lost state."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from hakit.lab import Lab
from hakit.lab import node as labnode
from hakit.params import load_params

pytestmark = pytest.mark.lab


def everything_of(lab: Lab) -> list[str]:
    """An independent look at the machine for anything carrying the lab's names."""
    lid = lab.cfg.id
    found = []
    # Link names are the lab id and a suffix (htpriv, ht1priv, htgw), so another lab's may start the same way
    # (ht3priv): a name counts if it is one this lab would make, by the rule of lab/net.py.
    mine = re.compile(rf"{re.escape(lid)}(priv|pub|gw|\d+(priv|publ|pri\d|pub\d))")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()]
    found += [n for n in names if mine.fullmatch(n)]
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {ln.split()[0]}" for ln in ns.splitlines() if ln.startswith(f"{lid}-")]
    mounts = Path("/proc/self/mounts").read_text()
    found += [f"mount {ln.split()[1]}" for ln in mounts.splitlines() if f"{lab.dir}/" in ln.split()[1] + "/"]
    for pid in os.listdir("/proc"):
        if pid.isdigit() and labnode.pid_alive(int(pid)):
            argv = labnode.cmdline(int(pid))
            if argv and argv[0].endswith("systemd-nspawn") and any(a.startswith(f"--machine={lid}-") for a in argv):
                found.append(f"process {pid}")
    for h in ("systemd", "unified", ""):
        d = Path("/sys/fs/cgroup") / h / "hakit"
        if d.exists():
            found += [f"cgroup {c}" for c in d.iterdir() if c.name.startswith(f"{lid}-")]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if f"hakit_{lid}" in tables.split():
        found.append("nft table")
    return found


def test_down_after_a_clean_run_leaves_nothing(lab2):
    assert everything_of(lab2)  # the check sees a running lab
    lab2.down()
    assert everything_of(lab2) == []
    assert lab2.leftovers() == []
    assert not (lab2.dir / "nodes").exists()


def test_down_after_a_half_finished_up(lab2_params):
    lab = Lab(load_params(lab2_params))
    lab.down()
    lab.preflight()
    rootfs = lab.image.ensure()
    lab._ensure_key()
    lab._ensure_network()
    name = lab.params.nodes[0].name
    lab._record_node(name, machine=lab.machine(name), base=str(lab.paths(name).base), netns=lab.net.node(name).netns)
    labnode.mount_overlay(rootfs, lab.paths(name))
    lab._boot(name)  # one node booting, the other never started: as if `up` crashed here
    assert everything_of(lab)
    lab.down()
    assert everything_of(lab) == []


def test_down_with_the_state_file_lost(lab2_params):
    lab = Lab(load_params(lab2_params))
    lab.up()
    lab.state_file.unlink()  # the record of PIDs is gone: names alone must find everything
    lab.down()
    assert everything_of(lab) == []


def test_down_twice_is_harmless(lab2_params):
    lab = Lab(load_params(lab2_params))
    lab.down()
    assert lab.down() == []
