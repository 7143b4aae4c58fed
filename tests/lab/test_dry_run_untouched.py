"""`hakit run --dry-run --stages all` leaves every node and this machine's lab exactly as they were,
on a built cluster (with params that give stages 3-6 a change to plan) and on a fresh three-node
lab; proven by evidence the test gathers itself, not by the run's own record.

The evidence (see tests/lab/evidence.py), all read from this machine through the node's
init (``/proc/<pid>/root``, ``nsenter``), never over SSH:

- every inode of each node's filesystem, before and after: type, mode, owner, size, inode
  number, mtime and ctime (no process can set a ctime), and a sha256 of every file where a
  stage writes. Allowed to differ: what any SSH login changes (``/run/motd.dynamic``), the
  mtime of ``/tmp`` and ``/run`` (the dry run's scratch dirs come and go there), logs that
  grow in place (the journal; pacemaker's, corosync's and Apache's logs: the cluster's
  monitor polls Apache every second) and the inputs pacemaker's scheduler saves at each
  transition it computes (the CIB, compared whole, shows what a transition did);
- systemd's state of corosync, pacemaker and apache2 (an InvocationID changes at each
  start), and the node's systemd (PID 1) journal: it logs every start, stop, reload and
  daemon-reload, and must log nothing;
- the whole CIB (``cibadmin --query``: epoch and num_updates included) and ``dpkg-query -W``;
- a command log: root's login shell becomes a wrapper that keeps every command line sshd
  hands it; sshd itself logs each command it accepts and sftp-server each file operation.
  sshd's list proves the wrapper's is complete; every command that could write and every
  SFTP write must name only a scratch dir of the run (``/tmp/hakit-bonding.*``,
  ``/run/hakit-cib.*``), which must be gone afterwards;
- on this machine: the lab's links, namespaces (links, addresses, routes), its nftables
  table, the node and BMC processes (PID and start time), the BMCs' power state, the files
  of the lab directory.

A positive control first writes one file through the product's own SSH code and checks
that every instrument sees it. On the fresh lab stages 4-6 cannot plan without a CIB: the
run stops at stage 4 saying so (exit 1), and that is asserted too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import evidence
from hakit.lab import Lab
from hakit.remote import connect

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CONTROL = "/root/hakit-control"


@dataclass
class Observed:
    """What one dry run did, by the evidence."""

    returncode: int
    output: str
    summary: dict  # the run's own summary.json (what it claims; the rest is evidence)
    records: list[dict]  # its stages' record.json
    seconds: float
    changes: dict[str, list[str]]  # node -> what differs on it
    host: list[str]  # what differs on this machine's lab
    unlogged: dict[str, list[str]]  # node -> commands sshd accepted that the wrapper did not see
    commands: dict[str, list[str]]
    writes: dict[str, list[str]]  # node -> writes outside a scratch dir (commands and SFTP)
    scratch: dict[str, int]  # node -> writes inside scratch dirs
    systemd: dict[str, list[str]]  # node -> what PID 1 logged


def hakit_dry_run(params_file: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hakit", "run", "--params", str(params_file), "--dry-run",
                           "--stages", "all", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)


def positive_control(lab: Lab, logs: dict[str, evidence.Instrumented]) -> None:
    """One write through the product's own SSH code, seen by every instrument, then undone."""
    for node, log in logs.items():
        log.mark()
        before = evidence.files(evidence.root(lab, node))
        h = connect(lab.params, node)
        try:
            h.write_bytes(CONTROL, b"control\n")
        finally:
            h.close()
        after = evidence.files(evidence.root(lab, node))
        assert f"created {CONTROL}" in evidence.file_changes(before, after), f"{node}: the file walk missed the control"
        outside, _ = evidence.write_commands(log.commands())
        assert any(c.startswith("mv -f ") and c.endswith(CONTROL) for c in outside), (node, log.commands())
        assert log.complete() == [] and len(log.sshd_commands()) == len(log.commands()) >= 2, node
        sftp_out, _ = evidence.sftp_writes(log.sftp_ops())
        assert any("flags WRITE" in op for op in sftp_out), (node, log.sftp_ops())
        evidence.nsrun(lab, node, ["rm", "-f", CONTROL])


def observe(lab: Lab, params_files: list[Path], out: Path) -> list[Observed]:
    """Instrument every node, check the instruments, then snapshot around a dry run with each params file."""
    nodes = [n.name for n in lab.params.nodes]
    runs = []
    with evidence.instrumented(lab, nodes) as logs:
        positive_control(lab, logs)
        for f in params_files:
            for log in logs.values():
                log.mark()
            before = {n: evidence.node_state(lab, n) for n in nodes}
            host_before = evidence.host_state(lab)
            t0 = time.monotonic()
            p = hakit_dry_run(f, out / f.stem)
            seconds = time.monotonic() - t0
            after = {n: evidence.node_state(lab, n) for n in nodes}
            writes, scratch = {}, {}
            for n, log in logs.items():
                c_out, c_in = evidence.write_commands(log.commands())
                s_out, s_in = evidence.sftp_writes(log.sftp_ops())
                writes[n], scratch[n] = c_out + s_out, len(c_in) + len(s_in)
            (folder,) = (out / f.stem).iterdir()
            runs.append(Observed(
                p.returncode, p.stdout + p.stderr, json.loads((folder / "summary.json").read_text()),
                [json.loads(r.read_text()) for r in sorted(folder.glob("*/record.json"))], seconds,
                {n: evidence.state_changes(before[n], after[n]) for n in nodes},
                evidence.host_changes(host_before, evidence.host_state(lab)),
                {n: log.complete() for n, log in logs.items()},
                {n: log.commands() for n, log in logs.items()},
                writes, scratch,
                {n: log.systemd_messages() for n, log in logs.items()},
            ))
    return runs


