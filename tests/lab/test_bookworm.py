"""Debian 12 (bookworm, oldstable) lab nodes: stages 01-06 headless on pacemaker 2.1 / corosync 3.1.7 / crmsh 4.4.

The other labs run Debian 13 (the current stable); this module keeps the release many existing clusters
still run green.

One fresh bookworm lab per module (params/lab-bookworm.yaml with this run's lab id and subnets),
deployed once with `hakit run`; the tests read the record and the live cluster: every stage
verified, the VIP serves the preferred node, both fence devices run (each away from the node
it powers off), pacemaker 2.1 itself fences a node that loses power, and a second run of the
CIB stages changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import evidence
import pytest

from hakit.facts.pacemaker import ClusterStatus, parse_crm_mon
from hakit.failover.runner import run_suite
from hakit.failover.scenarios import SCENARIOS
from hakit.lab import Lab
from hakit.run import run as hakit_run

pytestmark = pytest.mark.lab

@dataclass
class Deployed:
    lab: Lab
    params_file: Path
    folder: Path  # the run folder of the deployment
    runs: Path
    deploy_s: float


def _status(lab: Lab, node: str = "vm-node1") -> ClusterStatus:
    return parse_crm_mon(lab.ssh(node, ["crm_mon", "-1", "--output-as=xml"], check=True).stdout)


def _get(url: str) -> tuple[int, str]:
    """HTTP GET from this machine (the client's view), no proxy."""
    r = subprocess.run(["curl", "-s", "--noproxy", "*", "-m", "5", "-w", "\n%{http_code}", url],
                       capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.fixture(scope="module")
def deployed(_labx_session: Lab, labx_params: Path, tmp_path_factory) -> Deployed:
    """A fresh bookworm lab (its own lab id and subnets per HAKIT_TEST_SLOT, see conftest), deployed once."""
    lab = _labx_session
    lab.down()  # a fresh cluster: nothing left from an earlier session
    lab.up()
    runs = tmp_path_factory.mktemp("runs-bookworm")
    t0 = time.monotonic()
    folder = hakit_run(str(labx_params), stages="1-6", out_root=runs, html=False)
    yield Deployed(lab, labx_params, folder, runs, time.monotonic() - t0)
    lab.down()  # the lab is needed by no other module


def test_the_nodes_run_debian_12_with_pacemaker_2_1(deployed):
    for n in deployed.lab.params.nodes:
        os_release = deployed.lab.ssh(n.name, ["cat", "/etc/os-release"], check=True).stdout
        assert "VERSION_CODENAME=bookworm" in os_release, n.name
        versions = deployed.lab.ssh(
            n.name, ["dpkg-query", "-W", "-f=${Package} ${Version}\\n", "pacemaker", "corosync", "crmsh"], check=True
        ).stdout.split("\n")
        got = dict(line.split(" ", 1) for line in versions if line)
        assert got["pacemaker"].startswith("2.1.") and got["corosync"].startswith("3.1.") and got["crmsh"].startswith("4.4")
    assert _status(deployed.lab).nodes["vm-node1"].online


def test_every_stage_applied_and_verified(deployed):
    s = json.loads((deployed.folder / "summary.json").read_text())
    assert s["ok"] is True and s["error"] is None, s["error"]
    names = [st["notebook_name"] for st in s["stages"]]
    assert names == ["01_bonding", "02_authkey", "03_corosync_rings", "04_pacemaker_properties", "05_resources",
                     "06_constraints"]
    for st in s["stages"]:
        assert st["verification"]["ok"], f"{st['notebook_name']}: {st['verification']}"
    assert {st["notebook_name"]: st["status"] for st in s["stages"][1:]} == {n: "changed" for n in names[1:]}
    timings = ", ".join(f"{st['notebook_name'][:2]} {st['duration_s']:.1f} s" for st in s["stages"])
    print(f"\nFIGURES bookworm deploy (stages 01-06): {deployed.deploy_s:.1f} s; {timings}")


def test_pacemaker_2_1_reads_the_seeded_cib_and_elects_after_its_dc_deadtime(deployed):
    """cibadmin --empty (schema pacemaker-3.9 here) and CIB_file on the live path work on 2.1.5 too: both
    nodes seeded the same CIB, joined cleanly, and the first election waited dc-deadtime, not 20 s."""
    problems, figures = evidence.seeded_first_start(deployed.lab, deployed.folder)
    print(f"\n{figures} (bookworm)")
    assert problems == []


def test_crm_verify_is_clean_on_pacemaker_2_1(deployed):
    r = deployed.lab.ssh("vm-node1", ["crm_verify", "-L", "--verbose"])
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", (r.stdout, r.stderr)


def test_the_vip_serves_the_preferred_node_and_hides_server_status(deployed):
    vip = deployed.lab.params.vip.address
    code, body = _get(f"http://{vip}/")
    assert code == 200 and '<b id="served-by">vm-node1</b>' in body, (code, body[:200])
    assert _get(f"http://{vip}/server-status")[0] == 403
    st = _status(deployed.lab, "vm-node2")  # the peer sees the same placement
    assert st.where("vip") == st.where("httpd") == "vm-node1"
    assert st.running_on("ping-gateway") == ["vm-node1", "vm-node2"]


def test_fence_devices_run_away_from_the_node_they_power_off(deployed):
    st = _status(deployed.lab)
    assert st.stonith_enabled is True
    for n in ("vm-node1", "vm-node2"):
        (inst,) = st.instances(f"fence-{n}")
        assert inst.agent == "stonith:fence_ipmilan" and inst.active and not inst.failed
        assert inst.nodes == (("vm-node2",) if n == "vm-node1" else ("vm-node1",))


@pytest.mark.parametrize("name", ["node-crash", "apache-crash"])
def test_pacemaker_2_1_passes_the_failover_scenario(deployed, name):
    """The suite's own scenario and judging (client probe, ARP watch, fence history), one trial,
    watched until the service is back on the preferred node."""
    lab = deployed.lab
    params = lab.params
    df, _ = run_suite(lab, params, [SCENARIOS[name]], 1, params.cluster.profile, progress=print)
    row = df.iloc[0]
    assert row["ok"], row["problems"]
    assert (row["served_before"], row["served_after"]) == ("vm-node1", "vm-node2")
    assert row["ended"] == "back on vm-node1" and row["dual_vip_samples"] == 0
    if name == "node-crash":
        assert row["fenced"] == "vm-node1"  # pacemaker 2.1 powered off the crashed node before moving the service
    else:
        assert row["httpd_failcount"] == 1 and row["fenced"] in ("", "-")
    print(f"\nFIGURES bookworm {name}: downtime {row['downtime_s']:.2f} s, failback {row['failback_s']:.2f} s, "
          f"incident {row['incident_s']:.2f} s")


def test_a_second_run_of_the_cib_stages_changes_nothing(deployed):
    second = hakit_run(str(deployed.params_file), stages="4-6", out_root=deployed.runs, html=False)
    s = json.loads((second / "summary.json").read_text())
    assert s["ok"], s["error"]
    assert {st["notebook_name"]: st["status"] for st in s["stages"]} == {
        "04_pacemaker_properties": "unchanged", "05_resources": "unchanged", "06_constraints": "unchanged"}
