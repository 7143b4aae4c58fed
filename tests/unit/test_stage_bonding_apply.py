"""Stage 1 (bonding) through the driver on fake hosts: what gather, a dry run and a real apply send.

The fakes answer like the container lab's nodes (plain links named like the bonds, on a host
kernel with or without bonding) and like a kernel with bonding and four NICs (the VM node): the probe, ifupdown's answers in the temp dir, the safe-apply steps and a
fresh session that reads the bonds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hakit.params import Params
from hakit.runner import FakeRunner, RemoteError, Result, Sent
from hakit.stages import bonding as stage
from hakit.stages import driver

TMP = "/tmp/hakit-bonding.T3stT3st"
SOURCE = "/etc/network/interfaces:3:source /etc/network/interfaces.d/*"


@dataclass
class Node(FakeRunner):
    """A FakeRunner that remembers being closed (the safe apply closes the session it replaces)."""

    closed: bool = False

    def close(self) -> None:
        self.closed = True


class Clock:
    """Stands in for the stage's `time`: sleeping moves the clock, so timeouts pass at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def probe_output(*, driver: bool, links: list[tuple[str, str | None]], bonds: dict[str, str] | None = None,
                 addresses: dict[str, str] | None = None) -> str:
    def addr(n: str) -> list[dict]:
        a = (addresses or {}).get(n)
        return [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}] if a else []

    ip = [{"ifname": n, "link_type": "ether", **({"linkinfo": {"info_kind": k}} if k else {}), "addr_info": addr(n)}
          for n, k in links]
    driver_lines = ["sysmodule yes", "modprobe 0 "] if driver else [
        "sysmodule no", "modprobe 1 modprobe: FATAL: Module bonding not found in directory /lib/modules/6.18.44-fc"]
    out = ["== driver", *driver_lines, "== links", json.dumps(ip), "== config", SOURCE]
    for b in ("bond0", "bond1"):
        out += [f"== bonding {b}", (bonds or {}).get(b, "")]
    return "\n".join(out) + "\n"


def ifupdown(params: Params, node: str) -> list[tuple[str, Callable[[str], Result] | Result | str]]:
    """ifupdown 0.8's answers on a temp copy of the rendered files that match the params."""
    n = params.node(node)
    want = stage.expected_stanzas(params, n)

    def query(cmd: str) -> Result:
        iface = cmd.split()[-1]
        return Result("".join(f"{k}: {v}\n" for k, v in want[iface].items()), "", 0)

    noact = (f"ip addr add {n.private_ip}/255.255.255.0 broadcast 10.77.0.255 \t  dev bond0 label bond0\n"
             f"ip addr add {n.public_ip}/255.255.255.0 broadcast 10.77.1.255 \t  dev bond1 label bond1\n"
             f" ip route add default via {params.networks.public.gateway}  dev bond1 onlink \n")
    return [
        (r"^mktemp -d /tmp/hakit-bonding\.", TMP + "\n"),
        (r"^ifquery .* --list -a$", "lo\nbond0\nbond1\n"),
        (r"^ifquery -i \S+ \S+$", query),
        (r"^ifup --no-act ", Result("", noact, 0)),
    ]


def container(params: Params, node: str, driver: bool = False) -> Node:
    """A container lab node: bond0/bond1 are veth links; the host kernel has bonding or not (`driver`)."""
    f = Node(node, strict=True)
    n = params.node(node)
    f.answer(r"^echo '== driver'", probe_output(driver=driver, links=[("bond0", "veth"), ("bond1", "veth")],
                                                addresses={"bond0": f"{n.private_ip}/24", "bond1": f"{n.public_ip}/24"}))
    f.script += ifupdown(params, node)
    f.answer(r"^mkdir |^rm -rf -- ", "")
    return f


def healthy(load_fixture: Callable[[str], str]) -> dict[str, str]:
    b0 = load_fixture("bond0-healthy.txt")
    return {"bond0": b0, "bond1": b0.replace("eth0", "eth2").replace("eth1", "eth3")}


NICS = [("eth0", None), ("eth1", None), ("eth2", None), ("eth3", None)]


def bondable(params: Params, node: str, *, armed: bool = False, ifup_fails: bool = False) -> Node:
    """A node whose kernel bonds, NICs eth0..eth3, no files of ours yet."""
    f = Node(node, strict=True)
    f.answer(r"^echo '== driver'", probe_output(driver=True, links=NICS))
    f.script += ifupdown(params, node)
    f.answer(r"^mkdir |^rm -rf -- ", "")
    f.answer(r"^systemctl is-active --quiet hakit-bonding-revert\.timer$", Result("", "", 0 if armed else 3))
    f.answer(r"^systemd-run --wait", Result("", "ifup: failed to bring up bond1", 1) if ifup_fails else "")
    f.answer(r"^(mkdir -p /var/lib|for f in|systemd-run --unit=hakit-bonding-revert |systemctl start hakit)", "")
    return f


