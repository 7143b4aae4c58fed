"""Stage 1 (bonding) on the container lab's real nodes: plain links named like the bonds, no NICs to enslave
(the same on a host kernel with or without bonding): honest, validated, untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest

from hakit import notebook
from hakit.lab import Lab
from hakit.params import Params
from hakit.remote import Host
from hakit.stages import bonding as stage
from hakit.stages import driver

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_bonding.ipynb"
# Everything the stage could touch on a node, read by plain ssh (not through the library under test).
NOT_APPLIED = "not applied: no NICs to bond on this node (bond0 is a plain veth link, bond1 is a plain veth link; "
# What the node's own kernel offers, asked directly: the stage reports it, but it decides nothing here.
DRIVER = "test -d /sys/module/bonding || modprobe -n bonding 2>/dev/null"
SNAPSHOT = (
    "ls -la --time-style=full-iso /etc/network/interfaces.d; sha256sum /etc/network/interfaces; "
    "ip -br addr; ip route; ls -d /var/lib/hakit/bonding /tmp/hakit-bonding.* 2>&1; "
    "systemctl list-units --all --no-legend 'hakit-*' 2>&1"
)


@pytest.fixture
def nodes(lab2: Lab) -> Iterator[tuple[Params, dict[str, Host]]]:
    """Params and open SSH sessions to every lab node (closed after the test)."""
    params = lab2.params
    hosts = notebook.connect_nodes(params)
    yield params, hosts
    for h in hosts.values():
        h.close()


def snapshot(lab: Lab) -> dict[str, str]:
    out = {}
    for n in lab.params.nodes:
        r = lab.ssh(n.name, ["sh", "-c", SNAPSHOT], timeout=30)
        out[n.name] = r.stdout
    return out


def test_gather_reports_the_plain_links_and_the_driver_as_the_node_sees_it(lab2: Lab, nodes) -> None:
    params, hosts = nodes
    facts = stage.gather(hosts, params)
    for n in params.nodes:
        f = facts[n.name]
        assert (f.kind("bond0"), f.kind("bond1")) == ("veth", "veth")
        assert f.missing(stage.slave_names(params)) == ["eth0", "eth1", "eth2", "eth3"]
        assert f.plain_links(stage.bond_names(params), stage.slave_names(params))
        assert f.sources_dir and f.foreign == () and f.bonds == {}
        assert f.files == {"hakit-bond0": None, "hakit-bond1": None}
        # the driver fact is the node's own answer, asked directly (it differs between host kernels)
        has = lab2.ssh(n.name, ["sh", "-c", DRIVER]).returncode == 0
        assert f.driver is has
        if not has:
            assert f.driver_detail.startswith("no /sys/module/bonding; `modprobe -n bonding`: ")
            assert "not found" in f.driver_detail  # modprobe's own words: no module for this kernel
    assert ("yes: " if f.driver else "NO: no /sys/module/bonding") in facts._repr_html_()


def test_apply_is_not_applied_everywhere_and_touches_nothing(lab2: Lab, nodes) -> None:
    params, hosts = nodes
    before = snapshot(lab2)
    s = stage.BondingStage(params)
    dry = driver.StageRun(s, hosts, dry_run=True)
    dry.apply()
    assert dry.plan is not None and dry.plan.empty and set(dry.plan.not_applicable) == {n.name for n in params.nodes}
    assert all(isinstance(o, stage.ValidateInterfaces) for o in dry.plan.ops)
    assert snapshot(lab2) == before  # gather and a dry run send nothing that changes a node
    real = driver.StageRun(s, hosts, dry_run=False)
    result = real.apply()
    # the program the dry run showed is the program the real run executed, line for line
    assert result.executed == dry.result.program == result.program and len(result.executed) == len(params.nodes)
    for o in result.outcomes:
        assert o.outcome == "not applied"
        assert o.detail.startswith(NOT_APPLIED + "eth0, eth1, eth2, eth3 absent; bonding driver: ")
        assert "rendered files validated on the node" in o.detail
    assert not result.changed
    assert snapshot(lab2) == before


def test_rendered_files_validate_on_the_nodes(nodes) -> None:
    params, hosts = nodes
    v = stage.validate(hosts, params)
    assert v.ok, str(v)
    assert len(v.checks) == 4 * len(params.nodes)


def test_broken_files_are_caught_by_the_validation(nodes) -> None:
    params, hosts = nodes
    good = stage.rendered(params).files
    syntax = {
        n: {**files, "hakit-bond0": files["hakit-bond0"].replace("inet static", "inet statik")}
        for n, files in good.items()
    }
    v = stage.validate(hosts, params, files=syntax)
    failed = {(c.node, c.check) for c in v.failed}
    for n in params.nodes:
        assert (n.name, "rendered files parse (ifquery --list -a)") in failed
    assert "hakit-bond0:6: unknown or no method" in v.failed[0].detail

    typo = {
        n: {**files, "hakit-bond1": files["hakit-bond1"].replace("bond-miimon", "bond-miimom")}
        for n, files in good.items()
    }
    v = stage.validate(hosts, params, files=typo)
    assert {c.check for c in v.failed} == {"bond1 stanza as intended (ifquery)"}
    assert "bond1 bond-miimon: expected '100', ifquery says None" in v.failed[0].detail


def test_verify_does_not_claim_a_bond(nodes) -> None:
    params, hosts = nodes
    v = stage.verify(hosts, params)
    assert v.ok, str(v)
    frame = v.to_frame()
    honest = frame[frame.check == "no bond claimed where none can be made"]
    assert len(honest) == len(params.nodes)
    assert all("bond0 is a plain veth link" in d and "not a bond" in d for d in honest.detail)
    assert not frame.check.str.contains("active-backup|MII|slave").any()
    n = params.nodes[0]
    assert f"private address {n.private_ip}/24 on bond0" in set(frame.check)


def test_notebook_records_not_applied_twice_and_changes_nothing(
    lab2: Lab, lab2_params: Path, nodes, tmp_path: Path
) -> None:
    before = snapshot(lab2)
    texts = []
    for run in ("first", "second"):
        out = tmp_path / f"01_bonding-{run}.ipynb"
        papermill.execute_notebook(
            str(NOTEBOOK), str(out), parameters=dict(params_file=str(lab2_params), dry_run=False), cwd=str(ROOT)
        )
        texts.append(out.read_text())
        cells = nbformat.read(out, as_version=4).cells
        saved = [c for c in cells if c.cell_type == "code" and "run.save(" in c.source][-1]  # before the exercise
        record = "".join(o.get("text", "") for o in saved.outputs)
        assert record.startswith("01 bonding: ")
        assert record.count(": not applied (" + NOT_APPLIED) == len(lab2.params.nodes)
    for text in texts:
        assert NOT_APPLIED in text
    assert snapshot(lab2) == before


def test_revert_timer_fires_unless_cancelled(nodes) -> None:
    """The timer mechanics of the safe apply, on real systemd; the revert script here only leaves a marker."""
    params, hosts = nodes
    h = hosts[params.nodes[0].name]
    work = h.run(["mktemp", "-d", "/tmp/hakit-bonding-timer.XXXXXX"]).stdout.strip()
    unit = "hakit-bonding-test"
    try:
        h.write_bytes(f"{work}/revert.sh", f"#!/bin/sh\necho fired >> {work}/marker\n".encode(), mode=0o755)
        fire = stage.safe_apply_steps(params, 1, work_dir=work, unit=unit)
        assert not h.run(fire.precheck, check=False).ok
        h.run(fire.arm)
        _wait_for(lambda: h.run(["test", "-e", f"{work}/marker"], check=False).ok, 15)

        h.run(["rm", "-f", f"{work}/marker"])
        keep = stage.safe_apply_steps(params, 3, work_dir=work, unit=unit)
        h.run(keep.arm)
        assert h.run(keep.precheck, check=False).ok  # armed: a second apply would refuse to start
        h.run(keep.cancel)
        assert h.run(keep.confirm, check=False).stdout.strip() == "inactive"
        time.sleep(5)
        assert not h.run(["test", "-e", f"{work}/marker"], check=False).ok
    finally:
        h.run(f"systemctl stop {unit}.timer {unit}.service 2>/dev/null; rm -rf -- {work}", check=False)


def _wait_for(cond, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"condition not met within {timeout}s")

