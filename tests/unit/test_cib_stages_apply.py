"""Stages 4-6 under the stage contract, on FakeRunners answering with output captured from the lab.

Per stage: the plan for a fresh, a converged and a drifted cluster; that `driver.apply` sends
exactly the planned operations in order (credentials and Apache before the one
``cibadmin --patch``); that a dry run changes nothing; that a failure mid-apply names what
was already changed; and that the BMC password shows nowhere but in the write that carries it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from hakit import cib, fencing
from hakit.failover.profile import use_profile
from hakit.lab import bmc
from hakit.ops import CLUSTER, Barrier, Command, Systemctl, WriteFile, WriteSecret
from hakit.params import Params
from hakit.profiles import FAST
from hakit.render.cib import properties as render_properties
from hakit.runner import FakeRunner, Result
from hakit.stages import cibstage, corosync, driver
from hakit.stages.constraints import ConstraintsStage
from hakit.stages.properties import PropertiesStage
from hakit.stages.resources import INDEX, STATUS_CONF, ResourcesStage, index_page, status_conf

CAP = Path(__file__).parent / "fixtures" / "captured"
STAGE3 = (CAP / "cib-after-stage3.xml").read_text()
STAGE6 = (CAP / "cib-after-stage6.xml").read_text()
MON_FRESH = (CAP / "crm_mon-2node-online.xml").read_text()
MON_RUNNING = (CAP / "crm_mon-2node-resources.xml").read_text()
PASSWORD = "pw-Zq8-never-shown"
WORKDIR = "/run/hakit-cib.Ab12Cd"
# What a dry run and a preview may send: reads, and the private temp dir of the CIB checks.
READ_ONLY = [r"^cibadmin --query$", r"^crm_mon ", r"^stat -c", r"^for u in apache2", r"^ip -o link show",
             r"^mktemp -d /run/hakit-cib\.", r"^crm_verify ", r"^crm_diff ", r"^crm_simulate ",
             rf"^rm -rf -- {WORKDIR}$",
             r"^mkdir -p -m 0755 /run/hakit && ", r"^grep -qF .* /run/hakit/lock"]  # the run lock, taken and released


class Cluster:
    """Two fake nodes sharing one CIB: ``cibadmin --patch`` makes the target the CIB wrote live."""

    def __init__(self, params: Params, cib_xml: str, crm_mon: str = MON_FRESH, verify_rc: int = 0) -> None:
        self.cib = cib_xml
        self.patches = 0
        self.hosts: dict[str, FakeRunner] = {}
        for n in params.nodes:
            h = FakeRunner(n.name, strict=True)
            h.answer(r"^cibadmin --query$", lambda _c: Result(self.cib, "", 0))
            h.answer(r"^cibadmin --patch", self._patch(h))
            h.answer(r"^crm_mon -1 --output-as=xml$", crm_mon)
            h.answer(r"^mktemp -d /run/hakit-cib\.", WORKDIR + "\n")
            h.answer(r"^crm_verify --verbose --xml-file", Result("", "" if not verify_rc else "error: bad", verify_rc))
            h.answer(r"^crm_verify -L", "")
            h.answer(r"^crm_diff ", Result("<diff/>\n", "", 1))
            h.answer(r"^crm_simulate ", "Transition Summary:\n  * Start      vip     ( vm-node1 )\n")
            h.answer(r"^rm -rf -- ", "")
            h.answer(r"^stat -c ", self._stat(h))
            h.answer(r"^for u in apache2", "apache2 active enabled\n")
            h.answer(r"^ip -o link show dev", "nic=yes\nmod=off\nconf=off\n")
            h.answer(r"^(install -d|a2enconf|a2enmod|apache2ctl|if \[ -s|systemctl|crm_resource|chown|mv) ", "")
            self.hosts[n.name] = h

    def _patch(self, h: FakeRunner):
        def answer(_cmd: str) -> Result:
            self.patches += 1
            self.cib = h.files[f"{WORKDIR}/target.xml"].decode()
            return Result("", "", 0)
        return answer

    @staticmethod
    def _stat(h: FakeRunner):
        def answer(cmd: str) -> Result:
            path = cmd.split()[-1]
            if path == fencing.CRED_DIR:
                ok = any(p.startswith(path + "/") for p in h.files)
                return Result("root:root 700 directory\n", "", 0) if ok else Result("", "No such file", 1)
            if path not in h.files:
                return Result("", "No such file", 1)
            mode = "755" if path == fencing.WRAPPER else "600"
            return Result(f"root:root {mode} regular file\n", "", 0)
        return answer

    def sent_everywhere(self) -> list[str]:
        return [f"{n}: {s.kind} {s.what}" for n, h in self.hosts.items() for s in h.sent]


@pytest.fixture
def fenced(lab: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Params:
    """params/lab.yaml (fencing on) with the lab's BMC password in a file of this test."""
    pw = tmp_path / "bmc.password"
    pw.write_text(PASSWORD + "\n")
    monkeypatch.setattr(bmc, "password_file", lambda _d: pw)
    return lab