def assert_untouched(o: Observed) -> None:
    for node, changes in o.changes.items():
        assert changes == [], f"{node}: the dry run changed:\n  " + "\n  ".join(changes)
    assert o.host == [], "the dry run changed this machine's lab:\n  " + "\n  ".join(o.host)
    for node in o.changes:
        assert o.commands[node], f"{node}: no command reached the node (the dry run did not run?)"
        assert o.unlogged[node] == [], f"{node}: sshd accepted commands the wrapper did not see: {o.unlogged[node]}"
        assert o.writes[node] == [], f"{node}: write commands outside a scratch dir:\n  " + "\n  ".join(o.writes[node])
        assert o.systemd[node] == [], f"{node}: systemd logged: {o.systemd[node]}"


def changed_params(params_file: Path, tmp: Path) -> Path:
    """The same cluster with params that give stages 3-6 something to do: the article's timing,
    the VIP preferring the second node, Apache moved after two failures."""
    data = yaml.safe_load(params_file.read_text())
    data["cluster"]["profile"] = "seed"
    data["pacemaker"]["preferred_node"] = "vm-node2"
    data["pacemaker"]["resources"]["migration_threshold"] = 2
    out = tmp / "changed.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def test_dry_run_of_every_stage_on_a_built_cluster_changes_nothing(cluster2, lab2_params: Path, tmp_path: Path) -> None:
    lab, _ = cluster2
    (o,) = observe(lab, [changed_params(lab2_params, tmp_path)], tmp_path / "runs")
    assert o.returncode == 0, o.output[-2000:]
    assert_untouched(o)
    print(f"\nFIGURES dry run of stages 0-6 on the built cluster with changed params: {o.seconds:.1f} s, "
          f"{sum(len(c) for c in o.commands.values())} commands, {sum(o.scratch.values())} writes inside scratch dirs")
    # Stages 3-6 each planned a change, so their previews ran (crm_verify, crm_diff, crm_simulate in a
    # scratch dir). A dry run with the build's own params plans nothing; measured once, it sent as many
    # commands and scratch writes as this one, so it is not run again here.
    assert [st["status"] for st in o.summary["stages"]] == ["dry run"] * 7  # 00-06
    planned = {st["notebook_name"]: [x["detail"] for x in st["outcomes"] if "would:" in x["detail"]]
               for st in o.summary["stages"]}
    for stage in ("03_corosync_rings", "04_pacemaker_properties", "05_resources", "06_constraints"):
        assert planned[stage], f"{stage}: the changed params planned nothing"
    assert any(c.startswith("crm_simulate") for cs in o.commands.values() for c in cs)
    # A control of the command judge on the real thing: the commands the real run would send
    # (from the dry run's own record) are all judged writes, and none of them was sent.
    writes = [op["describe"] for rec in o.records for op in rec["operations"]
              if op["mutates"] and op["op"] in ("Command", "Systemctl", "CibPatch")]
    assert len(writes) >= 6, writes  # stage 3: two installs and the reload; stages 4-6: a patch each
    assert evidence.write_commands(writes)[0] == writes
    assert set(writes).isdisjoint(c for cs in o.commands.values() for c in cs)
    assert all(n > 0 for n in o.scratch.values())  # stage 1 validates the bond files in a scratch dir


def test_dry_run_of_every_stage_on_a_fresh_three_node_lab_changes_nothing(lab3_params: Path, start_lab, tmp_path) -> None:
    lab3 = start_lab(lab3_params)  # a fresh lab: no authkey, no corosync.conf, no CIB
    try:
        (o,) = observe(lab3, [lab3_params], tmp_path / "runs")
    finally:
        lab3.down()
    assert_untouched(o)
    # Stages 0-3 plan on a fresh lab; 4-6 need the CIB that stage 3 would create, and say so.
    assert o.returncode == 1
    status = {st["notebook_name"]: st["status"] for st in o.summary["stages"]}
    assert status == {"00_packages": "dry run", "01_bonding": "dry run", "02_authkey": "dry run", "03_corosync_rings": "dry run",
                      "04_pacemaker_properties": "failed", "05_resources": "not run", "06_constraints": "not run"}
    assert "is pacemaker running?" in o.output
    print(f"\nFIGURES dry run of stages 0-6 on a fresh 3-node lab: {o.seconds:.1f} s (stops at 04: no CIB yet), "
          f"{sum(len(c) for c in o.commands.values())} commands")
