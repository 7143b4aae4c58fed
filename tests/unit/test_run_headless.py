"""`hakit run` without a lab: bad params touch nothing; a failing stage is named with its node and command.

The "nodes" here are loopback addresses with a listener that counts connections
and hangs up at once, so no traffic leaves this machine and any contact shows.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from hakit import run as hrun
from hakit.params import load_params
from hakit.remote import HostKeyError, RemoteError
from hakit.stages import pipeline

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP listener on 127.0.0.11 that counts connections and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.11", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.contacts = 0
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.contacts += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    lis = Listener()
    yield lis
    lis.close()


def loopback_params(tmp_path: Path, port: int, **override: object) -> Path:
    """lab.yaml with the public network on loopback (nodes 127.0.0.11/.12) and its lab files in tmp."""
    data = yaml.safe_load((ROOT / "params" / "lab.yaml").read_text())
    data["cluster"]["name"] = "hakit-loop"
    for i, n in enumerate(data["nodes"]):
        n["public_ip"] = f"127.0.0.{11 + i}"
    data["networks"]["public"].update(subnet="127.0.0.0/8", gateway="127.0.0.1")
    data["vip"]["address"] = "127.0.0.100"
    data["ssh"].update(port=port, connect_timeout=3)
    data["lab"].update(id="hr", host_public_ip="127.0.0.254", state_dir=str(tmp_path / "labstate"))
    (tmp_path / "labstate" / "hr").mkdir(parents=True, exist_ok=True)
    (tmp_path / "labstate" / "hr" / "id_ed25519").write_text("not used: nothing gets as far as logging in\n")
    (tmp_path / "labstate" / "hr" / "known_hosts").write_text("")
    for dotted, value in override.items():
        *path, last = dotted.split(".")
        d = data
        for k in path:
            d = d[k]
        d[last] = value
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(data))
    load_params(out) if not override else None  # the base file must be valid
    return out


def hakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakit", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bad_params_fail_before_any_file_or_host_is_touched(tmp_path, listener):
    bad = loopback_params(tmp_path, listener.port, **{"vip.address": "10.99.99.99"})
    out = tmp_path / "runs"
    r = hakit("run", "--params", str(bad), "--stages", "all", "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert "vip.address 10.99.99.99 is outside the subnet 127.0.0.0/8" in r.stderr
    assert not out.exists(), "no run folder for a run that never started"
    assert listener.contacts == 0, "a bad params file must not reach any host"


def test_a_failing_stage_is_named_with_node_and_command_and_saved(tmp_path, listener):
    good = loopback_params(tmp_path, listener.port)
    out = tmp_path / "runs"
    r = hakit("run", "--params", str(good), "--stages", "1-2", "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert listener.contacts >= 1, "the valid run did try the node (so the bad-params test would have seen it)"
    assert "stage 01_bonding failed on vm-node1: `ssh connect` (no exit code)" in r.stderr
    (folder,) = out.iterdir()
    assert folder.name.endswith("-hakit-loop")
    nb = json.loads((folder / "01_bonding.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "RemoteError"
    assert (folder / "01_bonding.html").stat().st_size > 10_000
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["ok"] is False and "01_bonding" in summary["error"]
    first, second = summary["stages"]
    assert first["status"] == "failed" and first["error"]["node"] == "vm-node1" and first["error"]["command"] == "ssh connect"
    assert {o["node"]: o["outcome"] for o in first["outcomes"]} == {"vm-node1": "failed", "vm-node2": "not recorded"}
    assert second["status"] == "not run" and not (folder / "02_authkey.ipynb").exists()
    assert summary["secret_scan"]["clean"] is False and summary["secret_scan"]["incomplete"], "an unread key is no clean scan"
    assert "FAILED" in (folder / "index.html").read_text()


@pytest.mark.parametrize(
    "err",
    [
        RemoteError("vm-node2", "systemctl start corosync", 1, "Job failed.\nSee journalctl", "check the config"),
        RemoteError("vm-node1", "ssh connect", None, "cannot reach 10.0.0.1:22"),
        HostKeyError("vm-node1", "ssh connect", None, "host key does not match"),
        RemoteError("vm-node2", "sh -c 'echo `date`'", 255, ""),
    ],
)
def test_remote_errors_are_read_back_from_their_message(root, err):
    params = load_params(root / "params" / "lab.yaml")
    got = hrun.describe_error(type(err).__name__, str(err), params)
    assert (got["node"], got["command"], got["exit_code"]) == (err.host, err.command, err.exit_code)


def test_other_errors_name_the_node_when_the_message_starts_with_it(root):
    params = load_params(root / "params" / "lab.yaml")
    got = hrun.describe_error("AuthkeyError", "vm-node2: after copying, the digest differs", params)
    assert got["node"] == "vm-node2" and got["command"] is None


def test_stage_selection_and_the_failover_notebook():
    stages = hrun.stage_notebooks()
    assert [p.stem for p in stages] == list(pipeline.NOTEBOOKS)  # --stages all: the deployment stages, no more
    assert [p.name[:2] for p in hrun.select("1-2")] == ["01", "02"]
    with pytest.raises(ValueError, match="add --failover"):
        hrun.select("7")
    with pytest.raises(ValueError, match="08_operations.ipynb is day-2 operations, not a deployment stage"):
        hrun.select("6,8")
    with pytest.raises(ValueError, match="use 'all'"):
        hrun.select("one")
    fo = ROOT / "notebooks" / hrun.FAILOVER_NOTEBOOK
    if fo.exists():
        assert hrun.prepare_run("params/lab.yaml", "1", failover=True).notebooks[-1] == fo
    else:
        with pytest.raises(ValueError, match="does not exist yet"):
            hrun.prepare_run("params/lab.yaml", "1", failover=True)


def test_failover_lines_are_passed_on_as_they_come() -> None:
    from hakit.run import LineEcho

    seen: list[str] = []
    echo = LineEcho(seen.append)
    echo.write("node-crash #1: inject on vm-node1\nnode-crash #1: down")
    assert seen == ["    node-crash #1: inject on vm-node1"]
    echo.write("time 7.68 s\n\n")
    assert seen[-1] == "    node-crash #1: downtime 7.68 s" and len(seen) == 2


def test_failover_scenarios_are_chosen_and_checked_before_anything_runs():
    plan = hrun.prepare_run("params/lab.yaml", "1", failover=True, scenarios="extended")
    assert plan.scenarios == "extended" and plan.notebooks[-1].name == hrun.FAILOVER_NOTEBOOK
    assert hrun.prepare_run("params/lab.yaml", "1", failover=True).scenarios == ""
    with pytest.raises(ValueError, match=r"--scenarios extended: .*add --failover"):
        hrun.prepare_run("params/lab.yaml", "1", scenarios="extended")
    with pytest.raises(ValueError, match=r"\['passive-crsh'\]: unknown; valid: all, default, extended"):
        hrun.prepare_run("params/lab.yaml", "1", failover=True, scenarios="node-crash,passive-crsh")


def test_the_chosen_scenarios_reach_the_failover_notebook_only(monkeypatch, tmp_path):
    import papermill as pm

    sent: dict[str, dict] = {}
    monkeypatch.setattr(pm, "execute_notebook", lambda src, dst, parameters, **kw: sent.update({Path(src).name: parameters}))
    plan = hrun.prepare_run("params/lab.yaml", "1", failover=True, scenarios="passive-crash,resource-fail")
    for nb in plan.notebooks:
        assert hrun._execute(nb, tmp_path / nb.name, plan, tmp_path / nb.stem, str(tmp_path)) is None
    assert sent[hrun.FAILOVER_NOTEBOOK]["scenarios"] == "passive-crash,resource-fail"
    assert "scenarios" not in sent["01_bonding.ipynb"]


def test_the_client_load_is_checked_before_anything_runs_and_reaches_the_failover_notebook(monkeypatch, tmp_path):
    import papermill as pm

    with pytest.raises(ValueError, match=r"--load 200: .*add --failover"):
        hrun.prepare_run("params/lab.yaml", "1", load="200")
    with pytest.raises(ValueError, match=r"rate_hz 0.0: between 1 and 1000"):
        hrun.prepare_run("params/lab.yaml", "1", failover=True, load="0")
    sent: dict[str, dict] = {}
    monkeypatch.setattr(pm, "execute_notebook", lambda src, dst, parameters, **kw: sent.update({Path(src).name: parameters}))
    plan = hrun.prepare_run("params/lab.yaml", "1", failover=True, load="120,2,2")
    for nb in plan.notebooks:
        hrun._execute(nb, tmp_path / nb.name, plan, tmp_path / nb.stem, str(tmp_path))
    assert sent[hrun.FAILOVER_NOTEBOOK]["load"] == "120,2,2" and "load" not in sent["01_bonding.ipynb"]