def converged_stage4_cib(params: Params) -> str:
    return cib.plan(render_properties(params, FAST), cib.CibSnapshot.parse(STAGE6)).wanted_xml


def after_stage4(params: Params) -> str:
    """The fresh cluster's CIB with stage 4 applied: no resources yet."""
    return cib.plan(render_properties(params, FAST), cib.CibSnapshot.parse(STAGE3)).wanted_xml


def install_creds(c: Cluster, params: Params) -> None:
    for h in c.hosts.values():
        h.files[fencing.WRAPPER] = fencing.WRAPPER_SCRIPT.encode()
        for d in fencing.devices(params):
            h.files[d.credential_path] = PASSWORD.encode()


def apache_ready(c: Cluster, params: Params) -> None:
    for name, h in c.hosts.items():
        h.script = [(p, a) for p, a in h.script if p not in (r"^for u in apache2", r"^ip -o link show dev")]
        h.answer(r"^for u in apache2", "apache2 inactive disabled\n")
        h.answer(r"^ip -o link show dev", "nic=yes\nmod=on\nconf=on\n")
        h.files[STATUS_CONF] = status_conf().encode()
        h.files[INDEX] = index_page(params, name).encode()


def no_password_in(*texts: str) -> None:
    for t in texts:
        assert PASSWORD not in t
        assert hashlib.sha256(PASSWORD.encode()).hexdigest()[:12] not in t


def kinds(plan) -> list[tuple[str, str]]:
    return [(o.node, type(o).__name__) for o in plan.ops]


# ---------------------------------------------------------------- stage 4


def test_stage4_fresh_plans_credentials_then_a_barrier_then_one_patch(fenced: Params) -> None:
    c = Cluster(fenced, STAGE3)
    stage = PropertiesStage(fenced)
    p = stage.plan(stage.gather(c.hosts))
    per_node = ["Command", "WriteFile", "WriteSecret", "WriteSecret"]
    assert kinds(p) == ([("vm-node1", k) for k in per_node] + [("vm-node2", k) for k in per_node]
                        + [(CLUSTER, "Barrier"), (CLUSTER, "CibPatch")])
    barrier = p.ops[8]
    assert isinstance(barrier, Barrier) and "credentials on every node before the CIB names the devices" in barrier.text
    secret = p.ops[2]
    assert isinstance(secret, WriteSecret) and secret.mode == 0o600
    assert "password of vm-node1's BMC 10.77.0.254:6231, from " in secret.describe()
    assert "sha256" not in secret.describe()  # a password's digest would give it away
    patch = cibstage.patch_of(p)
    assert patch is not None and patch.via == "vm-node1"
    assert patch.describe().startswith("cibadmin --patch through vm-node1 against CIB configuration 0.7: ")
    assert "add primitive fence-vm-node1" in patch.describe() and "set property stonith-enabled" in patch.describe()
    assert p.no_change == {} and not p.blocked
    no_password_in(str(p), p._repr_html_(), json.dumps([o.to_dict() for o in p.ops]), repr(p.ops))


def test_stage4_converged_plans_nothing(fenced: Params) -> None:
    c = Cluster(fenced, converged_stage4_cib(fenced))
    install_creds(c, fenced)
    stage = PropertiesStage(fenced)
    facts = stage.gather(c.hosts)
    p = stage.plan(facts)
    assert p.ops == [] and p.empty
    assert set(p.no_change) == {"vm-node1", "vm-node2", CLUSTER}
    res = driver.apply(p, c.hosts, dry_run=False)
    assert {o.node: o.outcome for o in res.outcomes} == {"vm-node1": "unchanged", "vm-node2": "unchanged",
                                                          CLUSTER: "unchanged"}
    assert c.patches == 0
    no_password_in(repr(facts.credentials), facts._repr_html_())