def fresh(node: str, bonds: dict[str, str]) -> Node:
    """The new session a safe apply opens after the network changed: sees the bonds."""
    f = Node(node, strict=True)
    f.answer(r"^echo '== driver'", probe_output(driver=True, links=[*NICS, ("bond0", "bond"), ("bond1", "bond")],
                                                bonds=bonds))
    f.answer(r"^systemctl stop hakit-bonding-revert\.timer$", "")
    f.answer(r"^systemctl is-active hakit-bonding-revert\.timer", "inactive\n")
    f.answer(r"^systemctl start hakit-bonding-revert\.service", "")
    return f


VALIDATION = [
    ("run", "mktemp -d /tmp/hakit-bonding.XXXXXXXX"),
    ("run", f"mkdir {TMP}/interfaces.d {TMP}/state"),
    ("write", f"{TMP}/interfaces.d/hakit-bond0"),
    ("write", f"{TMP}/interfaces.d/hakit-bond1"),
    ("write", f"{TMP}/interfaces"),
    ("run", f"ifquery -i {TMP}/interfaces --list -a"),
    *[("run", f"ifquery -i {TMP}/interfaces {i}") for i in ("bond0", "bond1", "eth0", "eth1", "eth2", "eth3")],
    ("run", f"ifup --no-act --state-dir {TMP}/state -i {TMP}/interfaces bond0 bond1"),
    ("run", f"rm -rf -- {TMP}"),
]


def sent(f: FakeRunner) -> list[tuple[str, str]]:
    return [(s.kind, s.what) for s in f.sent]


GATHER_KINDS = [("run", "probe"), ("read", "/etc/network/interfaces.d/hakit-bond0"),
                ("read", "/etc/network/interfaces.d/hakit-bond1")]


def as_gather(f: FakeRunner, params: Params, upto: int = 3) -> list[tuple[str, str]]:
    probe = stage.probe_command(params)
    return [(s.kind, "probe" if s.what == probe else s.what) for s in f.sent[:upto]]


# ------------------------------------------------------------------ the container lab, on either kernel

KERNELS = pytest.mark.parametrize("host_bonding", [False, True], ids=["kernel-without-bonding", "kernel-with-bonding"])


@KERNELS
def test_gather_and_a_dry_run_send_only_the_probe_and_file_reads(lab: Params, host_bonding: bool) -> None:
    hosts = {n.name: container(lab, n.name, host_bonding) for n in lab.nodes}
    run = driver.StageRun(stage.BondingStage(lab), hosts, dry_run=True)
    run.gather()
    run.make_plan()
    res = run.apply()
    for f in hosts.values():
        assert as_gather(f, lab, upto=99) == GATHER_KINDS  # nothing else: no temp dir, no write
    assert [o.outcome for o in res.outcomes] == ["not applied", "not applied"] and res.executed == []
    assert res.program == run.plan.program() and len(res.program) == 2


@KERNELS
def test_container_apply_runs_exactly_the_planned_validation_and_says_not_applied(lab: Params,
                                                                                  host_bonding: bool) -> None:
    hosts = {n.name: container(lab, n.name, host_bonding) for n in lab.nodes}
    s = stage.BondingStage(lab)
    p = s.plan(s.gather(hosts))
    for f in hosts.values():
        f.sent.clear()
    res = driver.apply(p, hosts, dry_run=False)
    assert res.executed == p.program()  # the program the dry run showed is what ran
    for n in lab.nodes:
        f = hosts[n.name]
        assert sent(f) == VALIDATION
        # the only writes are in the private temp dir, and it is removed
        assert all(w.what.startswith(TMP + "/") for w in f.writes)
        o = res.outcome(n.name)
        assert o.outcome == "not applied"
        assert o.detail.startswith("not applied: no NICs to bond on this node (bond0 is a plain veth link, ")
        assert o.detail.endswith("; rendered files validated on the node (ifquery, ifup --no-act), nothing written")
    assert not res.changed


