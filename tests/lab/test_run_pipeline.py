"""Headless deployment on fresh labs with `hakit run`: the run folder is a complete change record,
a second run changes nothing, ring1 carries membership when ring0 is cut, three nodes form a
cluster, and the authkey never reaches any file of a run.

The two-node pipeline runs once per session (module fixture) and the tests read its record,
so `make test` does not deploy the same lab twice.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import evidence
import pytest

from hakit import notebook
from hakit.facts.corosync import parse_cfgtool_status, parse_quorumtool_status
from hakit.lab import Lab
from hakit.run import stage_notebooks
from hakit.run import run as hakit_run
from hakit.stages import corosync as stage3

pytestmark = pytest.mark.lab

STAGES = [p.stem for p in stage_notebooks()]  # whatever stage notebooks exist today


@dataclass
class Deployed:
    lab: Lab
    params_file: Path
    first: Path  # the first run's folder
    runs: Path  # where the runs go


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def check_cluster(lab: Lab) -> None:
    hosts = notebook.connect_nodes(lab.params)
    try:
        v = stage3.verify(hosts, lab.params, wait_s=60)
        assert v.ok, str(v)
    finally:
        for h in hosts.values():
            h.close()


def files_holding_the_authkey(lab: Lab, folders: list[Path]) -> list[str]:
    """An independent check of the scan: the key as the node has it, in its usual forms, in any file.

    Returns file names only, so a failure never prints the key.
    """
    b64 = lab.ssh("vm-node1", ["base64", "-w0", "/etc/corosync/authkey"], check=True).stdout.strip()
    raw = base64.b64decode(b64)
    assert len(raw) >= 128
    forms = [raw, raw.hex().encode(), raw[:32].hex().encode(), b64.encode(), b64[:40].encode()]
    hits = []
    for folder in folders:
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                if any(form in data for form in forms):
                    hits.append(str(f))
    return hits


@pytest.fixture(scope="module")
def deployed(_lab2_session: Lab, lab2_params: Path, tmp_path_factory) -> Deployed:
    lab = _lab2_session
    lab.down()
    lab.up()
    runs = tmp_path_factory.mktemp("runs")
    first = hakit_run(str(lab2_params), stages="all", out_root=runs)
    return Deployed(lab, lab2_params, first, runs)


def test_headless_run_writes_a_complete_change_record(deployed):
    folder, lab = deployed.first, deployed.lab
    assert re.fullmatch(r"\d{8}T\d{6}Z-hakit-test", folder.name)
    s = summary(folder)
    assert s["ok"] is True and s["error"] is None and s["dry_run"] is False
    assert re.fullmatch(r"\S+@\S+.*", s["by"]) and s["params"]["cluster"]["name"] == "hakit-test"
    assert [st["notebook_name"] for st in s["stages"]] == STAGES
    node_names = {n.name for n in lab.params.nodes}
    for st in s["stages"]:
        name = st["notebook_name"]
        for f in (f"{name}.ipynb", f"{name}.html", f"{name}/record.json"):
            assert (folder / f).is_file(), f"missing {f}"
        assert st["duration_s"] > 0 and st["outcomes"], name
        assert all(o["node"] in node_names | {"cluster"} for o in st["outcomes"]), name
        assert st["verification"]["ok"], f"{name}: {st['verification']}"
        for a in st["artifacts"]:
            assert (folder / a["path"]).is_file(), a
    by_name = {st["notebook_name"]: st for st in s["stages"]}
    bonding = by_name["01_bonding"]
    # The container layout on any kernel: plain links named like the bonds, nothing to enslave.
    assert {o["outcome"] for o in bonding["outcomes"]} == {"not applied"}
    assert all(o["detail"].startswith("not applied: no NICs to bond") for o in bonding["outcomes"])
    assert bonding["status"] == "unchanged"
    for name in ("02_authkey", "03_corosync_rings"):
        assert by_name[name]["status"] == "changed"
        assert {o["node"] for o in by_name[name]["outcomes"]} == node_names
    # The recorded corosync.conf is the file the nodes run.
    conf = (folder / "03_corosync_rings" / "corosync.conf").read_text()
    assert lab.ssh("vm-node2", ["cat", "/etc/corosync/corosync.conf"], check=True).stdout == conf
    # Every link in index.html leads to a file of the run; the HTML exports read without Jupyter.
    index = (folder / "index.html").read_text()
    hrefs = set(re.findall(r'(?:href|src)="([^"]+)"', index))
    assert {f"{n}.ipynb" for n in STAGES} | {f"{n}.html" for n in STAGES} <= hrefs
    assert [h for h in hrefs if not (folder / h).is_file()] == []
    assert "Stage 2: the corosync authkey" in (folder / "02_authkey.html").read_text()
    # Host keys: what the report says is pinned is what ssh-keygen reads from the lab's known_hosts.
    out = subprocess.run(["ssh-keygen", "-lf", str(lab.params.lab.known_hosts)], capture_output=True, text=True, check=True)
    assert {k["fingerprint"] for k in s["host_keys"]["keys"]} == set(re.findall(r"SHA256:\S+", out.stdout))
    # The secret scan read the key from the nodes and found nothing; an independent look agrees.
    scan = s["secret_scan"]
    assert scan["clean"] and "the corosync authkey" in scan["secrets"]
    assert any("vm-node1, vm-node2" in src for src in scan["sources"])
    assert files_holding_the_authkey(lab, [folder]) == []
    check_cluster(lab)


def test_the_cold_start_elects_a_dc_after_the_seeded_dc_deadtime(deployed):
    """Stage 03 seeded each fresh node's CIB with the fast profile's dc-deadtime: pacemaker read it
    (with its digest, no warning), waited that long for a DC, and stage 04 kept it as it was."""
    problems, figures = evidence.seeded_first_start(deployed.lab, deployed.first)
    print(f"\n{figures}")
    assert problems == []


def test_second_run_reports_unchanged_for_every_stage(deployed):
    second = hakit_run(str(deployed.params_file), stages="all", out_root=deployed.runs)
    s = summary(second)
    assert s["ok"] and [st["notebook_name"] for st in s["stages"]] == STAGES
    assert {st["notebook_name"]: st["status"] for st in s["stages"]} == {n: "unchanged" for n in STAGES}
    changed = [(st["notebook_name"], o["node"]) for st in s["stages"] for o in st["outcomes"] if o["outcome"] == "changed"]
    assert changed == []
    assert s["secret_scan"]["clean"]
    assert files_holding_the_authkey(deployed.lab, [deployed.first, second]) == []


def test_ring1_carries_membership_when_ring0_is_cut(deployed):
    lab = deployed.lab
    lab.link("vm-node1", "ring0", up=False)
    try:
        deadline = time.monotonic() + 20
        while True:
            cfg = lab.ssh("vm-node1", ["corosync-cfgtool", "-s"]).stdout
            if "disconnected" in cfg or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        links = parse_cfgtool_status(cfg)
        assert not links.link(0).peer(2).is_connected and links.link(1).peer(2).is_connected
        for n in ("vm-node1", "vm-node2"):
            q = parse_quorumtool_status(lab.ssh(n, ["corosync-quorumtool", "-s"]).stdout)
            assert q.quorate and q.member_names() == ("vm-node1", "vm-node2")
    finally:
        lab.link("vm-node1", "ring0", up=True)
    check_cluster(lab)  # both links connected again


def test_training_copies_step_through_as_a_dry_run(deployed, tmp_path):
    """What a trainee gets from `hakit prepare`: notebook 01 runs as is, draws the cluster, changes nothing."""
    import papermill as pm

    from hakit.prepare import prepare

    out = prepare(str(deployed.params_file), tmp_path / "training")
    done = pm.execute_notebook(str(out / "01_bonding.ipynb"), str(tmp_path / "01-done.ipynb"), cwd=str(out), progress_bar=False)
    outputs = [o for c in done.cells if c.cell_type == "code" for o in c.outputs]
    svg = [o for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert svg and "vm-node2" in svg[0]["data"]["image/svg+xml"]
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert printed.startswith("01 bonding: vm-node1: ") and not re.search(r"(?<!un)changed", printed), printed
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "not saved" in html and not (out / "01_bonding").exists(), "a trainee's run writes no record"
