"""Bare nodes, as a freshly installed server: stage 00 refuses bad hosts untouched, then installs, and
stages 00-06 build the cluster from nothing (what `make demo` does).

One bare lab per module (params/lab.yaml with lab.image bare, this run's lab id and subnets): its
nodes have Debian's base system and sshd only, and get packages from the lab's package mirror on
this machine (Debian's signed indices; apt on the node checks them). Evidence is read on the
nodes: dpkg's database, systemd's unit states, apt's sources, the CIB.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
from pathlib import Path

import pytest

import evidence
from hakit import notebook
from hakit.lab import Lab
from hakit.params import load_params
from hakit.run import run as hakit_run
from hakit.stages import driver
from hakit.stages import packages as stage

pytestmark = pytest.mark.lab

# What stage 00 could change on a node: the package database, unit states, apt's config and index.
# (find -printf rather than ls -l: overlayfs changes a directory's link count when it copies it up.)
SNAPSHOT = ("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' | sha256sum; "
            "systemctl list-unit-files --state=masked --no-legend | sort; "
            "find /etc/apt /etc/systemd/system /var/lib/apt/lists -xdev ! -name lock -printf '%p %y %s %T@ %m %l\\n' "
            "| sort | sha256sum")


@pytest.fixture(scope="module")
def _bare_session(labe_params: Path, start_lab) -> Lab:
    lab = start_lab(labe_params)
    yield lab
    lab.down()


def _installed(lab: Lab) -> bool:
    return lab.ssh("vm-node1", ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "corosync"]).stdout.startswith("ii")


@pytest.fixture
def bare(_bare_session: Lab) -> Lab:
    """The bare lab, nodes as fresh servers: made fresh again (seconds: overlay disks) if a test deployed it."""
    lab = _bare_session
    if _installed(lab):
        lab.down()
    lab.up()
    return lab


def snapshot(lab: Lab) -> dict[str, str]:
    return {n.name: lab.ssh(n.name, ["sh", "-c", SNAPSHOT], check=True).stdout for n in lab.params.nodes}


def _stage00(params) -> driver.StageRun:
    """Stage 00 for real, through fresh SSH connections (closed afterwards)."""
    hosts = notebook.connect_nodes(params)
    try:
        return driver.run_stage(stage.PackagesStage(params), hosts, dry_run=False)
    finally:
        for h in hosts.values():
            h.close()


def _blocked(params, fix_words: list[str]) -> driver.StageBlocked:
    hosts = notebook.connect_nodes(params)
    try:
        with pytest.raises(driver.StageBlocked) as e:
            driver.run_stage(stage.PackagesStage(params), hosts, dry_run=False)
    finally:
        for h in hosts.values():
            h.close()
    msg = str(e.value)
    for w in fix_words:
        assert w in msg, msg
    return e.value


# (name, fault on vm-node1, undo, words the refusal must contain: node, check, fix)
FAULTS = {
    "hostname": ("hostname web01", "hostname vm-node1", ["vm-node1", "hostname", "hostnamectl set-hostname vm-node1"]),
    "release": ("rm /etc/os-release && printf 'ID=debian\\nVERSION_ID=\"11\"\\nVERSION_CODENAME=bullseye\\n' "
                "> /etc/os-release", "ln -sf ../usr/lib/os-release /etc/os-release",
                ["vm-node1", "release", "debian 11 (bullseye) is not supported", "Debian 13 (trixie)"]),
    "held package": ("apt-mark hold pacemaker", "apt-mark unhold pacemaker",
                     ["vm-node1", "no package held", "held: pacemaker", "apt-mark unhold pacemaker"]),
    # An admin's `apt-get install` waiting at its prompt holds apt's and dpkg's locks.
    "apt locked": ("systemd-run --unit=hakit-test-apt sh -c 'sleep 300 | apt-get install crmsh' && "
                   "for i in $(seq 200); do p=$(pgrep -x apt-get) && ls -l /proc/$p/fd 2>/dev/null "
                   "| grep -q lock-frontend && exit 0; sleep 0.05; done; exit 1",
                   "systemctl stop hakit-test-apt",
                   ["vm-node1", "apt free", "/var/lib/dpkg/lock-frontend held by PID", "(apt-get)", "wait for"]),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_host_stops_stage00_before_any_change(bare: Lab, fault: str) -> None:
    do, undo, words = FAULTS[fault]
    bare.ssh("vm-node1", ["sh", "-c", do], check=True)
    try:
        before = snapshot(bare)  # with the fault in place: the refusal must change nothing more
        _blocked(bare.params, words)
        assert snapshot(bare) == before  # nothing installed, masked, configured or refreshed, on any node
    finally:
        bare.ssh("vm-node1", ["sh", "-c", undo])


def test_params_naming_missing_interfaces_stop_stage00(bare: Lab, labe_params: Path, tmp_path: Path) -> None:
    text = labe_params.read_text().replace("bond: bond0", "bond: bond7").replace("[eth0, eth1]", "[ens7, ens8]")
    wrong = tmp_path / "wrong-nics.yaml"
    wrong.write_text(text)
    before = snapshot(bare)
    _blocked(load_params(wrong), ["vm-node1", "vm-node2", "private interfaces", "neither bond7 nor both of ens7, ens8",
                                  "networks.private.bond"])
    assert snapshot(bare) == before


def _cluster_packages(lab: Lab, node: str) -> list[str]:
    out = lab.ssh(node, ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", "corosync", "pacemaker", "crmsh"]).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.split()[1:2] == ["ii"])


def test_an_install_refused_on_the_second_node_is_reported_exactly_and_the_next_run_installs(bare: Lab) -> None:
    """apt-get install fails on vm-node2 (a wrapper of that name first in root's PATH refuses `install`;
    `update`, the probe's `apt-get -s` and everything else run the real apt-get): stage 00 fails naming it, vm-node2 has no cluster
    package and no unit left masked, the report lists exactly what ran before (and the unmask that undid the
    hold), and the next run, the wrapper gone, installs on vm-node2 only."""
    wrapper = "/usr/local/sbin/apt-get"
    # (the probe's `apt-get -s install` is apt's own plan, not an install: it runs the real apt-get)
    script = ('#!/bin/sh\n# hakit test: apt-get install refused on purpose\ninstall=; sim=\nfor a in "$@"; do\n'
              '  case "$a" in install) install=1;; -s|--simulate) sim=1;; esac\ndone\n'
              'if [ -n "$install" ] && [ -z "$sim" ]; then echo "injected failure: apt-get install refused" >&2; '
              'exit 100; fi\nexec /usr/bin/apt-get "$@"\n')
    evidence.nsrun(bare, "vm-node2", f"printf '%s' {shlex.quote(script)} > {wrapper} && chmod 0755 {wrapper}")
    before = snapshot(bare)
    try:
        with pytest.raises(driver.StageFailed) as e:
            _stage00(bare.params)
    finally:
        evidence.nsrun(bare, "vm-node2", ["rm", "-f", wrapper])
    err = e.value
    assert err.node == "vm-node2" and "apt-get install" in err.command and err.exit_code == 100, str(err)
    assert "injected failure" in err.stderr and "/var/log/apt/term.log" in str(err)
    after = snapshot(bare)
    # vm-node2: nothing installed, no unit left masked (the hold was undone); only its apt index is new
    assert _cluster_packages(bare, "vm-node2") == []
    assert after["vm-node2"].splitlines()[0] == before["vm-node2"].splitlines()[0]  # dpkg's database as before
    assert "masked" not in bare.ssh("vm-node2", ["systemctl", "is-enabled", "corosync", "pacemaker"]).stdout
    assert "clean-up after the failure" in str(err) and "vm-node2" in str(err).split("clean-up after the failure")[1]
    # the report names what ran, and only that: vm-node2's mask and index refresh, all of vm-node1 that ran
    on2 = [c for c in err.changed if c.startswith("vm-node2: ")]
    assert any("systemctl mask" in c for c in on2) and any("apt-get update" in c for c in on2), err.changed
    assert not any("apt-get install" in c for c in on2)
    node1_installed = bool(_cluster_packages(bare, "vm-node1"))
    assert node1_installed == any(c.startswith("vm-node1: ") and "apt-get install" in c for c in err.changed), (
        err.changed, _cluster_packages(bare, "vm-node1"))
    # the next run installs what is missing, and nothing where all is there
    run = _stage00(bare.params)
    ran = {o.node for o in run.plan.ops}
    assert "vm-node2" in ran and (("vm-node1" in ran) != node1_installed), (ran, node1_installed)
    for n in ("vm-node1", "vm-node2"):
        assert _cluster_packages(bare, n) == ["corosync", "crmsh", "pacemaker"], n
    print(f"\nstage 00 with vm-node2's install refused: vm-node1 {'installed' if node1_installed else 'not reached'}; "
          f"reported: {err.changed}")


_deployment: dict[str, Path] = {}


@pytest.fixture
def deployed(_bare_session: Lab, labe_params: Path, tmp_path_factory) -> tuple[Lab, Path]:
    """Stages 00-06 by `hakit run` on fresh bare nodes, once (again only if a test made the nodes bare)."""
    lab = _bare_session
    if "folder" not in _deployment or not _installed(lab):
        lab.down()
        lab.up()
        _deployment["folder"] = hakit_run(str(labe_params), stages="all", out_root=tmp_path_factory.mktemp("runs-bare"),
                                          html=False)
    lab.up()
    return lab, _deployment["folder"]


def test_bare_nodes_get_the_cluster_from_stage00_to_06(deployed: tuple[Lab, Path]) -> None:
    bare, folder = deployed
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stages"][0]["notebook_name"] == "00_packages"
    assert [s["status"] for s in summary["stages"]][:1] == ["changed"]
    assert all(s["status"] in ("changed", "unchanged") for s in summary["stages"]), summary["stages"]
    # The record lists every cluster package's installed version on every node; dpkg agrees.
    rec = json.loads((folder / "00_packages" / "record.json").read_text())["verification"]
    assert rec["ok"] is True and rec["before_apply"] is False
    for n in bare.params.nodes:
        wanted = stage.pk.cluster_packages("trixie", "fence_ipmilan", qdevice=bare.params.quorum_device is not None)
        live = bare.ssh(n.name, ["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *wanted],
                        check=True).stdout.split("\n")
        for line in filter(None, live):
            pkg, version = line.split()
            row = next(r for r in rec["checks"] if r["node"] == n.name and r["check"] == f"{pkg} installed")
            assert row["ok"] is True and row["detail"] == version
        # apt got them from the lab's mirror only, and still checks Debian's signatures.
        sources = bare.ssh(n.name, ["sh", "-c", "cat /etc/apt/sources.list; ls /etc/apt/sources.list.d"],
                           check=True).stdout
        assert sources.strip() == "deb http://hakit-repo/debian trixie main"
        assert "trusted=yes" not in sources
    # Corosync's packaged one-node config never ran: the CIB knows exactly the params' nodes.
    cib = bare.ssh("vm-node1", ["cibadmin", "--query", "--scope", "nodes"], check=True).stdout
    names = sorted(x.split('uname="')[1].split('"')[0] for x in cib.split("<node ")[1:])
    assert names == sorted(n.name for n in bare.params.nodes)
    # The service answers on the VIP (the client's view, from this machine).
    r = subprocess.run(["curl", "-s", "--noproxy", "*", "-m", "5", f"http://{bare.params.vip.address}/"],
                       capture_output=True, text=True)
    assert "vm-node1" in r.stdout


def test_second_stage00_run_changes_nothing(deployed: tuple[Lab, Path]) -> None:
    bare, _ = deployed
    before = snapshot(bare)
    run = _stage00(bare.params)
    assert run.plan is not None and run.plan.ops == []
    assert snapshot(bare) == before


def test_mirror_holds_debian_signed_indices_only(_bare_session: Lab) -> None:
    root = _bare_session.image.repo
    assert root is not None
    dist = root / "debian" / "dists" / "trixie"
    inrelease = (dist / "InRelease").read_text()
    assert inrelease.startswith("-----BEGIN PGP SIGNED MESSAGE-----") and "Origin: Debian" in inrelease
    # Each index served is the one InRelease lists (by sha256), as apt on the node checks it.
    for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"):
        digest = hashlib.sha256((dist / rel).read_bytes()).hexdigest()
        assert f" {digest} " in inrelease