def test_stage4_drifted_password_rewrites_one_file_and_retries_the_failed_device(fenced: Params) -> None:
    failed = MON_RUNNING.replace(
        "  </resources>",
        '    <resource id="fence-vm-node2" resource_agent="stonith:fence_ipmilan" role="Stopped" active="false" '
        'orphaned="false" blocked="false" managed="true" failed="true" failure_ignored="false" nodes_running_on="0"/>\n'
        "  </resources>")
    c = Cluster(fenced, converged_stage4_cib(fenced), crm_mon=failed)
    install_creds(c, fenced)
    dev2 = next(d for d in fencing.devices(fenced) if d.node == "vm-node2")
    c.hosts["vm-node1"].files[dev2.credential_path] = b"an-old-password"
    stage = PropertiesStage(fenced)
    p = stage.plan(stage.gather(c.hosts))
    assert kinds(p) == [("vm-node1", "WriteSecret"), (CLUSTER, "Barrier"), ("vm-node1", "Command")]
    assert p.ops[0].reason.startswith("content differs")
    cleanup = p.ops[2]
    assert isinstance(cleanup, Command) and cleanup.command == "crm_resource --cleanup --resource fence-vm-node2"
    assert p.no_change["vm-node2"] == "fencing credentials in place (root-only)" and CLUSTER in p.no_change
    driver.apply(p, c.hosts, dry_run=False)
    assert c.hosts["vm-node1"].files[dev2.credential_path] == PASSWORD.encode()
    assert c.hosts["vm-node1"].changing(READ_ONLY)[-1].what == "crm_resource --cleanup --resource fence-vm-node2"


def test_stage4_apply_sends_exactly_the_plan_credentials_before_the_patch(fenced: Params, tmp_path: Path) -> None:
    c = Cluster(fenced, STAGE3)
    stage = PropertiesStage(fenced)
    p = stage.plan(stage.gather(c.hosts))
    for h in c.hosts.values():
        h.sent.clear()
    stage.before_apply(c.hosts, p)
    res = driver.apply(p, c.hosts, dry_run=False, record_dir=tmp_path, parallel=False)
    assert res.executed == res.program[:8] + res.program[9:]  # every op, the barrier aside, in order
    assert c.patches == 1
    creds = [d.credential_path for d in fencing.devices(fenced)]
    for name, h in c.hosts.items():
        changed = [f"{s.kind} {s.what}" for s in h.changing(READ_ONLY)]
        want = [f"run install -d -o root -g root -m 0700 {fencing.CRED_DIR}", f"write {fencing.WRAPPER}",
                *(f"write {x}" for x in creds)]
        assert [x for x in changed if not x.startswith(f"write {WORKDIR}")] == want + (
            ["run cibadmin --patch --xml-file /run/hakit-cib.Ab12Cd/patch.xml"] if name == "vm-node1" else [])
        assert [w.sha256 for w in h.writes if w.what in creds] == [hashlib.sha256(PASSWORD.encode()).hexdigest()] * 2
        assert [w.mode for w in h.writes if w.what in creds] == [0o600, 0o600]
        assert all(PASSWORD not in cmd for cmd in h.commands)
    assert {o.node: o.outcome for o in res.outcomes} == {"vm-node1": "changed", "vm-node2": "changed",
                                                          CLUSTER: "changed"}
    arts = stage.artifacts(p)
    assert set(arts) == {"crm.txt", "cib-before.xml", "cib-after.xml", "cib.patch.xml"}
    assert arts["cib-before.xml"] == STAGE3 and "fence-vm-node1" in str(arts["cib-after.xml"])
    assert "cib.rollback(hosts['vm-node1']" in stage.undo_hint(p)
    no_password_in(str(res), json.dumps(res.program + res.executed), *(str(v) for v in arts.values()))


