"""Runbooks 4-6 on a fresh two-node lab: the article's cluster serves the VIP from the
preferred node, a re-run leaves the CIB epoch alone, rollback restores the CIB exactly,
a concurrent edit is refused, and bad values stop before any host is touched."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hakit import cib, notebook
from hakit.lab import Lab
from hakit.params import ParamsError
from hakit.run import RunFailed, run
from hakit.stages import cibstage, constraints, driver, properties, resources

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def cib_version(lab: Lab) -> cib.CibVersion:
    return cib.CibSnapshot.parse(lab.ssh("vm-node1", ["cibadmin", "--query"], check=True).stdout).version


def outcomes(folder: Path, stem: str) -> dict[str, str]:
    rec = json.loads((folder / stem / "record.json").read_text())
    return {o["node"]: o["outcome"] for o in rec["outcomes"]}


def edited(params_file: Path, tmp: Path, name: str, change: Callable[[dict], None]) -> Path:
    """A copy of the params file with ``change`` applied to its YAML data."""
    data = yaml.safe_load(params_file.read_text())
    change(data)
    out = tmp / name
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.fixture
def built(cluster2) -> tuple[Lab, Path]:
    return cluster2


def test_first_run_builds_the_article_cluster(built):
    lab, folder = built
    for stem in ("04_pacemaker_properties", "05_resources", "06_constraints"):
        assert outcomes(folder, stem)["cluster"] == "changed", stem
    assert set(outcomes(folder, "05_resources").values()) == {"changed"}  # Apache handed over on both nodes
    # The saved CIB copies are there, and the patch of stage 6 carries the three constraints.
    patch = (folder / "06_constraints" / "cib.patch.xml").read_text()
    for cid in ("httpd-with-vip", "preferred-node", "vip-needs-gateway"):
        assert f'id="{cid}"' in patch
    before = (folder / "04_pacemaker_properties" / "cib-before.xml").read_text()
    assert "stonith-enabled" not in before  # saved before the change
    # The lab fences: stage 4 put the credentials on both nodes, then one device per node in the CIB.
    assert outcomes(folder, "04_pacemaker_properties") == {"vm-node1": "changed", "vm-node2": "changed", "cluster": "changed"}
    patch4 = (folder / "04_pacemaker_properties" / "cib.patch.xml").read_text()
    for dev in ("fence-vm-node1", "fence-vm-node2"):
        assert f'id="{dev}"' in patch4 and f'id="{dev}-not-on-' in patch4
    assert "password" not in patch4.lower()


def test_vip_serves_apache_from_the_preferred_node(built):
    lab, _ = built
    params = lab.params
    page = constraints.http_get(f"http://{params.vip.address}/")
    assert page.status == 200 and page.node == "vm-node1", page
    assert constraints.http_get(f"http://{params.vip.address}/server-status").status == 403
    # Only the active node holds the VIP; Apache runs under the cluster there, nowhere else.
    vip = str(params.vip.address)
    holders = [n.name for n in params.nodes if f"inet {vip}/" in lab.ssh(n.name, ["ip", "-4", "-o", "addr"]).stdout]
    assert holders == ["vm-node1"]
    alive = ["sh", "-c", "kill -0 $(cat /run/apache2/apache2.pid)"]
    assert lab.ssh("vm-node1", alive).returncode == 0
    assert lab.ssh("vm-node2", alive).returncode != 0
    assert lab.ssh("vm-node2", ["systemctl", "is-enabled", "apache2"]).stdout.strip() == "disabled"
    # crmsh reads our XML back as the article's crm text.
    shown = lab.ssh("vm-node1", ["crm", "configure", "show"], check=True).stdout
    for line in (
        "primitive fence-vm-node1 stonith:fence_ipmilan",
        "location fence-vm-node1-not-on-vm-node1 fence-vm-node1 -inf: vm-node1",
        "stonith-enabled=true",
        "colocation httpd-with-vip inf: httpd vip",
        "location preferred-node vip 100: vm-node1",
        "clone cloned-ping-gateway ping-gateway",
    ):
        assert line in shown, shown
    assert re.search(r"location vip-needs-gateway vip \\\s*rule -inf: not_defined pingd or pingd lte 0", shown), shown


def test_rerun_changes_nothing_and_keeps_the_epoch(built, lab2_params, tmp_path):
    lab, _ = built
    v0 = cib_version(lab)
    folder = run(str(lab2_params), stages="4-6", out_root=tmp_path, html=False)
    for stem in ("04_pacemaker_properties", "05_resources", "06_constraints"):
        assert set(outcomes(folder, stem).values()) == {"unchanged"}, stem
        assert not (folder / stem / "cib.patch.xml").exists()
    assert cib_version(lab).config == v0.config


def test_rollback_restores_the_saved_cib_exactly(built, lab2_params, tmp_path):
    lab, _ = built
    params = notebook.load(lab2_params)
    changed = notebook.load(_nqp_stop(lab2_params, tmp_path))
    hosts = notebook.connect_nodes(changed)
    try:
        stage = properties.PropertiesStage(changed)
        plan = stage.plan(stage.gather(hosts))
        patch = cibstage.patch_of(plan)
        assert patch is not None and [op.describe() for op in plan.ops] == [patch.describe()]  # credentials in place
        assert patch.elements == ["set property no-quorum-policy"]
        stage.before_apply(hosts, plan)
        res = driver.apply(plan, hosts, dry_run=False, record_dir=tmp_path / "rec")
        assert res.outcome("cluster").outcome == "changed" and res.executed == plan.program()
        rec = patch.applied[-1]
        assert rec.changed and rec.before == tmp_path / "rec" / "cib-before.xml"
        assert cibstage.status(hosts[patch.via]).no_quorum_policy == "stop"
        proof = cib.rollback(hosts[patch.via], rec.before)
        assert "crm_diff against it is empty" in proof
        live = cib.query(hosts[patch.via])
        assert cib.same_configuration(rec.before.read_text(), live.xml)
        assert cib.config_diff(hosts[patch.via], rec.before.read_text(), live.xml) == ""
        assert cibstage.status(hosts[patch.via]).no_quorum_policy == params.pacemaker.no_quorum_policy
    finally:
        for h in hosts.values():
            h.close()


def _nqp_stop(params_file: Path, tmp: Path) -> Path:
    """The test params with pacemaker.no_quorum_policy: stop (one property differs)."""
    def change(d: dict) -> None:
        d.setdefault("pacemaker", {})["no_quorum_policy"] = "stop"

    return edited(params_file, tmp, "nqp-stop.yaml", change)


def test_concurrent_edit_between_plan_and_apply_is_refused(built, lab2_params, tmp_path):
    lab, _ = built
    changed = notebook.load(_nqp_stop(lab2_params, tmp_path))
    hosts = notebook.connect_nodes(changed)
    try:
        stage = properties.PropertiesStage(changed)
        plan = stage.plan(stage.gather(hosts))
        assert not plan.empty
        # Someone else edits the CIB after our plan.
        lab.ssh("vm-node2", ["crm_attribute", "--type", "crm_config", "--name", "cluster-recheck-interval",
                             "--update", "7min"], check=True)
        edited = cib_version(lab)
        with pytest.raises(driver.StageFailed, match="changed between plan and apply.*Nothing was changed") as err:
            driver.apply(plan, hosts, dry_run=False, record_dir=tmp_path / "rec")
        assert isinstance(err.value.cause, cib.ConcurrentEdit) and err.value.changed == []
        assert cib_version(lab).config == edited.config  # we wrote nothing
        assert cibstage.status(hosts["vm-node1"]).no_quorum_policy == "ignore"
    finally:
        lab.ssh("vm-node2", ["crm_attribute", "--type", "crm_config", "--name", "cluster-recheck-interval", "--delete"])
        for h in hosts.values():
            h.close()


def test_dry_run_shows_the_program_the_real_run_executes(built, lab2_params, tmp_path):
    """Drift Apache on one node and a property: the dry run's operations are the real run's, in order."""
    lab, _ = built
    params = notebook.load(lab2_params)
    changed = notebook.load(_nqp_stop(lab2_params, tmp_path))
    lab.ssh("vm-node2", ["systemctl", "enable", "-q", "apache2"], check=True)
    hosts = notebook.connect_nodes(params)
    try:
        for stage in (properties.PropertiesStage(changed), resources.ResourcesStage(params)):
            dry = driver.StageRun(stage, hosts, dry_run=True)
            dry.apply()
            assert dry.result is not None and dry.result.program, stage.name
            real = driver.StageRun(stage, hosts, dry_run=False, record_dir=str(tmp_path / cibstage.slug(stage.name)))
            real.apply()
            assert real.result is not None
            assert real.result.executed == [x for x in dry.result.program if not x.startswith("---")], stage.name
            again = driver.StageRun(stage, hosts, dry_run=True)
            again.apply()
            assert again.plan is not None and again.plan.ops == [], stage.name  # converged: nothing left
        assert lab.ssh("vm-node2", ["systemctl", "is-enabled", "apache2"]).stdout.strip() == "disabled"
        # Put the property back as the params have it.
        stage4 = properties.PropertiesStage(params)
        back = driver.StageRun(stage4, hosts, dry_run=False, record_dir=str(tmp_path / "back"))
        back.apply()
        assert cibstage.status(hosts["vm-node1"]).no_quorum_policy == params.pacemaker.no_quorum_policy
    finally:
        lab.ssh("vm-node2", ["systemctl", "disable", "-q", "apache2"])
        for h in hosts.values():
            h.close()


def _vip_outside(d: dict) -> None:
    d["vip"]["address"] = "192.0.2.100"


def _netmask_40(d: dict) -> None:
    d["networks"]["public"]["subnet"] = d["networks"]["public"]["subnet"].split("/")[0] + "/40"


@pytest.mark.parametrize(
    "edit,expect",
    [
        (_vip_outside, r"vip\.address 192\.0\.2\.100 is outside the subnet"),
        (_netmask_40, r"networks\.public\.subnet: .*/40"),
    ],
    ids=["vip-outside-public-subnet", "netmask-40"],
)
def test_bad_values_stop_before_any_host_is_touched(built, lab2_params, tmp_path, edit, expect):
    lab, _ = built
    v0 = cib_version(lab)
    bad = edited(lab2_params, tmp_path, "bad.yaml", edit)
    with pytest.raises(ParamsError, match=expect):
        run(str(bad), stages="4-6", out_root=tmp_path / "runs", html=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run folder: nothing ran
    assert cib_version(lab).config == v0.config


def _nic_bond9(d: dict) -> None:
    d["networks"]["public"]["bond"] = "bond9"


def test_unknown_nic_is_refused_on_the_node_before_any_change(built, lab2_params, tmp_path):
    lab, _ = built
    # Something stage 5 would put right, to see that it is left alone.
    lab.ssh("vm-node1", ["systemctl", "enable", "-q", "apache2"], check=True)
    try:
        v0 = cib_version(lab)
        bad = edited(lab2_params, tmp_path, "nic.yaml", _nic_bond9)
        with pytest.raises(RunFailed) as err:
            run(str(bad), stages="5", out_root=tmp_path / "runs", html=False)
        nb = next((tmp_path / "runs").glob("*/05_resources.ipynb")).read_text()
        assert "networks.public.bond 'bond9'" in nb and "nothing will be changed" in nb, str(err.value)
        assert cib_version(lab).config == v0.config
        assert lab.ssh("vm-node1", ["systemctl", "is-enabled", "apache2"]).stdout.strip() == "enabled"
    finally:
        lab.ssh("vm-node1", ["systemctl", "disable", "-q", "apache2"], check=True)
