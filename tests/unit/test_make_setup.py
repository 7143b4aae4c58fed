"""`make setup` installs what the chosen lab needs: the container lab's packages always, qemu only for VM labs
and `make test`, never the Recommends. Read through make's own dry run and `hakit lab kinds`; no apt runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kinds(params: str) -> str:
    r = subprocess.run([sys.executable, "-m", "hakit", "lab", "kinds", "--params", params],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def make(*args: str) -> str:
    # -o: never remake the venv from here (a test must not install anything)
    r = subprocess.run(["make", "--no-print-directory", "-o", "venv", "-o", ".venv/.stamp", *args],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_lab_kinds_lists_each_node_and_how_the_lab_runs_it() -> None:
    assert kinds("params/lab-bonding.yaml") == "vm-node1 vm\nvm-node2 container\n"
    assert kinds("params/lab.yaml") == "vm-node1 container\nvm-node2 container\n"
    assert kinds("params/example-real.yaml") == ""  # real hosts: no lab, nothing to install for one


def test_every_apt_install_skips_the_recommends_and_qemu_is_not_in_the_container_set() -> None:
    dry = make("-n", "apt", "apt-vm", "VM=1")
    installs = [cmd for line in dry.splitlines() for cmd in line.split(";") if "apt-get install" in cmd]
    assert len(installs) == 2 and all("--no-install-recommends" in c for c in installs), installs
    container, vm = installs
    assert "systemd-container" in container and "qemu" not in container
    assert vm.split("--no-install-recommends")[1].split() == ["qemu-system-x86", "qemu-utils", "e2fsprogs"]


def test_the_default_lab_needs_no_qemu_and_make_test_asks_for_it() -> None:
    assert make("apt-vm", "PARAMS=params/lab.yaml") == (
        "apt: params/lab.yaml has no VM node: qemu is not needed (VM=1 installs it anyway)\n")
    assert 'why="VM=1"' in make("-n", "test")  # the tests marked `vm` run in `make test`
    assert 'if [ -n "" ]' in make("-n", "demo")  # the default params decide: no VM node, no qemu