def test_stage4_dry_run_changes_nothing(fenced: Params) -> None:
    c = Cluster(fenced, STAGE3)
    run = driver.StageRun(PropertiesStage(fenced), c.hosts, dry_run=True)
    run.gather()
    run.make_plan()
    pv = run.stage.preview(c.hosts, run.facts)  # the notebook shows it in a dry run too
    res = run.apply()
    assert pv.verify_ok and "Start      vip" in pv.transition
    assert res.dry_run and {o.outcome for o in res.outcomes} == {"not applied"}
    for h in c.hosts.values():
        assert [s for s in h.changing(READ_ONLY) if not s.what.startswith(WORKDIR + "/")] == []
    assert c.patches == 0
    # crm_simulate keeps a working copy while it runs: in the private dir, not pacemaker's CIB
    # directory (where it goes by default, as shadow.<pid>: seen on a lab node).
    (sim,) = [cmd for h in c.hosts.values() for cmd in h.commands if cmd.startswith("crm_simulate ")]
    assert f" --save-output {WORKDIR}/" in sim


def test_stage4_failed_credential_write_stops_before_the_cib(fenced: Params) -> None:
    c = Cluster(fenced, STAGE3)
    dev2 = next(d for d in fencing.devices(fenced) if d.node == "vm-node2")
    c.hosts["vm-node2"].fail_on.append(f"write {re.escape(dev2.credential_path)}")
    stage = PropertiesStage(fenced)
    p = stage.plan(stage.gather(c.hosts))
    with pytest.raises(driver.StageFailed) as err:
        driver.apply(p, c.hosts, dry_run=False, parallel=False)
    assert err.value.node == "vm-node2" and c.patches == 0
    assert err.value.changed == [f"vm-node1: {o.describe()}" for o in p.ops_for("vm-node1")] + [
        f"vm-node2: {o.describe()}" for o in p.ops_for("vm-node2")[:3]]
    no_password_in(str(err.value))


def test_stage4_without_fencing_has_only_the_cib_row(article: Params) -> None:
    c = Cluster(article, STAGE3)
    stage = PropertiesStage(article)
    p = stage.plan(stage.gather(c.hosts))
    assert kinds(p) == [(CLUSTER, "CibPatch")] and p.nodes() == [CLUSTER]
    assert not any(s.what.startswith("stat") for h in c.hosts.values() for s in h.sent)


# ---------------------------------------------------------------- stage 5


def test_stage5_fresh_plans_apache_as_today_then_the_patch(lab: Params) -> None:
    c = Cluster(lab, after_stage4(lab))
    stage = ResourcesStage(lab)
    p = stage.plan(stage.gather(c.hosts))
    assert [o.action for o in p.ops_for("vm-node1")] == [
        f"write {STATUS_CONF}", "a2enconf hakit-status", "a2enmod status", f"write {INDEX}", "apache2ctl configtest",
        "apache2ctl graceful where the cluster runs Apache", "systemctl disable apache2", "systemctl stop apache2"]
    configtest = p.ops_for("vm-node1")[4]
    assert isinstance(configtest, Command) and not configtest.mutates
    stop = p.ops_for("vm-node1")[7]
    assert isinstance(stop, Systemctl) and stop.timeout == 120
    index = p.ops_for("vm-node2")[3]
    assert isinstance(index, WriteFile) and b"vm-node2" in index.content
    assert kinds(p)[-2:] == [(CLUSTER, "Barrier"), (CLUSTER, "CibPatch")]
    assert cibstage.patch_of(p).elements == [  # type: ignore[union-attr]
        "add primitive vip", "add primitive httpd", "add clone cloned-ping-gateway"]


def test_stage5_converged_and_one_node_drifted(lab: Params) -> None:
    c = Cluster(lab, STAGE6, crm_mon=MON_RUNNING)
    apache_ready(c, lab)
    stage = ResourcesStage(lab)
    p = stage.plan(stage.gather(c.hosts))
    assert p.ops == [] and set(p.no_change) == {"vm-node1", "vm-node2", CLUSTER}
    c.hosts["vm-node2"].files[INDEX] = b"<p>It works!</p>"
    p = stage.plan(stage.gather(c.hosts))
    assert [o.describe() for o in p.ops if not isinstance(o, Barrier)] == [
        f"write {INDEX} sha256 {hashlib.sha256(index_page(lab, 'vm-node2').encode()).hexdigest()[:12]}… root:root 0644"]
    driver.apply(p, c.hosts, dry_run=False)
    assert c.hosts["vm-node2"].files[INDEX] == index_page(lab, "vm-node2").encode() and c.patches == 0


