"""Grow and shrink, the pure parts: stage 3's plan when the params gain a node (class: nodelist change,
only the new node starts) or lose one (blocked), the nodelist delta, and `membership`'s removal plan
and refusals, on fake nodes and captured crm_mon output."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit import membership
from hakit.facts.pacemaker import parse_crm_mon
from hakit.params import Params
from hakit.runner import FakeRunner
from hakit.stages import corosync

CONF = corosync.CONF
HAS_RUN = (Path(__file__).parent / "fixtures/captured/trixie/cib-dir-after-stage3.txt").read_text().partition("# ---\n")[2]
CRM_MON_3 = (Path(__file__).parent / "fixtures/captured/trixie/crm_mon-3node-grown.xml").read_text().partition("# ---\n")[2]


def fake(name: str, conf: str | None, active: bool, ran: bool | None = None) -> FakeRunner:
    f = FakeRunner(name)
    if conf is not None:
        f.files[CONF] = conf.encode()
    state, en = ("active", "enabled") if active else ("inactive", "disabled")
    f.answer(r"systemctl is-active", f"corosync {state} {en}\npacemaker {state} {en}\n")
    f.answer(r"test -s /etc/corosync/authkey", "key\n")
    f.answer(r"^if test -d /var/lib/pacemaker/cib;", HAS_RUN if (active if ran is None else ran) else "dir\n")
    f.answer(r"corosync-cmapctl runtime.config.totem.", "runtime.config.totem.token (u32) = 1000\n"
             "runtime.config.totem.consensus (u32) = 1200\n")
    return f


@pytest.fixture
def lab_three(lab: Params) -> Params:
    """params/lab.yaml with a third node, as tests/lab/test_grow_shrink.py grows it."""
    third = lab.nodes[1].model_copy(update={"name": "vm-node3", "nodeid": 3, "private_ip": "10.77.0.13",
                                            "public_ip": "10.77.1.13"})
    return Params.model_validate(lab.model_dump() | {"nodes": [*lab.model_dump()["nodes"], third.model_dump()]})


def _plan(params: Params, fakes: dict[str, FakeRunner], **kw):
    st = corosync.CorosyncStage(params, **kw)
    return st.plan(st.gather(fakes))


def test_nodelist_delta_names_added_removed_and_altered_nodes(lab: Params, lab_three: Params) -> None:
    two, three = corosync.desired_conf(lab), corosync.desired_conf(lab_three)
    assert corosync.nodelist_delta(two, three) == corosync.NodelistDelta(("vm-node3",), (), ())
    assert corosync.nodelist_delta(three, two) == corosync.NodelistDelta((), ("vm-node3",), ())
    moved = two.replace("10.77.0.12", "10.77.0.22")
    assert corosync.nodelist_delta(two, moved) == corosync.NodelistDelta((), (), ("vm-node2",))
    assert not corosync.nodelist_delta(two, two)


def test_a_node_added_to_the_params_joins_without_restarting_the_others(lab: Params, lab_three: Params) -> None:
    two = corosync.desired_conf(lab)
    fakes = {"vm-node1": fake("vm-node1", two, True), "vm-node2": fake("vm-node2", two, True),
             "vm-node3": fake("vm-node3", None, False)}
    p = _plan(lab_three, fakes)
    assert not p.blocked
    note = next(n for n in p.notes if n.startswith("class: nodelist change, no outage"))
    assert "vm-node3 joins the nodelist" in note and "quorum.two_node 1 -> (unset)" in note, note
    assert "3 votes, quorum 2" in note and "then corosync and pacemaker start on vm-node3 only" in note, note
    prog = p.program()
    assert [ln for ln in prog if "corosync-cfgtool -R" in ln] == ["vm-node1  corosync-cfgtool -R"]
    assert not any("systemctl stop" in ln or "restart" in ln for ln in prog), prog
    starts = [ln for ln in prog if "systemctl start" in ln]
    assert starts == ["vm-node3  systemctl start corosync", "vm-node3  systemctl start pacemaker"], starts
    checks = [ln for ln in prog if "check the runtime nodelist" in ln]
    assert checks == [f"{n}  check the runtime nodelist = vm-node1, vm-node2, vm-node3, runtime.votequorum.two_node = 0"
                      for n in ("vm-node1", "vm-node2")]
    # vm-node3's boot-time Apache stops before its pacemaker starts (its first probe must not find it).
    stop_apache = prog.index(f"vm-node3  {corosync.STOP_APACHE}")
    assert stop_apache < prog.index("vm-node3  systemctl start pacemaker")
    # The reload comes after the file is installed on every node, the starts after the reload.
    assert prog.index("vm-node1  corosync-cfgtool -R") < prog.index("vm-node3  systemctl start corosync")
    assert max(i for i, ln in enumerate(prog) if "mv -f" in ln) < prog.index("vm-node1  corosync-cfgtool -R")


def test_a_member_that_starts_again_is_not_treated_as_new(lab_three: Params) -> None:
    three = corosync.desired_conf(lab_three)
    fakes = {"vm-node1": fake("vm-node1", three, True), "vm-node2": fake("vm-node2", three, True),
             "vm-node3": fake("vm-node3", three, False, ran=True)}
    assert _plan(lab_three, fakes).program() == [
        "vm-node3  systemctl start corosync", "--- barrier: corosync started on every node that starts ---",
        "vm-node3  systemctl start pacemaker", "vm-node3  systemctl enable corosync pacemaker"]


def test_params_that_lost_a_running_node_block_the_stage(lab: Params, lab_three: Params) -> None:
    three = corosync.desired_conf(lab_three)
    fakes = {n: fake(n, three, True) for n in ("vm-node1", "vm-node2")}
    p = _plan(lab, fakes)
    assert list(p.blocked) == ["cluster"] and not p.ops
    why = p.blocked["cluster"]
    assert "vm-node3 is in the nodelist the cluster runs with, but not in the params" in why
    assert "hakit node remove vm-node3 --params" in why and "Nothing was changed" in why
    # named as leaving (what `hakit node remove` passes), it is a reload with two_node back
    p = _plan(lab, fakes, removing=("vm-node3",))
    assert not p.blocked
    note = next(n for n in p.notes if n.startswith("class: nodelist change"))
    assert "vm-node3 leaves the nodelist" in note and "quorum.two_node (unset) -> 1" in note, note
    assert [ln for ln in p.program() if "two_node" in ln] == [
        f"{n}  check the runtime nodelist = vm-node1, vm-node2, runtime.votequorum.two_node = 1"
        for n in ("vm-node1", "vm-node2")]


def test_a_changed_address_of_a_node_that_stays_is_a_full_restart(lab: Params) -> None:
    two = corosync.desired_conf(lab)
    fakes = {n: fake(n, two.replace("10.77.0.12", "10.77.0.22"), True) for n in ("vm-node1", "vm-node2")}
    p = _plan(lab, fakes)
    assert "cluster" in p.blocked and "stops the service" in p.blocked["cluster"]
    assert "class: full restart (refused without allow_restart)" in p.notes


def _removal_facts(params: Params, status_xml: str) -> membership.RemovalFacts:
    three = corosync.desired_conf(params)
    fakes = {n.name: fake(n.name, three, True) for n in params.nodes}
    rest = membership.remaining_params(params, "vm-node3")
    return membership.RemovalFacts(corosync.gather(fakes, rest), corosync.gather(fakes, params).nodes["vm-node3"],
                                   parse_crm_mon(status_xml), "vm-node1")


def test_the_removal_plan_drains_stops_reloads_forgets_and_deletes_the_fence_device(lab_three: Params) -> None:
    p = membership.plan(lab_three, "vm-node3", _removal_facts(lab_three, CRM_MON_3))
    assert not p.blocked
    assert p.notes[0].startswith("class: node removal, no outage: vm-node3 is drained (standby: "
                                 "ping-gateway moves off it; the service does not move)"), p.notes[0]
    prog = [ln for ln in p.program() if not ln.startswith("---")]
    order = ["vm-node1  crm_attribute --node vm-node3 --name standby --update on",
             "vm-node1  wait until no resource runs on vm-node3",
             "vm-node3  systemctl stop pacemaker",
             "vm-node3  systemctl stop corosync",
             "vm-node3  systemctl disable corosync pacemaker",
             f"vm-node3  mv -f {CONF} {membership.REMOVED_CONF}",
             "vm-node1  corosync-cfgtool -R",
             "vm-node1  check the runtime nodelist = vm-node1, vm-node2, runtime.votequorum.two_node = 1",
             "vm-node1  crm_node --remove vm-node3 --force",
             "vm-node1  if cibadmin --query --xpath \"//rsc_location[@id='fence-vm-node3-not-on-vm-node3']\"",
             "vm-node1  if cibadmin --query --xpath \"//primitive[@id='fence-vm-node3']\""]
    at = [next(i for i, ln in enumerate(prog) if ln.startswith(o)) for o in order]
    assert at == sorted(at), list(zip(order, at))
    # the staying nodes get the 2-node file; nothing on them stops or restarts
    assert not any(ln.startswith(("vm-node1  systemctl", "vm-node2  systemctl")) for ln in prog), prog
    assert sum(f"write {CONF}.hakit-new" in ln for ln in prog) == 2


def test_removal_refusals_name_the_reason(lab: Params, lab_three: Params) -> None:
    with pytest.raises(membership.RemovalRefused, match="is not in the params"):
        membership.remaining_params(lab_three, "vm-node9")
    with pytest.raises(membership.RemovalRefused, match="at least 2"):
        membership.remaining_params(lab, "vm-node2")
    with pytest.raises(membership.RemovalRefused, match="preferred_node"):
        membership.remaining_params(lab_three, "vm-node1")
    # the lab numbers its BMCs by node position: removing the middle node would re-point vm-node3's device
    with pytest.raises(membership.RemovalRefused, match="would change the fence device of vm-node3"):
        membership.remaining_params(lab_three, "vm-node2")
    assert [n.name for n in membership.remaining_params(lab_three, "vm-node3").nodes] == ["vm-node1", "vm-node2"]


def test_bench_change_grows_the_params_by_the_next_node(lab: Params) -> None:
    from hakit.benchchange import with_added_node

    grown = with_added_node(lab)
    assert [(n.name, n.nodeid, str(n.private_ip), str(n.public_ip)) for n in grown.nodes[2:]] == [
        ("vm-node3", 3, "10.77.0.13", "10.77.1.13")]
    assert grown.lab == lab.lab and grown.vip == lab.vip
    assert "two_node" not in corosync.desired_conf(grown)


def test_the_cli_knows_node_remove_lab_drop_and_bench_change() -> None:
    from hakit.cli import build_parser

    p = build_parser()
    a = p.parse_args(["node", "remove", "vm-node3", "--params", "x.yaml", "--dry-run"])
    assert (a.name, a.params, a.dry_run) == ("vm-node3", "x.yaml", True)
    assert p.parse_args(["lab", "drop", "vm-node3"]).node == "vm-node3"
    assert p.parse_args(["bench", "change", "--trials", "3"]).trials == 3