@KERNELS
def test_container_verify_claims_no_bond_and_passes_on_either_kernel(lab: Params, host_bonding: bool) -> None:
    hosts = {n.name: container(lab, n.name, host_bonding) for n in lab.nodes}
    v = stage.verify(hosts, lab)
    assert v.ok, str(v)
    rows = {(c.node, c.check): c.detail for c in v.checks}
    for n in lab.nodes:
        honest = rows[(n.name, "no bond claimed where none can be made")]
        assert honest == ("not applied: no NICs to bond on this node; bond0 is a plain veth link, "
                          "bond1 is a plain veth link, not a bond")
        assert (n.name, f"private address {n.private_ip}/24 on bond0") in rows
    assert not any("MII" in c.check or "slave" in c.check for c in v.checks)


def test_files_ifupdown_rejects_fail_the_stage_naming_the_check(lab: Params) -> None:
    hosts = {n.name: container(lab, n.name) for n in lab.nodes}
    hosts["vm-node2"].script.insert(0, (r"^ifup --no-act ", Result("", "ifup: missing required variable: address\n", 1)))
    s = stage.BondingStage(lab)
    p = s.plan(s.gather(hosts))
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, hosts, dry_run=False, parallel=False)
    msg = str(e.value)
    assert e.value.node == "vm-node2" and e.value.changed == []
    assert "rendered files do not validate, nothing written: ifup --no-act bond0 bond1: " in msg
    assert "missing required variable" in msg and "nothing was changed" in msg
    assert sent(hosts["vm-node2"])[-1] == ("run", f"rm -rf -- {TMP}")  # the temp dir goes even then


# ------------------------------------------------------------------ a kernel with bonding: the safe apply


def stage_with(lab: Params, fresh_hosts: dict[str, Callable[[], FakeRunner]]) -> stage.BondingStage:
    return stage.BondingStage(lab, revert_after_s=20, connect=lambda name: fresh_hosts[name]())


SAFE_APPLY = [
    ("run", "systemctl is-active --quiet hakit-bonding-revert.timer"),
    ("run", "mkdir -p /var/lib/hakit/bonding/staged /var/lib/hakit/bonding/backup && "
            "rm -f /var/lib/hakit/bonding/staged/* /var/lib/hakit/bonding/backup/* /var/lib/hakit/bonding/reverted"),
    ("write", "/var/lib/hakit/bonding/staged/hakit-bond0"),
    ("write", "/var/lib/hakit/bonding/staged/hakit-bond1"),
    ("write", "/var/lib/hakit/bonding/apply.sh"),
    ("write", "/var/lib/hakit/bonding/revert.sh"),
    ("run", "backup"),
    ("run", "systemd-run --unit=hakit-bonding-revert --on-active=20s --timer-property=AccuracySec=1s "
            "/bin/sh /var/lib/hakit/bonding/revert.sh"),
    ("run", "systemd-run --wait --collect --unit=hakit-bonding-apply /bin/sh /var/lib/hakit/bonding/apply.sh"),
]


def named(f: FakeRunner, params: Params) -> list[tuple[str, str]]:
    backup = stage.safe_apply_steps(params, 20).backup
    return [(k, "backup" if w == backup else w) for k, w in sent(f)]


def test_safe_apply_sends_the_planned_steps_in_order_and_keeps_the_fresh_session(
    lab: Params, load_fixture: Callable[[str], str]
) -> None:
    hosts = {n.name: bondable(lab, n.name) for n in lab.nodes}
    old = dict(hosts)
    new = {n.name: fresh(n.name, healthy(load_fixture)) for n in lab.nodes}
    s = stage_with(lab, {k: (lambda v=v: v) for k, v in new.items()})
    p = s.plan(s.gather(hosts))
    assert [type(o).__name__ for o in p.ops] == [
        "ValidateInterfaces", "ValidateInterfaces", "Barrier", "SafeApplyBonds", "Barrier", "SafeApplyBonds"]
    for f in hosts.values():
        f.sent.clear()
    res = driver.apply(p, hosts, dry_run=False)
    assert res.executed == [line for line in p.program() if not line.startswith("--- barrier")]
    for n in lab.nodes:
        assert named(old[n.name], lab) == VALIDATION + SAFE_APPLY
        w = {s.what: s for s in old[n.name].writes}
        assert w["/var/lib/hakit/bonding/apply.sh"].mode == 0o755
        assert w["/var/lib/hakit/bonding/staged/hakit-bond0"].sha256 == stage.sha256(
            stage.render_all_interfaces(lab)[n.name]["hakit-bond0"].encode())
        assert old[n.name].closed and hosts[n.name] is new[n.name]  # the caller's dict has the fresh session
        assert [c for c in new[n.name].commands if not c.startswith("echo '== driver'")] == [
            "systemctl stop hakit-bonding-revert.timer", "systemctl is-active hakit-bonding-revert.timer || true"]
        o = res.outcome(n.name)
        assert (o.outcome, o.detail) == (
            "changed", "hakit-bond0, hakit-bond1 installed; bond0, bond1 verified; revert timer cancelled (inactive)")