def test_stage5_missing_nic_blocks_before_anything_runs(lab: Params) -> None:
    c = Cluster(lab, after_stage4(lab))
    h2 = c.hosts["vm-node2"]
    h2.script.insert(0, (r"^ip -o link show dev", "nic=no\nmod=off\nconf=off\n"))
    run = driver.StageRun(ResourcesStage(lab), c.hosts, dry_run=False)
    p = run.make_plan()
    assert p.ops == [] and "networks.public.bond 'bond1'" in p.blocked["vm-node2"]
    assert "nothing will be changed" in p.blocked["vm-node2"]
    with pytest.raises(driver.StageBlocked, match="vm-node2: networks.public.bond 'bond1'"):
        run.apply()
    assert [s for h in c.hosts.values() for s in h.changing(READ_ONLY)] == []


def test_stage5_patch_failure_names_what_was_changed(lab: Params, tmp_path: Path) -> None:
    c = Cluster(lab, after_stage4(lab))
    c.hosts["vm-node1"].fail_on.append(r"^cibadmin --patch")
    stage = ResourcesStage(lab)
    p = stage.plan(stage.gather(c.hosts))
    with pytest.raises(driver.StageFailed) as err:
        driver.apply(p, c.hosts, dry_run=False, record_dir=tmp_path)
    e = err.value
    assert e.node == CLUSTER and isinstance(e.cause, cib.CibError) and "cibadmin --patch failed" in str(e)
    assert len(e.changed) == 14  # 7 changing steps on each node (configtest is a check)
    assert "vm-node1: systemctl stop apache2" in e.changed and "vm-node2: systemctl stop apache2" in e.changed
    assert not any(x.startswith(CLUSTER) for x in e.changed)
    assert (tmp_path / "cib-before.xml").exists()  # saved before the attempt, for rollback


def test_stage5_rejected_cib_stops_before_apache_is_touched(lab: Params) -> None:
    c = Cluster(lab, after_stage4(lab), verify_rc=78)
    run = driver.StageRun(ResourcesStage(lab), c.hosts, dry_run=False)
    with pytest.raises(cib.CibError, match="crm_verify rejected the wanted CIB; nothing was applied") as e:
        run.apply()
    assert "(checked on vm-node1, exit 78; fix the params" in str(e.value)
    assert (e.value.node, e.value.exit_code) == ("vm-node1", 78)  # error.json names where and what failed
    assert re.fullmatch(r"crm_verify --verbose --xml-file /run/hakit-cib\.\w+/wanted\.xml", e.value.command or "")
    for h in c.hosts.values():
        assert [s for s in h.changing(READ_ONLY) if not s.what.startswith(WORKDIR + "/")] == []


# ---------------------------------------------------------------- stage 6


def test_stage6_plans_one_patch_and_nothing_when_converged(lab: Params, tmp_path: Path) -> None:
    fresh = re.sub(r"<constraints>.*</constraints>", "<constraints/>", STAGE6, flags=re.S)  # stage 5 done
    assert fresh != STAGE6
    c = Cluster(lab, fresh, crm_mon=MON_RUNNING)
    stage = ConstraintsStage(lab)
    p = stage.plan(stage.gather(c.hosts))
    assert kinds(p) == [(CLUSTER, "CibPatch")]
    assert p.program() == ["cluster  cibadmin --patch through vm-node1 against CIB configuration 0.13: "
                           "add colocation httpd-with-vip; add location preferred-node; add location vip-needs-gateway"]
    res = driver.apply(p, c.hosts, dry_run=False, record_dir=tmp_path)
    assert res.executed == p.program() and c.patches == 1
    again = stage.plan(stage.gather(c.hosts))
    assert again.ops == [] and "CIB version 0.14.0 kept" in again.no_change[CLUSTER]


def test_stage6_concurrent_edit_is_refused_and_nothing_sent(lab: Params, tmp_path: Path) -> None:
    fresh = re.sub(r"<constraints>.*</constraints>", "<constraints/>", STAGE6, flags=re.S)
    c = Cluster(lab, fresh)
    stage = ConstraintsStage(lab)
    p = stage.plan(stage.gather(c.hosts))
    c.cib = fresh.replace('epoch="13"', 'epoch="14"').replace('value="ignore"', 'value="stop"')
    with pytest.raises(driver.StageFailed) as err:
        driver.apply(p, c.hosts, dry_run=False, record_dir=tmp_path)
    assert isinstance(err.value.cause, cib.ConcurrentEdit) and err.value.changed == []
    assert "changed between plan and apply" in str(err.value) and "nothing was changed" in str(err.value)
    assert c.patches == 0


