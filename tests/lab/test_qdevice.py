"""The quorum device end to end, on a lab of its own (params/lab-qdevice.yaml): two nodes, a third host
running corosync-qnetd, built with `hakit run` (stages 00-06; notebook 03 runs stage 03q).

Proves on the nodes: the device's vote counts (`corosync-quorumtool -s` shows the Qdevice row, qnetd's
`corosync-qnetd-tool -lv` lists the cluster with both nodes over verified TLS), two_node is off and stage 04
set no fence delay; no byte of the PKCS#12 file copied between the nodes is in the run's records; a
second run of stages 03, 03q and 04 plans nothing; the qnetd host's loss leaves
quorum and the service alone (0 failed probes, nobody fenced); a node's loss is fenced, exactly that node,
and its failover is measured; a killed corosync either gets its node fenced or comes back by itself
(corosync-qdevice.service's restart starts it again) with the node rejoining unfenced, never two copies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit import notebook
from hakit.facts.corosync import parse_quorumtool_status
from hakit.facts.qnetd import parse_qnetd_list
from hakit.lab import Lab
from hakit.run import run as hakit_run
from hakit.stages.corosync import CorosyncStage
from hakit.stages.properties import PropertiesStage
from hakit.stages.qdevice import QdeviceStage

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def qlab(labq_params: Path, tmp_path_factory, start_lab) -> Lab:
    lab = start_lab(labq_params)
    lab.run_folder = hakit_run(str(labq_params), stages="all", out_root=tmp_path_factory.mktemp("runs-qdevice"),
                               html=False)
    yield lab
    lab.down()


def test_the_device_vote_counts_and_no_fence_delay(qlab: Lab) -> None:
    lab, params = qlab, qlab.params
    qd = params.quorum_device
    assert qd is not None and lab.qnetd_status()["state"] == "running"
    assert lab.status_dict(probe=False)["quorum_device"]["host"] == qd.host  # `lab status` shows it
    for n in params.nodes:
        q = parse_quorumtool_status(lab.ssh(n.name, ["corosync-quorumtool", "-s"]).stdout)
        assert q.quorate and not q.two_node, n.name
        assert q.qdevice is not None and q.qdevice.votes == 1, n.name
        assert (q.expected_votes, q.total_votes) == (3, 3), n.name
        assert all(m.qdevice and m.qdevice.startswith("A,V") for m in q.members), [m.qdevice for m in q.members]
        r = lab.ssh(n.name, ["corosync-cmapctl", "-g", "quorum.two_node"])
        assert r.returncode != 0, f"{n.name}: two_node is set: {r.stdout}"
    clusters = parse_qnetd_list(lab.ssh(qd.host, ["corosync-qnetd-tool", "-lv"], check=True).stdout)
    c = clusters[params.cluster.name]
    assert sorted(x.nodeid for x in c.clients) == sorted(n.nodeid for n in params.nodes)
    assert all(x.tls_verified and x.acked for x in c.clients), c.clients
    first = params.nodes[0].name
    cib = lab.ssh(first, ["cibadmin", "--query", "--scope", "resources"], check=True).stdout
    assert "stonith:fence_ipmilan" in cib or 'class="stonith"' in cib
    assert "pcmk_delay_base" not in cib


def test_no_pkcs12_material_in_the_run_records(qlab: Lab, tmp_path: Path) -> None:
    """The PKCS#12 file (cluster certificate and key) went node to node during stage 03q: nothing of it,
    in any encoding the scan knows, is in the run's records; a planted fragment would be found."""
    import base64

    from hakit import secretscan

    rep = secretscan.ScanReport()
    secrets = secretscan.qdevice_secrets(qlab.params, rep)
    assert len(secrets) == 1 and not rep.incomplete, (secrets, rep.incomplete)  # one file, the same on both nodes
    secretscan.scan_folder(Path(qlab.run_folder), secrets, rep)
    assert rep.files > 10 and rep.clean, [str(f) for f in rep.findings]
    (tmp_path / "leak.txt").write_text(base64.b64encode(secrets[0].value[64:160]).decode())
    planted = secretscan.ScanReport()
    secretscan.scan_folder(tmp_path, secrets, planted)
    assert not planted.clean


def test_a_second_run_changes_nothing(qlab: Lab) -> None:
    params = qlab.params
    hosts = notebook.connect_nodes(params)
    try:
        for stage in (CorosyncStage(params), QdeviceStage(params), PropertiesStage(params)):
            plan = stage.plan(stage.gather(hosts))
            assert plan.empty and not plan.blocked, f"{stage.name}:\n" + "\n".join(plan.program())
    finally:
        for h in hosts.values():
            h.close()


def test_qnetd_loss_node_crash_and_corosync_kill(qlab: Lab, tmp_path: Path) -> None:
    from hakit.failover.suite import FailoverSuite

    params = qlab.params
    first = params.nodes[0].name
    suite = FailoverSuite(params, "qnetd-loss,node-crash,corosync-kill", 1, dry_run=False, record_dir=str(tmp_path / "record"))
    df = suite.run()
    suite.save()
    print(df[["scenario", "downtime_s", "detect_s", "recover_s", "failed_probes", "probes", "fenced", "ended",
              "evidence", "problems"]].to_string(index=False))
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    assert by.loc["qnetd-loss", "failed_probes"] == 0 and by.loc["qnetd-loss", "fenced"] == "-"
    assert "quorate meanwhile: True" in by.loc["qnetd-loss", "evidence"]
    assert by.loc["node-crash", "fenced"] == first  # exactly the lost node: no race, no second fence
    assert by.loc["node-crash", "served_after"] == params.nodes[1].name
    print(f"node-crash with the quorum device (no fence delay): downtime {by.loc['node-crash', 'downtime_s']:.2f} s")
    # corosync-kill: systemd brings corosync back; the node is fenced first, or it rejoins unfenced and the
    # judge saw the evidence (corosync started after the kill, a respawned controller, the node back)
    ck = by.loc["corosync-kill"]
    assert ck["fenced"] == first or (ck["fenced"] == "-" and "back unfenced, controller respawned, at +" in ck["evidence"]
                                     and "corosync started again" in ck["evidence"]), ck.to_dict()
    assert ck["dual_vip_samples"] == 0 and ck["served_after"] in (first, params.nodes[1].name)