def test_a_failure_mid_apply_reverts_and_names_what_was_already_changed(
    lab: Params, load_fixture: Callable[[str], str]
) -> None:
    hosts = {"vm-node1": bondable(lab, "vm-node1"), "vm-node2": bondable(lab, "vm-node2", ifup_fails=True)}
    old2 = hosts["vm-node2"]
    new = {n.name: fresh(n.name, healthy(load_fixture)) for n in lab.nodes}
    s = stage_with(lab, {k: (lambda v=v: v) for k, v in new.items()})
    p = s.plan(s.gather(hosts))
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, hosts, dry_run=False, parallel=False)
    err = e.value
    assert err.node == "vm-node2"
    assert err.changed == [f"vm-node1: {p.ops_for('vm-node1')[1].describe()}"]
    assert "ifup of the bonds failed (exit 1: ifup: failed to bring up bond1); reverted to the old files now" in str(err)
    assert old2.commands[-1] == stage.safe_apply_steps(lab, 20).revert_now
    assert hosts["vm-node1"] is new["vm-node1"] and hosts["vm-node2"] is old2
    assert new["vm-node2"].sent == []  # never reconnected: the revert ran on the session it had


def test_an_armed_timer_from_an_earlier_run_stops_before_any_write(lab: Params) -> None:
    hosts = {n.name: bondable(lab, n.name, armed=True) for n in lab.nodes}
    s = stage_with(lab, {})
    p = s.plan(s.gather(hosts))
    with pytest.raises(driver.StageFailed, match=r"still armed; let it fire .* `systemctl stop hakit-bonding-revert"):
        driver.apply(p, hosts, dry_run=False, parallel=False)
    for f in hosts.values():
        assert all(w.what.startswith(TMP) for w in f.writes)


def test_bonds_that_do_not_verify_on_the_fresh_session_are_reverted_at_once(
    lab: Params, load_fixture: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage, "time", Clock())
    bad = {"bond0": healthy(load_fixture)["bond0"], "bond1": load_fixture("bond1-all-down.txt")}
    hosts = {n.name: bondable(lab, n.name) for n in lab.nodes}
    new = {n.name: fresh(n.name, bad) for n in lab.nodes}
    s = stage_with(lab, {k: (lambda v=v: v) for k, v in new.items()})
    p = s.plan(s.gather(hosts))
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, hosts, dry_run=False, parallel=False)
    msg = str(e.value)
    assert "bonds did not verify (bond1 MII status up: down;" in msg and msg.count("reverted to the old files now") == 1
    assert new["vm-node1"].commands[-1] == stage.safe_apply_steps(lab, 20).revert_now
    assert "systemctl stop hakit-bonding-revert.timer" not in new["vm-node1"].commands  # the timer was never cancelled


def test_a_node_cut_off_by_its_new_config_is_reported_back_after_the_timer_reverts(
    lab: Params, load_fixture: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(stage, "time", clock)
    back = fresh("vm-node1", healthy(load_fixture))
    back.answer(r"^cat /var/lib/hakit/bonding/reverted$", "1700000000\n")
    armed = {}

    def connect(name: str) -> FakeRunner:
        armed.setdefault("at", clock.now)
        if clock.now < armed["at"] + 22:  # unreachable until the 20 s timer fired and networking restarted
            raise RemoteError(name, "ssh connect", None, "timed out")
        return back

    hosts = {"vm-node1": bondable(lab, "vm-node1"), "vm-node2": container(lab, "vm-node2")}
    s = stage.BondingStage(lab, revert_after_s=20, connect=connect)
    p = s.plan(s.gather(hosts))
    with pytest.raises(driver.StageFailed) as e:
        driver.apply(p, hosts, dry_run=False, parallel=False)
    msg = str(e.value)
    assert "no SSH session within 20 s after applying (the new network config cut this node off)" in msg
    assert "the revert timer fired after 20 s and restored the old files and addresses" in msg
    assert "(now: bond0 over eth0+eth1, bond1 over eth2+eth3); node reachable again over SSH 22 s after the apply" in msg
    assert hosts["vm-node1"] is back and e.value.changed == []


def test_sent_records_carry_digests_never_bytes(lab: Params) -> None:
    f = container(lab, "vm-node1")
    stage.validate_on_node(f, lab, stage.render_all_interfaces(lab)["vm-node1"])
    assert all(isinstance(s, Sent) and (s.sha256 is None or re.fullmatch("[0-9a-f]{64}", s.sha256)) for s in f.sent)