# ---------------------------------------------------------------- switching profiles


def test_switching_profiles_also_patches_the_profiles_dc_deadtime(article: Params, tmp_path: Path) -> None:
    """`use_profile` (the failover bench and suite) goes through stages 3, 4 and 5: on the captured cluster,
    built before the fast profile set dc-deadtime and already on fast timing, only stage 4's property changes."""
    c = Cluster(article, STAGE6, crm_mon=MON_RUNNING)
    for h in c.hosts.values():
        h.files[corosync.CONF] = corosync.desired_conf(article, FAST).encode()
        h.answer(r"^for u in corosync pacemaker;", "corosync active enabled\npacemaker active enabled\n")
        h.answer(r"^test -s /etc/corosync/authkey", "key\n")
        h.answer(r"^corosync-cmapctl runtime\.config\.totem\.$",
                 "runtime.config.totem.consensus (u32) = 1200\nruntime.config.totem.token (u32) = 1000\n")
        h.answer(r"^if test -d /var/lib/pacemaker/cib;", "dir\ncib.xml\ncib.xml.sig\n")
    done = use_profile(c.hosts, article, "fast", tmp_path)
    assert len(done) == 1 and done[0].startswith("CIB: fast properties (cluster: changed (patched CIB 0.13.40 -> 0.14.0; "
                                                 "set property dc-deadtime"), done
    assert c.patches == 1 and cib.managed_missing(render_properties(article, FAST), c.cib) == []
    assert '<nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="5s"' in c.cib
    assert use_profile(c.hosts, article, "fast", tmp_path) == [] and c.patches == 1  # already so: nothing sent


# ---------------------------------------------------------------- the cloned-apache layout


def _cloned(params: Params) -> Params:
    return params.model_copy(update={"pacemaker": params.pacemaker.model_copy(update={"layout": "cloned-apache"})})


def test_stage5_and_6_cloned_plan_the_clone_and_the_turned_colocation(lab: Params, tmp_path: Path) -> None:
    params = _cloned(lab)
    c = Cluster(params, after_stage4(params))
    stage = ResourcesStage(params)
    p = stage.plan(stage.gather(c.hosts))
    assert cibstage.patch_of(p).elements == [  # type: ignore[union-attr]
        "add primitive vip", "add clone httpd-clone", "add clone cloned-ping-gateway"]
    driver.apply(p, c.hosts, dry_run=False, record_dir=tmp_path / "05")
    assert c.patches == 1 and '<clone id="httpd-clone">' in c.cib and '<primitive id="httpd"' in c.cib
    apache_ready(c, params)
    assert stage.plan(stage.gather(c.hosts)).ops == []  # converged: a second run changes nothing
    six = ConstraintsStage(params)
    p = six.plan(six.gather(c.hosts))
    assert p.program() == [f"cluster  cibadmin --patch through vm-node1 against CIB configuration {_conf(c.cib)}: "
                           "add colocation vip-with-httpd; add location preferred-node; add location vip-needs-gateway"]


def _conf(xml: str) -> str:
    v = cib.CibSnapshot.parse(xml).version
    return f"{v.admin_epoch}.{v.epoch}"


def test_cloned_layout_on_an_article_cluster_is_refused_naming_the_id(lab: Params) -> None:
    """Switching a built article cluster to the clone is not planned as an edit: the CIB already holds
    primitive httpd at the top of <resources>, and the stage says so before anything is sent."""
    params = _cloned(lab)
    c = Cluster(params, STAGE6, crm_mon=MON_RUNNING)
    apache_ready(c, params)
    stage = ResourcesStage(params)
    with pytest.raises(cib.CibConflict, match="clone httpd-clone: id\\(s\\) .*'httpd'.* already exist"):
        stage.plan(stage.gather(c.hosts))
    assert c.patches == 0 and [s for h in c.hosts.values() for s in h.changing(READ_ONLY)] == []
