"""Stage 00 on captured probe output of real lab nodes (Debian 13 bare and converged, Debian 12 ready):
the preflight verdicts, the plan, and what a dry and a real run send (FakeRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit.params import load_params
from hakit.runner import FakeRunner
from hakit.stages import driver
from hakit.stages import packages as stage

REPO = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "captured" / "stage00"


def load_capture(name: str) -> str:
    """A stage 00 capture without its '# ' header (this module cannot import tests/unit/conftest.py)."""
    return (CAPTURED / name).read_text().partition("# ---\n")[2]


TRIXIE = load_params(REPO / "params" / "lab-trixie.yaml")
BOOKWORM = load_params(REPO / "params" / "lab-bookworm.yaml")
NODES = ("vm-node1", "vm-node2")


def capture(kind: str, node: str, release: str = "trixie") -> str:
    return load_capture(f"{release}-{kind}-{node}.txt")


def facts(outputs: dict[str, str], params=TRIXIE) -> stage.PackagesFacts:
    nodes = {n: stage.parse(n, out, params) for n, out in outputs.items()}
    return stage.PackagesFacts(nodes, stage.preflight(params, nodes))


def bare() -> dict[str, str]:
    return {n: capture("bare", n) for n in NODES}


def failed(f: stage.PackagesFacts) -> list[tuple[str, str]]:
    return [(c.node, c.check) for c in f.checks if not c.ok and c.blocking]


def test_bare_nodes_pass_preflight_and_plan_the_install() -> None:
    f = facts(bare())
    n1 = f["vm-node1"]
    assert (n1.os_id, n1.version_id, n1.codename, n1.uname) == ("debian", "13", "trixie", "vm-node1")
    assert n1.missing == list(stage.pk.cluster_packages("trixie", "fence_ipmilan"))
    assert len(n1.apt.steps) == 117 and n1.apt.error is None  # apt's own count on the lab node
    assert failed(f) == []
    warned = {c.check for c in f.checks if not c.ok}
    assert warned == {"time service"}  # no time service runs in the lab's containers: a warning
    p = stage.plan(TRIXIE, f)
    assert not p.blocked
    prog = [line.split(None, 1) for line in p.program()]
    assert [n for n, _ in prog] == ["vm-node1"] * 4 + ["vm-node2"] * 4
    cmds = [c for n, c in prog if n == "vm-node1"]
    assert cmds[0] == "systemctl mask corosync.service pacemaker.service"
    assert cmds[1] == "apt-get update -q"
    assert cmds[2].startswith("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ")
    assert cmds[2].endswith(" ".join(n1.missing))
    assert cmds[3] == "systemctl unmask corosync.service pacemaker.service && systemctl disable corosync.service pacemaker.service"
    assert [u.describe() for u in p.undo] == ["systemctl unmask corosync.service pacemaker.service"] * 2
    assert "corosync 3.1.9-2+deb13u1" in p.ops[2].reason  # apt's version, from the simulation


def test_converged_nodes_change_nothing() -> None:
    f = facts({n: capture("converged", n) for n in NODES})
    p = stage.plan(TRIXIE, f)
    assert p.ops == [] and not p.blocked
    assert set(p.no_change) == set(NODES)
    assert f.packages_frame().set_index("package").loc["pacemaker", "vm-node1"] == "3.0.0-2"


def test_debian12_ready_nodes_want_fence_agents_and_change_nothing() -> None:
    f = facts({n: capture("ready", n, "bookworm") for n in NODES}, BOOKWORM)
    assert "fence-agents" in f["vm-node1"].wanted and "fence-agents-ipmilan" not in f["vm-node1"].wanted
    assert f["vm-node1"].installed["crmsh"].version == "4.4.1-1+deb12u1"
    p = stage.plan(BOOKWORM, f)
    assert p.ops == [] and not p.blocked


def test_apt_lock_and_held_package_block_naming_holder_and_fix() -> None:
    out = bare()
    out["vm-node1"] = capture("locked-held", "vm-node1")
    f = facts(out)
    assert set(failed(f)) == {("vm-node1", "apt free"), ("vm-node1", "no package held")}
    p = stage.plan(TRIXIE, f)
    assert p.ops == [] and list(p.blocked) == ["vm-node1"]
    why = p.blocked["vm-node1"]
    assert "/var/lib/dpkg/lock-frontend held by PID 147 (apt-get)" in why
    assert "held: corosync" in why and "apt-mark unhold corosync" in why


@pytest.mark.parametrize("edit, check, words", [
    (lambda t: t.replace("uname vm-node1", "uname debian"), "hostname", "hostnamectl set-hostname vm-node1"),
    (lambda t: t.replace("os debian 13 trixie", "os debian 11 bullseye"), "release", "not supported"),
    (lambda t: t.replace("link bond0\n", ""), "private interfaces", "networks.private.bond"),
    (lambda t: t.replace("reach 10.84.1.12 yes", "reach 10.84.1.12 no"), "reaches vm-node2 (public)", "UDP 5405"),
    (lambda t: t.replace("apt-exit 0", "E: Unable to locate package crmsh\napt-exit 100"), "packages available",
     "Unable to locate package crmsh"),
])
def test_each_failed_check_blocks_with_its_fix(edit, check, words) -> None:
    out = bare()
    out["vm-node1"] = edit(out["vm-node1"])
    f = facts(out)
    assert ("vm-node1", check) in failed(f)
    p = stage.plan(TRIXIE, f)
    assert p.ops == [] and "vm-node1" in p.blocked and words in p.blocked["vm-node1"]


def test_unsupported_release_plans_no_packages() -> None:
    out = bare()
    out["vm-node2"] = out["vm-node2"].replace("os debian 13 trixie", "os ubuntu 24.04 noble")
    f = facts(out)
    assert f["vm-node2"].wanted == () and not f["vm-node2"].supported
    assert "Debian 12 (bookworm), Debian 13 (trixie)" in stage.plan(TRIXIE, f).blocked["vm-node2"]


def test_lock_lines_match_on_device_and_inode() -> None:
    lines = ["/var/lib/dpkg/lock-frontend b3 19: POSIX  ADVISORY  WRITE 332 00:b3:1559823 0 EOF",
             "/var/lib/dpkg/lock fe00 3: OFDLCK ADVISORY  WRITE -1 fe:00:1508126 0 EOF",
             "/var/lib/dpkg/lock b3 5: OFDLCK ADVISORY  WRITE -1 fe:00:1559824 0 EOF"]  # same inode, other device
    got = stage.held_locks(lines, ["/var/lib/dpkg/lock-frontend 332 apt-get"])
    assert got == ("/var/lib/dpkg/lock-frontend held by PID 332 (apt-get)",
                   "/var/lib/dpkg/lock held by a process of another namespace")


def fakes(kind: str) -> dict[str, FakeRunner]:
    out = {}
    for n in NODES:
        f = FakeRunner(n)
        f.answer(r"^\. /etc/os-release 2>/dev/null; echo \"os", capture(kind, n))
        f.answer(r"^date \+%s\.%N$", "0.0\n")
        f.answer(r"^\. /etc/os-release 2>/dev/null; echo \"\$VERSION_CODENAME\"",
                 "trixie\n" + "".join(f"{p} 1.0 ii \n" for p in stage.pk.cluster_packages("trixie", "fence_ipmilan")))
        f.answer(r"^systemctl is-enabled", "disabled\ndisabled\n")
        out[n] = f
    return out


READS = (r"^\. /etc/os-release", r"^date ", r"^systemctl is-enabled")


def test_dry_run_sends_only_reads() -> None:
    hosts = fakes("bare")
    run = driver.run_stage(stage.PackagesStage(TRIXIE), hosts, dry_run=True)
    assert run.result is not None
    for h in hosts.values():
        assert h.changing(READS) == [], h.commands


def test_real_run_sends_exactly_the_plan_in_order() -> None:
    hosts = fakes("bare")
    run = driver.StageRun(stage.PackagesStage(TRIXIE), hosts, dry_run=False)
    run.gather()
    p = run.make_plan()
    run.apply()
    for n, h in hosts.items():
        sent = [c for c in h.commands if c in {o.describe() for o in p.ops_for(n)}]
        assert sent == [o.describe() for o in p.ops_for(n)]


def test_failed_install_unmasks_and_names_what_changed() -> None:
    hosts = fakes("bare")
    hosts["vm-node2"].fail_on.append(r"apt-get install")
    run = driver.StageRun(stage.PackagesStage(TRIXIE), hosts, dry_run=False)
    run.gather()
    run.make_plan()
    with pytest.raises(driver.StageFailed) as e:
        run.apply()
    assert "vm-node2: systemctl mask corosync.service pacemaker.service" in e.value.changed
    assert "systemctl unmask corosync.service pacemaker.service" in hosts["vm-node2"].commands


def test_record_keeps_each_nodes_journal_for_the_runs_window(tmp_path) -> None:
    hosts = fakes("converged")
    hosts["vm-node1"].answer(r"^journalctl -u corosync -u pacemaker --since=@\d+ --until=@\d+ ",
                             "2026-12-01T12:00:00.000000+00:00 vm-node1 corosync[1]: [KNET] link up\n")
    hosts["vm-node2"].fail_on.append(r"^journalctl")
    run = driver.run_stage(stage.PackagesStage(TRIXIE), hosts, dry_run=False, record_dir=str(tmp_path))
    run.save()
    assert "[KNET] link up" in (tmp_path / "journal" / "vm-node1.log").read_text()
    assert (tmp_path / "journal" / "vm-node2.log").read_text().startswith("(journalctl exited 1")
    since, until = (int(x) for x in __import__("re").search(
        r"--since=@(\d+) --until=@(\d+)", hosts["vm-node1"].commands[-1]).groups())
    assert until - since >= 2 * driver.JOURNAL_MARGIN_S


def test_a_failed_stage_leaves_the_journals_beside_error_json(tmp_path) -> None:
    hosts = fakes("bare")
    hosts["vm-node1"].answer(r"^journalctl", "a line\n")
    hosts["vm-node2"].fail_on.append(r"apt-get install")
    run = driver.StageRun(stage.PackagesStage(TRIXIE), hosts, dry_run=False, record_dir=str(tmp_path))
    run.gather()
    run.make_plan()
    with pytest.raises(driver.StageFailed):
        run.apply()
    assert (tmp_path / "error.json").exists() and (tmp_path / "journal" / "vm-node1.log").read_text() == "a line\n"
