"""Stage 1 (bonding), pure parts: probe facts against the params, plan (typed ops), ifupdown validation verdicts,
safe-apply scripts, bond checks. Apply on fake hosts is in test_stage_bonding_apply.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from hakit.facts import parse_proc_bonding
from hakit.facts.bonding import parse_ifquery
from hakit.ops import Barrier
from hakit.params import Params
from hakit.render.interfaces import BondOptions, render_interfaces
from hakit.runner import Result
from hakit.stages import bonding as stage
from hakit.stages import driver

# Captured from a lab node (kernel without bonding), `ip -j -d addr show` trimmed to the fields we read.
LAB_PROBE = """\
== driver
sysmodule no
modprobe 1 modprobe: FATAL: Module bonding not found in directory /lib/modules/6.18.44-fc-v769 
== links
[{"ifname":"lo","link_type":"loopback","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},\
{"ifname":"bond0","link_type":"ether","linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"10.77.0.11","prefixlen":24},\
{"family":"inet6","local":"fe80::87:5eff:fea4:fdf3","prefixlen":64}]},\
{"ifname":"bond1","link_type":"ether","linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"10.77.1.11","prefixlen":24}]}]
== config
/etc/network/interfaces:3:source /etc/network/interfaces.d/*
== bonding bond0
== bonding bond1
"""


def ip_json(*links: tuple[str, str | None, str | None]) -> str:
    """`ip -j -d addr show` text for (name, kind, address) triples."""
    out = []
    for name, kind, addr in links:
        e: dict = {"ifname": name, "link_type": "ether", "addr_info": []}
        if kind:
            e["linkinfo"] = {"info_kind": kind}
        if addr:
            ip, plen = addr.split("/")
            e["addr_info"].append({"family": "inet", "local": ip, "prefixlen": int(plen)})
        out.append(e)
    return json.dumps(out)


def node_facts(
    lab: Params,
    node: str = "vm-node1",
    *,
    driver: bool = True,
    nics: tuple[str, ...] = ("eth0", "eth1", "eth2", "eth3"),
    files: dict[str, str | None] | None = None,
    sources: bool = True,
    foreign: tuple[stage.Declaration, ...] = (),
    bonds_up: bool = False,
    plain: tuple[str, ...] = (),
) -> stage.NodeFacts:
    links = {n: stage.Link(n, "device") for n in nics} | {b: stage.Link(b, "veth") for b in plain}
    bonds = {}
    if bonds_up:
        for b in ("bond0", "bond1"):
            links[b] = stage.Link(b, "bond")
            bonds[b] = healthy(b)
    return stage.NodeFacts(
        node=node,
        driver=driver,
        driver_detail="loaded (/sys/module/bonding)" if driver else "no /sys/module/bonding",
        links=links,
        files=files if files is not None else {"hakit-bond0": None, "hakit-bond1": None},
        sources_dir=sources,
        foreign=foreign,
        bonds=bonds,
    )


HEALTHY_BOND0 = """\
Ethernet Channel Bonding Driver: v6.1.0-18-amd64

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: eth0 (primary_reselect always)
Currently Active Slave: eth0
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 200
Down Delay (ms): 200
Peer Notification Delay (ms): 0

Slave Interface: eth0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 52:54:00:4d:00:11
Slave queue ID: 0

Slave Interface: eth1
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 52:54:00:4d:01:11
Slave queue ID: 0
"""


def healthy(bond: str):
    text = HEALTHY_BOND0 if bond == "bond0" else HEALTHY_BOND0.replace("eth0", "eth2").replace("eth1", "eth3")
    return parse_proc_bonding(text, bond)


def facts_for_all(lab: Params, **kw) -> stage.BondingFacts:
    return stage.BondingFacts({n.name: node_facts(lab, n.name, **kw) for n in lab.nodes})


# ------------------------------------------------------------------ probe parsing


def test_lab_probe_reports_no_driver_and_why(lab: Params) -> None:
    f = stage.parse_probe(lab, "vm-node1", LAB_PROBE, {"hakit-bond0": None, "hakit-bond1": None})
    assert not f.driver
    assert f.driver_detail == (
        "no /sys/module/bonding; `modprobe -n bonding`: modprobe: FATAL: Module bonding not found in "
        "directory /lib/modules/6.18.44-fc-v769"
    )
    assert f.kind("bond0") == "veth" and f.kind("bond1") == "veth" and f.kind("eth0") == "absent"
    assert f.missing(stage.slave_names(lab)) == ["eth0", "eth1", "eth2", "eth3"]
    assert f.links["bond0"].addresses == ("10.77.0.11/24",)
    assert f.sources_dir and f.foreign == () and f.bonds == {}


def test_probe_with_a_live_bond_and_foreign_stanza(lab: Params) -> None:
    out = "\n".join(
        [
            "== driver",
            "sysmodule yes",
            "modprobe 0 insmod /lib/modules/6.1.0-18-amd64/kernel/drivers/net/bonding/bonding.ko",
            "== links",
            ip_json(("bond0", "bond", "10.77.0.11/24"), ("eth0", None, None), ("eth1", None, None)),
            "== config",
            "/etc/network/interfaces:2:source-directory interfaces.d",
            "/etc/network/interfaces:5:allow-hotplug eth2",
            "/etc/network/interfaces:6:iface eth2 inet dhcp",
            "/etc/network/interfaces.d/hakit-bond0:5:auto bond0",
            "/etc/network/interfaces.d/other:1:iface eth9 inet manual",
            "== bonding bond0",
            HEALTHY_BOND0,
            "== bonding bond1",
        ]
    )
    f = stage.parse_probe(lab, "vm-node1", out, {"hakit-bond0": "x", "hakit-bond1": None})
    assert f.driver and f.driver_detail == "loaded (/sys/module/bonding)"
    assert f.kind("bond0") == "bond" and f.kind("eth0") == "device"
    assert f.sources_dir
    assert [(d.line_no, d.text) for d in f.foreign] == [(5, "allow-hotplug eth2"), (6, "iface eth2 inet dhcp")]
    assert list(f.bonds) == ["bond0"] and f.bonds["bond0"].active_slave == "eth0"


@pytest.mark.parametrize(
    ("line", "sourced"),
    [
        ("source /etc/network/interfaces.d/*", True),
        ("source interfaces.d/*", True),
        ("source-directory /etc/network/interfaces.d", True),
        ("source /etc/network/interfaces.d/*.cfg", False),  # our files have no suffix
        ("source-directory /etc/network/other.d", False),
    ],
)
def test_sources_interfaces_d(line: str, sourced: bool) -> None:
    decl = stage.Declaration(stage.MAIN_FILE, 3, line)
    assert stage.sources_interfaces_d([decl]) is sourced
    assert not stage.sources_interfaces_d([stage.Declaration("/etc/network/interfaces.d/x", 1, line)])


# ------------------------------------------------------------------ plan


def test_no_driver_is_not_applied_with_plain_words_and_a_lab_note(lab: Params) -> None:
    p = stage.plan(lab, facts_for_all(lab, driver=False, nics=()))
    assert p.empty and p.no_change == {}
    # only the read-only check of the rendered files, one per node, no barrier, nothing that writes
    assert [type(o) for o in p.ops] == [stage.ValidateInterfaces, stage.ValidateInterfaces]
    assert [o.node for o in p.ops] == ["vm-node1", "vm-node2"] and not any(o.mutates for o in p.ops)
    for n in lab.nodes:
        assert p.not_applicable[n.name].startswith("not applied: this kernel has no bonding driver")
    assert any(note.startswith("No bonding driver") and "validates" in note for note in p.notes)
    assert p.program()[0].startswith("vm-node1  validate hakit-bond0 sha256 ")


@pytest.mark.parametrize("driver", [False, True], ids=["kernel-without-bonding", "kernel-with-bonding"])
def test_the_container_layout_is_not_applied_alike_on_either_kernel(lab: Params, driver: bool) -> None:
    """bond0/bond1 plain veths and no eth0..eth3: nothing to enslave, whatever the host kernel can do."""
    p = stage.plan(lab, facts_for_all(lab, driver=driver, nics=(), plain=("bond0", "bond1")))
    assert p.empty and [type(o) for o in p.ops] == [stage.ValidateInterfaces, stage.ValidateInterfaces]
    for n in lab.nodes:
        why = p.not_applicable[n.name]
        assert why.startswith("not applied: no NICs to bond on this node (bond0 is a plain veth link, "
                              "bond1 is a plain veth link; eth0, eth1, eth2, eth3 absent; bonding driver: ")
        assert ("bonding driver: yes, loaded" if driver else "bonding driver: no, no /sys/module/bonding") in why
    assert [note.split(":")[0] for note in p.notes] == ["No NICs to bond"]
    assert "plain link per network" in p.notes[0] and "not bonds" in p.notes[0]


def test_slave_nics_without_a_driver_say_the_kernel(lab: Params) -> None:
    """The four NICs (lab.links: slaves) on a kernel that cannot bond: the driver is the reason."""
    p = stage.plan(lab, facts_for_all(lab, driver=False, plain=("bond0", "bond1")))
    assert all(w.startswith("not applied: this kernel has no bonding driver") for w in p.not_applicable.values())


def test_missing_slaves_are_named(lab: Params) -> None:
    p = stage.plan(lab, facts_for_all(lab, nics=("eth0", "eth2")))
    why = p.not_applicable["vm-node1"]
    assert "eth1, eth3" in why and "networks.*.slaves" in why and p.empty


def test_interfaces_d_not_sourced_blocks_with_the_fix(lab: Params) -> None:
    p = stage.plan(lab, facts_for_all(lab, sources=False))
    assert "source /etc/network/interfaces.d/*" in p.not_applicable["vm-node2"]


def test_nic_configured_elsewhere_blocks(lab: Params) -> None:
    d = stage.Declaration(stage.MAIN_FILE, 9, "iface eth0 inet dhcp")
    p = stage.plan(lab, facts_for_all(lab, foreign=(d,)))
    assert "/etc/network/interfaces:9 `iface eth0 inet dhcp`" in p.not_applicable["vm-node1"]


def test_identical_files_and_bonds_up_mean_no_change(lab: Params) -> None:
    facts = stage.BondingFacts(
        {n.name: node_facts(lab, n.name, files=render_interfaces(lab, n), bonds_up=True) for n in lab.nodes}
    )
    p = stage.plan(lab, facts)
    assert p.ops == [] and set(p.no_change) == {"vm-node1", "vm-node2"}
    assert "as rendered" in p.no_change["vm-node1"]


def test_identical_files_but_bonds_down_only_brings_them_up(lab: Params) -> None:
    facts = stage.BondingFacts({n.name: node_facts(lab, n.name, files=render_interfaces(lab, n)) for n in lab.nodes})
    p = stage.plan(lab, facts)
    assert [c.action for c in p.for_node("vm-node1")] == [
        "validate hakit-bond0, hakit-bond1 (ifquery, ifup --no-act, temp dir)",
        "bring up bond0 bond1 (safe apply, automatic revert)",
    ]
    assert "not up" in p.for_node("vm-node1")[1].reason
    # every node validates before any node is touched
    assert [type(o).__name__ for o in p.ops] == [
        "ValidateInterfaces", "ValidateInterfaces", "Barrier", "SafeApplyBonds", "Barrier", "SafeApplyBonds"]


def test_different_file_is_rewritten_and_absent_one_written(lab: Params) -> None:
    files = render_interfaces(lab, "vm-node1")
    files = {"hakit-bond0": files["hakit-bond0"].replace("miimon 100", "miimon 50"), "hakit-bond1": None}
    facts = stage.BondingFacts(
        {
            "vm-node1": node_facts(lab, "vm-node1", files=files, bonds_up=True),
            "vm-node2": node_facts(lab, "vm-node2", files=render_interfaces(lab, "vm-node2"), bonds_up=True),
        }
    )
    p = stage.plan(lab, facts)
    got = [(c.action, c.reason) for c in p.for_node("vm-node1")]
    assert got[1] == (
        "bring up bond0 bond1 (safe apply, automatic revert)",
        "hakit-bond0 differs from the rendered text; hakit-bond1 absent: the new files take effect",
    )
    assert "vm-node2" in p.no_change and not p.for_node("vm-node2") and any("Safe apply" in n for n in p.notes)
    # the dry run shows what will be written: each file with its digest, and the timer
    apply = p.ops_for("vm-node1")[1]
    assert isinstance(apply, stage.SafeApplyBonds) and apply.mutates
    want = render_interfaces(lab, "vm-node1")
    d = apply.describe()
    for name, text in want.items():
        assert f"{name} sha256 {stage.sha256(text.encode())[:12]}" in d
    assert "60 s revert timer (hakit-bonding-revert.timer)" in d
    assert apply.wanted.files == want and apply.steps == stage.safe_apply_steps(lab, 60)
    assert apply.apply_sh == stage.apply_script(lab) and apply.revert_sh == stage.revert_script(lab)
    assert apply.to_dict()["files"]["hakit-bond1"] == stage.sha256(want["hakit-bond1"].encode())


def test_options_change_the_wanted_text(lab: Params) -> None:
    facts = stage.BondingFacts(
        {n.name: node_facts(lab, n.name, files=render_interfaces(lab, n), bonds_up=True) for n in lab.nodes}
    )
    assert not stage.plan(lab, facts, BondOptions(miimon=50)).empty


def test_plan_needs_facts_for_every_node(lab: Params) -> None:
    with pytest.raises(stage.BondingError, match="run gather"):
        stage.plan(lab, stage.BondingFacts({"vm-node1": node_facts(lab)}))


def test_a_mixed_cluster_applies_where_it_can_and_validates_everywhere(lab: Params) -> None:
    """The VM lab: vm-node1 has a driver and NICs, vm-node2 (a container) has neither."""
    facts = stage.BondingFacts({"vm-node1": node_facts(lab, "vm-node1"),
                                "vm-node2": node_facts(lab, "vm-node2", driver=False, nics=())})
    p = stage.BondingStage(lab, revert_after_s=30).plan(facts)
    assert [(type(o).__name__, o.node) for o in p.ops] == [
        ("ValidateInterfaces", "vm-node1"), ("ValidateInterfaces", "vm-node2"), ("Barrier", "cluster"),
        ("SafeApplyBonds", "vm-node1")]
    assert isinstance(p.ops[2], Barrier) and list(p.not_applicable) == ["vm-node2"]
    assert p.ops[3].revert_after_s == 30 and "30 s revert timer" in p.ops[3].describe()
    assert len(p.program()) == 4 and p.program()[2] == "--- barrier: ifupdown accepted the rendered files on every node ---"


# ------------------------------------------------------------------ validation verdicts (ifupdown 0.8.41 output)


def ok(stdout: str = "", stderr: str = "") -> Result:
    return Result(stdout, stderr, 0)


def good_answers(lab: Params, node: str = "vm-node1") -> tuple[Result, dict[str, Result], Result]:
    n = lab.node(node)
    want = stage.expected_stanzas(lab, n)
    queries = {}
    for iface, opts in want.items():
        lines = [f"{k}: {v}" for k, v in opts.items()]
        if "address" in opts:
            lines.append("broadcast: 10.77.x.255")
        queries[iface] = ok("\n".join(lines) + "\n")
    noact = ok(
        stderr=(
            "\nrun-parts --exit-on-error /etc/network/if-pre-up.d\n"
            f"ip addr add {n.private_ip}/255.255.255.0 broadcast 10.77.0.255 \t  dev bond0 label bond0\n"
            "ip link set dev bond0   up\n"
            f"ip addr add {n.public_ip}/255.255.255.0 broadcast 10.77.1.255 \t  dev bond1 label bond1\n"
            "ip link set dev bond1   up\n"
            " ip route add default via 10.77.1.1  dev bond1 onlink \n"
        )
    )
    return ok("lo\nbond0\nbond1\n"), queries, noact


def test_validation_passes_on_ifupdown_answers_that_match(lab: Params) -> None:
    listing, queries, noact = good_answers(lab)
    checks = stage.judge_validation(lab, lab.node("vm-node1"), listing, queries, noact)
    assert checks == stage.judge(stage.wanted(lab, "vm-node1"), listing, queries, noact)
    assert [c.check for c in checks] == [
        "rendered files parse (ifquery --list -a)",
        "bond0 stanza as intended (ifquery)",
        "bond1 stanza as intended (ifquery)",
        "ifup --no-act bond0 bond1",
    ]
    assert all(c.ok for c in checks), checks
    assert "10.77.0.11/24 over eth0 eth1" in checks[1].detail


def test_validation_catches_a_parse_error_even_with_exit_0(lab: Params) -> None:
    listing, queries, noact = good_answers(lab)
    listing = ok("lo\nbond0\nbond1\n", "ifquery: /tmp/x/interfaces.d/hakit-bond0:4: option with empty value\n")
    checks = stage.judge_validation(lab, lab.node("vm-node1"), listing, queries, noact)
    assert not checks[0].ok and "option with empty value" in checks[0].detail


def test_validation_catches_a_misspelled_option(lab: Params) -> None:
    listing, queries, noact = good_answers(lab)
    queries["bond1"] = ok(queries["bond1"].stdout.replace("address:", "adress:"))
    checks = stage.judge_validation(lab, lab.node("vm-node1"), listing, queries, noact)
    assert checks[1].ok and not checks[2].ok
    assert "bond1 address: expected '10.77.1.11', ifquery says None" in checks[2].detail
    assert "bond1 adress" in checks[2].detail


def test_validation_catches_ifup_refusing(lab: Params) -> None:
    listing, queries, _ = good_answers(lab)
    noact = Result("", "ifup: missing required variable: address\nifup: failed to bring up bond1\n", 1)
    check = stage.judge_validation(lab, lab.node("vm-node1"), listing, queries, noact)[3]
    assert not check.ok and "missing required variable" in check.detail and "exit 1" in check.detail


def test_parse_ifquery_splits_cidr_and_drops_broadcast() -> None:
    assert parse_ifquery("address: 10.0.0.5/24\nbroadcast: +\nbond-mode: active-backup\n") == {
        "address": "10.0.0.5",
        "netmask": "255.255.255.0",
        "bond-mode": "active-backup",
    }


# ------------------------------------------------------------------ safe apply: scripts and command sequence


def test_revert_script_restores_files_bonds_and_slave_addresses_then_marks_it(lab: Params) -> None:
    s = stage.revert_script(lab)
    assert s.startswith("#!/bin/sh\n")
    lines = [ln.split("#")[0].strip() for ln in s.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines == [
        "set -u",
        "W=/var/lib/hakit/bonding",
        "D=/etc/network/interfaces.d",
        'logger -t hakit-bonding "revert: restoring the network files saved before the last apply" || true',
        "ifdown --force bond0 bond1 || true",
        "for b in bond0 bond1; do",
        'if [ -d "/sys/class/net/$b/bonding" ]; then ip link del "$b" || true; fi',
        "done",
        "for f in hakit-bond0 hakit-bond1; do",
        'if [ -e "$W/backup/$f" ]; then cp -p "$W/backup/$f" "$D/$f"; else rm -f "$D/$f"; fi',
        "done",
        "systemctl restart networking",
        'if [ -e "$W/backup/addresses.sh" ]; then sh "$W/backup/addresses.sh" || true; fi',
        'date +%s > "$W/reverted"',
        'logger -t hakit-bonding "revert: done" || true',
    ]


def test_apply_script_downs_old_config_installs_flushes_slave_addresses_then_ups_the_bonds(lab: Params) -> None:
    s = stage.apply_script(lab)
    assert "set -eu" in s
    down, install = s.index("ifdown --force bond0 bond1"), s.index("install -m 0644")
    flush, up = s.index("for s in eth0 eth1 eth2 eth3; do\n    ip -4 addr flush dev \"$s\""), s.index("\nifup bond0 bond1")
    assert down < install < flush < up


def test_backup_saves_the_slaves_addresses_and_default_route_as_a_script(lab: Params) -> None:
    b = stage.safe_apply_steps(lab, 60).backup
    assert "for s in eth0 eth1 eth2 eth3; do" in b
    assert "> /var/lib/hakit/bonding/backup/addresses.sh" in b
    assert "grep -E ' dev (eth0|eth1|eth2|eth3)( |$)'" in b and "sed 's/^/ip route replace /'" in b
    assert "rm -f /var/lib/hakit/bonding/staged/* /var/lib/hakit/bonding/backup/* /var/lib/hakit/bonding/reverted" in (
        stage.safe_apply_steps(lab, 60).prepare
    )


def test_safe_apply_commands(lab: Params) -> None:
    st = stage.safe_apply_steps(lab, 60)
    assert st.order == ("precheck", "prepare", "upload", "backup", "arm", "apply", "reconnect+verify", "cancel", "confirm")
    assert st.precheck == "systemctl is-active --quiet hakit-bonding-revert.timer"
    assert st.arm == (
        "systemd-run --unit=hakit-bonding-revert --on-active=60s --timer-property=AccuracySec=1s "
        "/bin/sh /var/lib/hakit/bonding/revert.sh"
    )
    assert "--wait" in st.apply and st.apply.endswith("/bin/sh /var/lib/hakit/bonding/apply.sh")
    assert "cp -p /etc/network/interfaces.d/$f /var/lib/hakit/bonding/backup/$f" in st.backup
    assert st.cancel == "systemctl stop hakit-bonding-revert.timer"
    assert st.revert_now.startswith("systemctl start hakit-bonding-revert.service")
    other = stage.safe_apply_steps(lab, 25, work_dir="/tmp/w", unit="t")
    assert "--on-active=25s" in other.arm and "/tmp/w/revert.sh" in other.arm and "--unit=t " in other.arm


class Untouchable:
    """A host that fails the test if anything is run on it."""

    name = "untouchable"

    def __getattr__(self, attr: str):
        raise AssertionError(f"dry run touched the host ({attr})")


def test_dry_run_touches_nothing(lab: Params) -> None:
    hosts = {n.name: Untouchable() for n in lab.nodes}
    p = stage.plan(lab, facts_for_all(lab))  # changes everywhere
    r = driver.apply(p, hosts, dry_run=True)  # type: ignore[arg-type]
    assert [o.outcome for o in r.outcomes] == ["not applied", "not applied"]
    assert r.outcomes[0].detail.startswith("dry run; would: validate hakit-bond0, hakit-bond1")
    assert "bring up bond0 bond1 (safe apply, automatic revert)" in r.outcomes[0].detail
    assert r.program == p.program() and r.executed == []
    p = stage.plan(lab, facts_for_all(lab, driver=False))
    r = driver.apply(p, hosts, dry_run=True)  # type: ignore[arg-type]
    assert [o.outcome for o in r.outcomes] == ["not applied", "not applied"] and not r.changed


def test_the_stage_follows_the_stage_protocol(lab: Params) -> None:
    s = stage.BondingStage(lab, BondOptions(miimon=50, updelay=100, downdelay=100), revert_after_s=45)
    assert isinstance(s, driver.Stage) and s.name == stage.STAGE == "01 bonding"
    p = s.plan(facts_for_all(lab))
    apply = p.ops_for("vm-node1")[1]
    assert apply.wanted.timers == (50, 100, 100) and "bond-miimon 50" in apply.wanted.files["hakit-bond0"]
    assert set(s.artifacts()["interfaces.d"]) == {"vm-node1", "vm-node2"}


def test_a_short_timer_is_refused_before_anything_runs(lab: Params) -> None:
    with pytest.raises(stage.BondingError, match="too short.*use 20 or more"):
        stage.BondingStage(lab, revert_after_s=5)
    with pytest.raises(stage.BondingError, match="too short"):
        stage.plan(lab, facts_for_all(lab), revert_after_s=19)


# ------------------------------------------------------------------ live bond checks


def test_healthy_bonds_pass_every_check(lab: Params) -> None:
    checks = stage.bond_checks(lab, "vm-node1", {"bond0": healthy("bond0"), "bond1": healthy("bond1")})
    assert len(checks) == 10 and all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_failed_over_and_dead_bonds_fail_the_right_checks(lab: Params, load_fixture: Callable[[str], str]) -> None:
    bonds = {
        "bond0": parse_proc_bonding(load_fixture("bond0-failed-over.txt"), "bond0"),
        "bond1": parse_proc_bonding(load_fixture("bond1-all-down.txt"), "bond1"),
    }
    failed = {c.check for c in stage.bond_checks(lab, "vm-node1", bonds) if not c.ok}
    assert failed == {
        "bond0 slaves eth0 and eth1 both up",
        "bond1 MII status up",
        "bond1 has an active slave that is up",
        "bond1 slaves eth2 and eth3 both up",
    }


def test_missing_bond_and_wrong_timers(lab: Params) -> None:
    checks = stage.bond_checks(lab, "n", {"bond0": healthy("bond0")}, BondOptions(miimon=100, updelay=400))
    bad = {c.check: c.detail for c in checks if not c.ok}
    assert bad == {
        "bond0 miimon/updelay/downdelay 100/400/200 ms": "100/200/200 ms",
        "bond1 is a bond": "no /proc/net/bonding/bond1; run the stage with dry_run=False",
    }


def test_rendered_files_show_as_pre_blocks(lab: Params) -> None:
    r = stage.rendered(lab)
    assert r._repr_html_().count("<pre>") == 4 and "hakit-bond1" in str(r)
