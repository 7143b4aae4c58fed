"""Runbooks 1-3 headless with papermill on fresh labs: the cluster forms, a re-run changes
nothing, ring1 carries membership when ring0 is cut, and the authkey never shows up."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from hakit import notebook
from hakit.lab import Lab
from hakit.run import last_output, run
from hakit.stages import corosync as stage3

pytestmark = pytest.mark.lab

def run_all(params_file: Path, out: Path) -> dict[str, str]:
    """Execute 01-03 in order with dry_run False through the headless runner.

    Returns notebook name -> (executed JSON text, the closing one-line outcome).
    """
    folder = run(str(params_file), stages="1-3", out_root=out)
    got = {p.stem: (p.read_text(), last_output(p)) for p in sorted(folder.glob("*.ipynb"))}
    assert list(got) == ["01_bonding", "02_authkey", "03_corosync_rings"]
    return got


def check_cluster(lab: Lab) -> None:
    params = lab.params
    hosts = notebook.connect_nodes(params)
    try:
        v = stage3.verify(hosts, params, wait_s=60)
        assert v.ok, str(v)
    finally:
        for h in hosts.values():
            h.close()


def secret_forms(lab: Lab) -> list[str]:
    b64 = lab.ssh("vm-node1", ["base64", "-w0", "/etc/corosync/authkey"], check=True).stdout.strip()
    raw = base64.b64decode(b64)
    assert len(raw) >= 128
    return [b64, raw.hex(), raw[:32].hex(), b64[:40]]


@pytest.fixture
def fresh_lab2(lab2: Lab) -> Lab:
    lab2.down()
    lab2.up()
    return lab2


def test_runbooks_form_a_two_node_cluster_and_rerun_changes_nothing(fresh_lab2, lab2_params, tmp_path):
    first = run_all(lab2_params, tmp_path / "first")
    check_cluster(fresh_lab2)
    assert "not applied: this kernel has no bonding driver" in first["01_bonding"][1]
    for name in ("02_authkey", "03_corosync_rings"):
        assert re.search(r"(?<!un)changed", first[name][1]), f"{name}: {first[name][1]}"
    second = run_all(lab2_params, tmp_path / "second")
    for name in ("02_authkey", "03_corosync_rings"):
        line = second[name][1]
        assert "unchanged" in line and not re.search(r"(?<!un)changed", line), f"{name}: {line}"
    # The authkey never reaches an executed notebook, in any encoding.
    forms = secret_forms(fresh_lab2)
    for text, _ in list(first.values()) + list(second.values()):
        for form in forms:
            assert form not in text


def test_ring1_carries_membership_when_ring0_is_cut(fresh_lab2, lab2_params, tmp_path):
    run_all(lab2_params, tmp_path)
    lab = fresh_lab2
    lab.link("vm-node1", "bond0", up=False)
    try:
        import time

        deadline = time.monotonic() + 20
        while True:
            cfg = lab.ssh("vm-node1", ["corosync-cfgtool", "-s"]).stdout
            if "disconnected" in cfg or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        from hakit.facts.corosync import parse_cfgtool_status, parse_quorumtool_status

        links = parse_cfgtool_status(cfg)
        assert not links.link(0).peer(2).is_connected and links.link(1).peer(2).is_connected
        for n in ("vm-node1", "vm-node2"):
            q = parse_quorumtool_status(lab.ssh(n, ["corosync-quorumtool", "-s"]).stdout)
            assert q.quorate and q.member_names() == ("vm-node1", "vm-node2")
    finally:
        lab.link("vm-node1", "bond0", up=True)
    check_cluster(lab)  # both links connected again


def test_runbooks_form_a_three_node_cluster(lab3_params, start_lab, tmp_path):
    lab3 = start_lab(lab3_params)
    try:
        lab3.down()
        lab3.up()
        texts = run_all(lab3_params, tmp_path)
        check_cluster(lab3)
        q = lab3.ssh("vm-node3", ["corosync-quorumtool", "-s"]).stdout
        assert "2Node" not in q  # two_node is only for two nodes
        forms = secret_forms(lab3)
        assert not any(f in t for t, _ in texts.values() for f in forms)
    finally:
        lab3.down()
