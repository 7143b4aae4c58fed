"""ClusterWatch paces itself on how long crm_mon takes on its node (a slow TCG VM is read less often)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hakit.failover import watch
from hakit.failover.watch import ClusterWatch, watch_pause


def test_watch_pause_keeps_the_asked_rate_where_reads_are_fast_and_idles_as_long_as_a_slow_read_took() -> None:
    assert watch_pause(0.03, 0.25) == pytest.approx(0.22)  # a container: every 0.25 s as asked
    assert watch_pause(0.8, 0.25) == pytest.approx(0.8)  # a TCG VM: its node busy at most half the time
    assert watch_pause(0.125, 0.25) == pytest.approx(0.125)
    assert watch_pause(12.0, 0.25) == 12.0 and watch_pause(0.0, 0.25) == 0.25
    # a failed read sets no pace: the next one comes after the interval, however long the failure took
    assert watch_pause(0.05, 0.25, answered=False) == pytest.approx(0.2)
    assert watch_pause(10.0, 0.25, answered=False) == 0.0


def test_a_slow_node_is_read_about_half_as_often_as_reads_back_to_back_would(monkeypatch) -> None:
    starts: list[float] = []

    def slow_status(host, timeout):  # noqa: ARG001 - as cibstage.status is called
        starts.append(time.monotonic())
        time.sleep(0.2)
        return SimpleNamespace(nodes={})  # a reading (what it says does not matter to the pace)

    monkeypatch.setattr(watch.cibstage, "status", slow_status)
    with ClusterWatch(SimpleNamespace(name="vm-node2"), interval=0.05) as cw:  # type: ignore[arg-type]
        time.sleep(1.0)
    # back to back: a read every 0.2 s (5 in a second); paced: every 0.4 s at the most (3)
    assert 1 <= len(cw.samples) <= 3, [round(t - starts[0], 2) for t in starts]
    assert all(b - a >= 0.39 for a, b in zip(starts, starts[1:])), starts


def test_a_failed_read_is_retried_without_the_pause_a_slow_answer_gets(monkeypatch) -> None:
    from hakit.remote import RemoteError

    starts: list[float] = []

    def timing_out(host, timeout):  # noqa: ARG001 - a read that hangs, then fails (as an SSH timeout does)
        starts.append(time.monotonic())
        time.sleep(0.2)
        raise RemoteError("vm-node2", "crm_mon -1 --output-as=xml", None, "timed out")

    monkeypatch.setattr(watch.cibstage, "status", timing_out)
    with ClusterWatch(SimpleNamespace(name="vm-node2"), interval=0.05) as cw:  # type: ignore[arg-type]
        time.sleep(1.0)
    assert len(cw.samples) >= 4 and all(s.status is None for s in cw.samples)  # back to back, not every 0.4 s


def _lab(tmp_path, name: str):
    import yaml

    from hakit.lab import Lab
    from hakit.params import parse_params

    d = yaml.safe_load((Path(__file__).resolve().parents[2] / "params" / name).read_text())
    d["lab"] |= {"state_dir": str(tmp_path / "state")}
    p = parse_params(d, name)
    return Lab(p, progress=lambda m: None), p


@pytest.mark.parametrize(("name", "want"), [("lab.yaml", watch.PROBE_TIMEOUT_S), ("lab-qdevice.yaml", 0.3),
                                            ("lab-vm.yaml", watch.PROBE_TIMEOUT_VM_S), ("lab-bonding.yaml", 1.0)])
def test_the_client_waits_longer_for_an_answer_where_the_lab_has_tcg_vm_nodes(tmp_path, name, want) -> None:
    from hakit.failover.runner import probe_timeout

    lab, p = _lab(tmp_path, name)
    assert probe_timeout(lab, p) == want


def test_a_probe_has_enough_workers_to_keep_its_rate_while_each_waits_out_its_timeout() -> None:
    from hakit.failover.watch import HttpProbe

    assert len(HttpProbe("192.0.2.1")._threads) == 10  # 0.3 s / 0.04 s: 8 waiting at most
    assert len(HttpProbe("192.0.2.1", timeout=1.0)._threads) == 27  # 25 waiting at most, 2 to spare
