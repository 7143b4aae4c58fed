"""The fault catalogue: how each scenario breaks the cluster, what should happen, how to undo it.

Faults use the lab's own primitives (power, links, gateway, process kill) or
the cluster's own commands (standby, ``crm_resource --fail``). Each scenario
states its expected behaviour in words (shown in the notebook) and as data
(checked per trial). The catalogue follows the faults admins already know from
Pacemaker's CTS and crmsh's ``crash_test``; the ``extended`` set holds the ones
beyond the default suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..facts.bonding import parse_proc_bonding
from ..render.interfaces import BondOptions

if TYPE_CHECKING:
    from ..facts.pacemaker import ClusterStatus
    from ..params import FailurePolicy, Params
    from .context import TrialContext

# apache-kill-loop kills Apache migration_threshold times, so the Nth kill brings the move. A threshold
# that is unset (INFINITY) or above LOOP_MAX never moves in a trial: then it kills LOOP_IN_PLACE times
# and expects a restart in place after each.
LOOP_MAX = 10
LOOP_IN_PLACE = 3
# A bond that loses its active slave stops sending until the driver notices (miimon) and has waited
# downdelay, then sends on the backup: clients may miss that much, plus a probe interval and the retry
# of a connection that was in flight (1 s). Seen on the all-VM lab: 0.32 s, 8 probes at 25/s.
_BOND = BondOptions()
BOND_SWITCH_S = (_BOND.miimon + _BOND.downdelay) / 1000
SLAVE_LOSS_BLIP_S = BOND_SWITCH_S + 1.0


def loop_kills(policy: "FailurePolicy | None") -> int:
    """How many times apache-kill-loop kills Apache under this failure policy."""
    t = policy.migration_threshold if policy is not None else None
    return t if t is not None and t <= LOOP_MAX else LOOP_IN_PLACE


def loop_moves(policy: "FailurePolicy | None") -> bool:
    """Does apache-kill-loop end with the service on the other node (the threshold is reached)?"""
    t = policy.migration_threshold if policy is not None else None
    return t is not None and t <= LOOP_MAX


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # what is done
    expected: str  # what should happen, in words
    moves: bool  # True: the service should end up on another node during the fault (see moves_under)
    outage_expected: bool  # True: clients should see some downtime
    inject: Callable[["TrialContext"], None]
    restore: Callable[["TrialContext"], None]
    failcount_httpd: int = 0  # failures of httpd expected on the active node
    policy_moves: bool = False  # a resource failure: it moves iff the failcount reaches migration_threshold
    split_brain_without_fencing: bool = False  # the fault leaves the lost node running its resources
    fenced: str | None = None  # with fencing on: the node that must be fenced, "active" or "other"
    needs_fencing: bool = False  # the scenario is about fencing; refused on a cluster without it
    needs_bonds: bool = False  # it pulls a slave of a real kernel bond: VM nodes (or lab.links slaves) only
    needs_qdevice: bool = False  # it breaks the quorum device's host: params with a quorum_device only
    # With outage_expected False: clients may still miss one gap up to this long (s) without a move (slave-loss)
    max_blip_s: float = 0.0
    heal: Callable[["TrialContext"], None] | None = None  # a second step during the fault ...
    heal_after_s: float = 0.0  # ... this long after the inject (with heal_when: at the latest)
    # ... or as soon as the cluster has shown this state for heal_hold_s (synchronised on state, not time)
    heal_when: Callable[["ClusterStatus"], bool] | None = None
    heal_hold_s: float = 0.0
    observe_s: float | None = None  # the longest the fault is watched (default: the runner's)
    repeats: bool = False  # the fault is repeated until the failure policy moves the service (loop_kills)
    watch_from: str = "other"  # the node crm_mon is read through during the fault: the one that stays up
    how_failed: str = "the next httpd monitor fails"  # how pacemaker learns of a resource failure (policy_moves)
    expected_cloned: str = ""  # `expected` in the cloned-apache layout, where it differs (only the VIP moves)
    # The fault may undo itself: the node comes back unfenced (a quorum device's unit restarts corosync).
    # Read at most once a second during the fault; True: the node is back and ends the fault as fencing would.
    rejoined: Callable[["TrialContext"], bool] | None = None

    def moves_under(self, policy: "FailurePolicy | None" = None) -> bool:
        """Does the service end the fault elsewhere? For a resource failure the params decide:
        it moves once the failcount reaches ``migration_threshold`` (never when it is unset)."""
        if not self.policy_moves:
            return self.moves
        if self.repeats:
            return loop_moves(policy)
        t = policy.migration_threshold if policy is not None else None
        return t is not None and self.failcount_httpd >= t

    def expected_failcount(self, policy: "FailurePolicy | None" = None) -> int:
        """httpd's failcount on the active node at the end of the fault (0: not checked)."""
        return loop_kills(policy) if self.repeats else self.failcount_httpd

    def expected_node(self, active: str, other: str, policy: "FailurePolicy | None" = None) -> str:
        return other if self.moves_under(policy) else active

    def expected_text(self, policy: "FailurePolicy | None" = None, httpd_cloned: bool = False) -> str:
        """What should happen, in words, for this cluster's failure policy (and Apache layout)."""
        if not self.policy_moves:
            return self.expected_cloned if httpd_cloned and self.expected_cloned else self.expected
        t = policy.migration_threshold if policy is not None else None
        follows = ("through `colocation vip-with-httpd inf` the VIP leaves it for the other node's running "
                   "httpd instance" if httpd_cloned else
                   "through `colocation httpd-with-vip inf`, the VIP moves with it")
        after = ""
        if self.moves_under(policy) and policy is not None:
            after = ("the failcount expires after failure_timeout "
                     f"{policy.failure_timeout} s and the service fails back (a second, short outage)"
                     if policy.failure_timeout and policy.fails_back else
                     "stickiness keeps the service on the survivor" if not policy.fails_back else
                     "the node stays banned until `crm resource cleanup` (no failure_timeout)")
        if self.repeats:
            n = loop_kills(policy)
            if not self.moves_under(policy):
                why = "unset (INFINITY)" if t is None else f"{t}, beyond this trial's {n} kills"
                return (f"migration_threshold {why}: pacemaker restarts Apache in place after each of {n} kills "
                        f"(each noticed by the next httpd monitor) and the VIP never moves: failcount {n}")
            if n == 1:
                return ("migration_threshold 1: the first kill already bans httpd on the node and "
                        f"{follows} (as in apache-crash): failcount 1; {after}")
            return (f"each kill is noticed by the next httpd monitor; after kills 1 to {n - 1} pacemaker restarts "
                    f"Apache in place (the same node serves again before the next kill); kill {n} brings the "
                    f"failcount to migration_threshold {t}, so httpd is banned there and {follows}: "
                    f"failcount {n}; {after}")
        if self.moves_under(policy):
            return (f"{self.how_failed}; failcount 1 reaches migration_threshold {t}, so httpd is "
                    f"banned on that node and {follows}" + ("" if httpd_cloned else " to the other node")
                    + f"; {after}")
        why = "unset (INFINITY)" if t is None else f"{t}, not reached by one failure"
        return (f"{self.how_failed}; pacemaker restarts Apache on the same node (failcount 1, "
                f"migration_threshold {why}); the VIP does not move")

    def outage_certain(self, fencing: bool) -> bool:
        """Must clients see downtime? Not in an unfenced split brain: the lost node keeps
        serving while the survivor starts a second copy, so probes may never fail."""
        return self.outage_expected and not self.split_brain(fencing)

    def split_brain(self, fencing: bool) -> bool:
        """Two nodes answering for the VIP is this scenario's expected outcome (no fencing)."""
        return self.split_brain_without_fencing and not fencing

    def fenced_node(self, fencing: bool, active: str, other: str) -> str | None:
        """The node that must have been fenced during the trial, if any."""
        if not fencing or self.fenced is None:
            return None
        return active if self.fenced == "active" else other


def _power_cut(c: "TrialContext") -> None:
    c.lab.power_cut(c.active)


def _power_on(c: "TrialContext") -> None:
    c.lab.power_on(c.active)


def _kill_apache(c: "TrialContext") -> None:
    c.lab.kill_process(c.active, "apache2", 9)


def _nothing(c: "TrialContext") -> None:
    return None


def _gateway_cut(c: "TrialContext") -> None:
    c.lab.gateway(c.active, reachable=False)


def _gateway_back(c: "TrialContext") -> None:
    c.lab.gateway(c.active, reachable=True)


def _standby(c: "TrialContext") -> None:
    c.crm(f"crm_attribute --node {c.active} --name standby --update on --lifetime forever")


def _online(c: "TrialContext") -> None:
    c.crm(f"crm_attribute --node {c.active} --name standby --delete --lifetime forever")


def _ring0_down(c: "TrialContext") -> None:
    c.lab.link(c.active, "ring0", up=False)  # by role: one plain link, or both NICs of the pair


def _ring0_up(c: "TrialContext") -> None:
    c.lab.link(c.active, "ring0", up=True)


def _kill_corosync(c: "TrialContext") -> None:
    if c.params.quorum_device is not None:  # the node may come back unfenced: its daemons are the evidence
        c.notes["before"] = c.daemons(c.active)
    c.notes["killed_wall"] = time.time()
    c.lab.kill_process(c.active, "corosync", 9)


# corosync's state on a node, as systemd keeps it: whether it runs, when it last started (UTC, to the
# microsecond: compared with the kill's wall clock, which lab nodes share with this machine), and how often
# systemd has restarted corosync-qdevice.service (whose Requires= starts corosync with it).
COROSYNC_UNIT_COMMAND = ("systemctl show --timestamp=us+utc -p ActiveState -p ExecMainStartTimestamp corosync.service; "
                         "echo qdevice_restarts=$(systemctl show -p NRestarts --value corosync-qdevice.service)")


def parse_corosync_unit(text: str) -> dict[str, Any]:
    """COROSYNC_UNIT_COMMAND's output -> {"active": bool, "started": epoch seconds or None,
    "qdevice_restarts": int or None}."""
    from datetime import datetime, timezone

    kv = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    started = None
    ts = kv.get("ExecMainStartTimestamp", "").strip()  # "Sun 2026-12-06 16:56:33.432147 UTC" ("" when never)
    if ts:
        try:
            started = datetime.strptime(" ".join(ts.split()[1:3]), "%Y-%m-%d %H:%M:%S.%f").replace(
                tzinfo=timezone.utc).timestamp()
        except ValueError:
            started = None
    nr = kv.get("qdevice_restarts", "").strip()
    return {"active": kv.get("ActiveState", "").strip() == "active", "started": started,
            "qdevice_restarts": int(nr) if nr.isdigit() else None}


def corosync_restarted(unit: dict[str, Any] | None, killed_wall: float | None) -> bool:
    """corosync runs again on the node, started after the kill (by systemd, not by a power cycle: a node
    that was power-cycled or fenced is judged by its fence history)."""
    return (unit is not None and killed_wall is not None and unit["active"] and unit["started"] is not None
            and unit["started"] >= killed_wall)


def _corosync_unit(c: "TrialContext") -> dict[str, Any] | None:
    try:
        return parse_corosync_unit(c.read(c.active, COROSYNC_UNIT_COMMAND))
    except Exception:  # noqa: BLE001 - the node is off (fenced) or not reachable: not back
        return None


def controller_respawned(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """pacemakerd on the node started a new controller (it does so once corosync is back)."""
    old = (before or {}).get("pids", {}).get("pacemaker-contr")  # ps cuts names at 15 characters
    new = (after or {}).get("pids", {}).get("pacemaker-contr")
    return old is not None and new is not None and new != old


def _note_corosync(c: "TrialContext") -> bool:
    """Read corosync's unit on the killed node into the trial's notes (and, where its daemons were read before
    the kill, its daemons now); True when corosync runs again, started after the kill."""
    unit = _corosync_unit(c)
    c.notes["corosync_after"] = unit
    restarted = corosync_restarted(unit, c.notes.get("killed_wall"))
    if restarted and "before" in c.notes:
        c.notes["after"] = c.daemons(c.active)
    return restarted


def _corosync_back(c: "TrialContext") -> bool:
    """The killed node is back without being fenced: its corosync runs again (started by systemd after the
    kill), pacemakerd has respawned its controller, and the cluster, read through the peer, has every node
    online and the service started on one node."""
    return (_note_corosync(c) and controller_respawned(c.notes.get("before"), c.notes.get("after"))
            and c.cluster_back())


def _restore_corosync(c: "TrialContext") -> None:
    """A node whose corosync came back by itself is left running; otherwise (fenced, or corosync still
    dead without fencing) it is power-cycled."""
    if not _note_corosync(c):
        _power_cycle(c)


def _power_cycle(c: "TrialContext") -> None:
    c.lab.power_cut(c.active)  # fencing may have switched it off already: nothing to cut then
    c.lab.power_on(c.active)


def _partition(c: "TrialContext") -> None:
    c.lab.partition(c.active, cut=True)


def _heal_partition(c: "TrialContext") -> None:
    c.lab.partition(c.active, cut=False)
    for n in (c.active, c.other):  # the loser was fenced (off): power it on to rejoin
        c.lab.power_on(n)


def _bmc_down_and_power_cut(c: "TrialContext") -> None:
    c.lab.bmc(c.active, available=False)
    c.lab.power_cut(c.active)


def _bmc_up(c: "TrialContext") -> None:
    c.lab.bmc(c.active, available=True)


def _bmc_up_and_power_on(c: "TrialContext") -> None:
    c.lab.bmc(c.active, available=True)
    c.lab.power_on(c.active)


def _kill_pacemakerd(c: "TrialContext") -> None:
    c.notes["before"] = c.daemons(c.active)
    c.lab.kill_process(c.active, "pacemakerd", 9)


def _pacemakerd_after(c: "TrialContext") -> None:
    """Nothing to undo when systemd respawned it; a node fenced instead is powered on. Then read what
    runs now (waiting, on state, for a pacemakerd other than the killed one)."""
    c.lab.power_on(c.active)
    killed = (c.notes.get("before") or {}).get("pids", {}).get("pacemakerd")
    c.notes["after"] = c.daemons(c.active, until=lambda d: d["pids"].get("pacemakerd") not in (None, killed))


def _kill_apache_until_moved(c: "TrialContext") -> None:
    """Kill Apache; once pacemaker has counted that failure and Apache serves again, kill it again,
    until the failure policy moves it (at most ``loop_kills`` times). Each kill's time is kept."""
    for k in range(1, loop_kills(c.params.pacemaker.resources) + 1):
        c.marks.append(time.monotonic())
        c.lab.kill_process(c.active, "apache2", 9)
        if c.recovered("httpd", failures=k) != c.active:
            return  # moved (or never recovered: the judge names it)


def _fail_httpd(c: "TrialContext") -> None:
    c.crm(f"crm_resource --fail --resource httpd --node {c.active}")


def _power_cut_other(c: "TrialContext") -> None:
    c.lab.power_cut(c.other)


def _power_on_other(c: "TrialContext") -> None:
    c.lab.power_on(c.other)


def _gateway_cut_all(c: "TrialContext") -> None:
    for n in c.params.nodes:
        c.lab.gateway(n.name, reachable=False)


def _gateway_back_other(c: "TrialContext") -> None:
    c.lab.gateway(c.other, reachable=True)


def _gateway_back_all(c: "TrialContext") -> None:
    for n in c.params.nodes:
        c.lab.gateway(n.name, reachable=True)


def _public_bond(c: "TrialContext") -> str:
    return c.params.networks.public.bond


def _pull_active_slave(c: "TrialContext") -> None:
    """Pull the cable of the NIC the active node's public bond sends on now (the VIP's and the clients' path)."""
    bond = _public_bond(c)
    r = c.lab.ssh(c.active, ["cat", f"/proc/net/bonding/{bond}"], timeout=30)
    if r.returncode != 0:
        raise ValueError(f"slave-loss pulls a slave of a real bond, but {c.active} has no /proc/net/bonding/{bond} "
                         f"({r.stderr.strip() or 'no such file'}): run it on nodes with their own kernel and stage "
                         "01 applied (params/lab-vm.yaml)")
    slave = parse_proc_bonding(r.stdout, bond).active_slave
    if not slave:
        raise ValueError(f"{bond} on {c.active} has no active slave: nothing to pull")
    c.notes["pulled"] = slave
    c.lab.link(c.active, slave, up=False)


def _plug_slave_back(c: "TrialContext") -> None:
    c.lab.link(c.active, c.notes["pulled"], up=True)


def _qnetd_host(c: "TrialContext") -> str:
    qd = c.params.quorum_device
    if qd is None:
        raise ValueError("qnetd-loss powers off the quorum device's host, but these params have no quorum_device")
    return qd.host


QDEVICE_WAIT_S = 60.0  # the longest the qnetd trials wait for the nodes to see the device's vote go (or come back)


def _qnetd_then_active_cut(c: "TrialContext") -> None:
    """Power-cut the qnetd host; once the nodes count its vote no more, power-cut the active node too."""
    _power_cut_qnetd(c)
    c.marks.append(time.monotonic())  # the second power cut
    c.lab.power_cut(c.active)


def _qnetd_back(c: "TrialContext") -> None:
    c.notes["qnetd_back_wall"] = time.time()  # fencing before this (without quorum) is judged a fault
    c.lab.power_on(_qnetd_host(c))


def _active_back(c: "TrialContext") -> None:
    c.lab.power_on(c.active)


def _device_votes(c: "TrialContext", node: str) -> tuple[bool, bool] | None:
    """(quorate, the device's vote counts) as ``corosync-quorumtool -s`` on ``node`` shows it; None if unreadable."""
    from ..facts.corosync import parse_quorumtool_status

    r = c.lab.ssh(node, ["corosync-quorumtool", "-s"], timeout=15)
    try:
        q = parse_quorumtool_status(r.stdout)
    except ValueError:
        return None
    voting = q.qdevice is not None and q.qdevice.votes > 0 and all(",V," in f",{m.qdevice}," for m in q.members)
    return q.quorate, voting


def _wait_device(c: "TrialContext", voting: bool, key: str) -> None:
    """Synchronise on state: until the active node shows the device's vote counting (or not); the delay goes
    into c.notes[key], and c.notes["quorate_without_device"] says whether quorum held meanwhile."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < QDEVICE_WAIT_S:
        got = _device_votes(c, c.active)
        if got is not None and got[1] == voting:
            c.notes[key] = round(time.monotonic() - t0, 2)
            if not voting:
                c.notes["quorate_without_device"] = got[0]
            return
        time.sleep(0.2)
    c.notes[key] = None  # not seen within the wait: the judge's evidence (probe, fencing) still stands


def _power_cut_qnetd(c: "TrialContext") -> None:
    """Power-cut the qnetd host, then hold the fault until the nodes have noticed (the device's vote gone)."""
    c.lab.power_cut(_qnetd_host(c))
    _wait_device(c, voting=False, key="device_lost_after_s")


def _power_on_qnetd(c: "TrialContext") -> None:
    """Power the qnetd host on; the trial ends once qdevice has reconnected and the vote counts again."""
    c.lab.power_on(_qnetd_host(c))
    _wait_device(c, voting=True, key="device_back_after_s")


def service_stopped(st: "ClusterStatus") -> bool:
    """The VIP runs on no node, and neither does an Apache of its own (a cloned Apache, which the gateway
    rule does not cover, may keep running idle)."""
    return not st.running_on("vip") and not any(r.active and r.clone is None for r in st.instances("httpd"))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "idle", "nothing: watch the healthy cluster for the same time as a trial",
            "no failed probe, no move: the baseline that proves the probe and the cluster are quiet",
            moves=False, outage_expected=False, inject=_nothing, restore=_nothing,
        ),
        Scenario(
            "node-crash", "power-cut the active node (like pulling its plug)",
            "corosync misses the token (token + consensus); with fencing the survivor first powers the node off "
            "through its BMC (after the fence delay that protects the preferred node), then takes the VIP and "
            "starts Apache; when the node is back, the VIP returns to the preferred node (a second, short outage)",
            moves=True, outage_expected=True, inject=_power_cut, restore=_power_on, fenced="active",
            expected_cloned="corosync misses the token (token + consensus); with fencing the survivor first powers "
            "the node off through its BMC (after the fence delay), then takes the VIP: its Apache already runs. "
            "When the node is back its Apache instance starts and the VIP returns to it (a second, short outage)",
        ),
        Scenario(
            "apache-crash", "kill -9 every Apache process on the active node",
            "the next httpd monitor fails (failcount 1); with migration_threshold 1 (the shipped params) "
            "httpd and the VIP move to the other node, and fail back when the failcount expires; with no "
            "threshold pacemaker restarts Apache in place",
            moves=False, outage_expected=True, inject=_kill_apache, restore=_nothing, failcount_httpd=1,
            policy_moves=True,
        ),
        Scenario(
            "gateway-loss", "the active node can no longer reach the gateway (its pings are dropped there)",
            "pingd drops to 0 on that node after a ping monitor plus dampen; the vip-needs-gateway rule moves "
            "the VIP (and Apache with it) to the node that still sees the gateway; back when it is restored",
            moves=True, outage_expected=True, inject=_gateway_cut, restore=_gateway_back,
        ),
        Scenario(
            "planned-move", "put the active node in standby, later back online",
            "a clean, ordered move: Apache and the VIP stop on the node and start on the other; back when online",
            moves=True, outage_expected=True, inject=_standby, restore=_online,
            expected_cloned="the node stops its VIP and its Apache instance; the VIP starts on the other node, whose "
            "Apache keeps running (never stopped); back when online",
        ),
        Scenario(
            "ring0-loss", "take the active node's ring0 link (private network) down",
            "knet switches corosync to ring1 (public network) within a heartbeat; membership holds; "
            "no failover and no failed probe",
            moves=False, outage_expected=False, inject=_ring0_down, restore=_ring0_up,
        ),
        Scenario(
            "corosync-kill", "kill -9 corosync on the active node",
            "the node drops out of the membership but its Apache and VIP keep running. With fencing the "
            "survivor powers it off, then starts them: one outage, never two copies. Without fencing the "
            "survivor starts them too and both nodes answer for the VIP (split brain). Restored by "
            "power-cycling the node",
            moves=True, outage_expected=True, inject=_kill_corosync, restore=_restore_corosync,
            split_brain_without_fencing=True, fenced="active",
        ),
        Scenario(
            "split-brain", "cut all traffic between the nodes (both corosync rings); clients still reach both",
            "each node sees the other vanish and tries to fence it. The device that fences the preferred node "
            "waits its delay, so the preferred (active) node fences its peer first and keeps serving: no "
            "failed probe, never two MACs for the VIP. Without fencing both nodes run the service (split brain)",
            moves=False, outage_expected=False, inject=_partition, restore=_heal_partition,
            split_brain_without_fencing=True, fenced="other",
        ),
        Scenario(
            "fence-failure", "the active node's BMC stops answering, then the node loses power; "
            "the BMC comes back 60 s later",
            "the survivor must fence the lost node before it recovers anything, and fencing fails while the "
            "BMC is gone: the service stays down (the price of safety) until the BMC answers again, the "
            "next fencing attempt succeeds, and only then the survivor starts the VIP and Apache",
            moves=True, outage_expected=True, inject=_bmc_down_and_power_cut, restore=_bmc_up_and_power_on,
            fenced="active", needs_fencing=True, heal=_bmc_up, heal_after_s=60.0, observe_s=180.0,
        ),
        Scenario(
            "slave-loss", "pull the cable of the active slave of the active node's public bond (real bonds only)",
            "the bonding driver sees the carrier go (miimon), waits downdelay and sends on the backup slave; "
            "corosync and pacemaker see nothing (no failover, nobody fenced); clients may miss one gap of "
            f"about miimon + downdelay ({BOND_SWITCH_S:.1f} s; at most {SLAVE_LOSS_BLIP_S:.1f} s is accepted). "
            "When the cable is back, the primary slave takes over again after updelay",
            moves=False, outage_expected=False, inject=_pull_active_slave, restore=_plug_slave_back,
            needs_bonds=True, max_blip_s=SLAVE_LOSS_BLIP_S,
        ),
        # -- extended: more of the faults from Pacemaker's CTS and crmsh's crash_test --------------------------
        Scenario(
            "pacemakerd-kill", "kill -9 pacemakerd (the cluster's supervisor) on the active node",
            "systemd restarts pacemaker.service (Restart=on-failure, RestartSec=1s, KillMode=process), and the new "
            "pacemakerd adopts the six subdaemons that ran on (\"Tracking existing ... process\"): no node is "
            "fenced, nothing moves, no failed probe (seen on pacemaker 3.0.0, Debian 13)",
            moves=False, outage_expected=False, inject=_kill_pacemakerd, restore=_pacemakerd_after,
        ),
        Scenario(
            "apache-kill-loop", "kill -9 Apache on the active node, again each time pacemaker has restarted it, "
            "until the failure policy moves it",
            "with migration_threshold N the Nth kill moves the service; the kills before it are restarted in place",
            moves=False, outage_expected=True, inject=_kill_apache_until_moved, restore=_nothing,
            policy_moves=True, repeats=True, observe_s=120.0,
        ),
        Scenario(
            "resource-fail", "tell the cluster httpd failed on the active node (`crm_resource --fail`), "
            "Apache itself untouched",
            "the controller records a failed httpd monitor at once ('Simulated failure'): failcount 1, then "
            "recovery as the failure policy says; httpd is never active on two nodes",
            moves=False, outage_expected=True, inject=_fail_httpd, restore=_nothing, failcount_httpd=1,
            policy_moves=True, how_failed="the controller records the injected failure at once (no monitor needed)",
        ),
        Scenario(
            "passive-crash", "power-cut the standby node (the one not running the service)",
            "the active node sees its peer vanish, fences it (with fencing) and serves on: no failed probe, the "
            "service never moves; the standby rejoins when powered on",
            moves=False, outage_expected=False, inject=_power_cut_other, restore=_power_on_other,
            fenced="other", watch_from="active",
        ),
        Scenario(
            "gateway-loss-both", "no node reaches the gateway any more; then the standby regains it",
            "pingd drops to 0 on both nodes, vip-needs-gateway bans the VIP everywhere and Apache stops with it "
            "(colocation): the service stops, by design, and stays stopped while no node reaches the gateway. pingd "
            "need not drop on both nodes at once, so the service may first move to the node whose pingd is still up, "
            "then stop. Once the standby regains the gateway, the VIP and Apache start there; when "
            "the preferred node does, they fail back",
            moves=True, outage_expected=True, inject=_gateway_cut_all, restore=_gateway_back_all,
            heal=_gateway_back_other, heal_when=service_stopped, heal_hold_s=5.0, heal_after_s=60.0,
            observe_s=120.0,
        ),
        Scenario(
            "qnetd-loss", "power-cut the quorum device's host (corosync-qnetd); the nodes stay up",
            "both nodes lose the device's vote but keep quorum with their own two of three; nothing moves, "
            "nobody is fenced, no failed probe. When the host is back, qdevice reconnects and the vote returns",
            moves=False, outage_expected=False, inject=_power_cut_qnetd, restore=_power_on_qnetd,
            needs_qdevice=True,
        ),
        Scenario(
            "qnetd-then-node-loss", "power-cut the quorum device's host; once the nodes see its vote gone, power-cut "
            "the active node; the qnetd host comes back once the survivor has shown it has no quorum",
            "without the device the survivor holds 1 vote of 3 and loses quorum: it may not fence the lost node and "
            "starts nothing (no-quorum-policy stop), so the service is down: the price of a vote from outside. "
            "When qnetd is back it gives the survivor the device's vote (ffsplit: the only partition it sees); "
            "quorate again, the survivor fences the lost node and starts the VIP and Apache",
            moves=True, outage_expected=True, inject=_qnetd_then_active_cut, restore=_active_back, fenced="active",
            needs_qdevice=True, heal=_qnetd_back, heal_when=lambda st: not st.quorate,
            heal_hold_s=3.0, heal_after_s=60.0, observe_s=180.0,
        ),
    )
}

# The six plus split-brain, which teaches with or without fencing. fence-failure (over a
# minute per trial) runs when named or with 'all'.
DEFAULT = ("node-crash", "apache-crash", "gateway-loss", "planned-move", "ring0-loss", "corosync-kill", "split-brain")
FENCING = ("split-brain", "fence-failure")  # about fencing; split-brain also teaches without it
# Beyond the default suite (`make demo` stays short): run with 'extended' or 'all', or by name.
EXTENDED = ("pacemakerd-kill", "apache-kill-loop", "resource-fail", "passive-crash", "gateway-loss-both")
QDEVICE = ("qnetd-loss", "qnetd-then-node-loss")  # about the quorum device: run by name or with 'all' on params with a quorum_device
SETS = {"default": DEFAULT, "extended": EXTENDED}


# corosync-kill on a cluster with a quorum device, as seen on Debian 13 lab nodes (pacemaker 3.0.0,
# corosync-qdevice 3.0.3): corosync-qdevice.service fails with corosync, systemd restarts it
# (Restart=on-failure) and its Requires=corosync.service starts corosync again 0.3 s after the kill.
COROSYNC_KILL_QDEVICE = (
    "the node drops out of the membership while its Apache and VIP keep running. With a quorum device systemd "
    "brings corosync back within a second: corosync-qdevice.service fails with it, is restarted "
    "(Restart=on-failure), and its Requires=corosync.service starts corosync again. The peer marks the node "
    "UNCLEAN, but before it has the device's vote to fence it, the node is back in the membership and pacemakerd "
    "respawns its daemons: nobody is fenced. The new controller has forgotten what ran on the node, so pacemaker "
    "probes it, finds the VIP and Apache running there and recovers them, in place or by a move to the peer and "
    "back (one or two short outages). If the peer fences the node first, the service moves as on a cluster "
    "without a device. Either way never two copies. A node that came back is left running; a fenced one is "
    "powered on")


def for_cluster(scn: Scenario, nodes: int, no_quorum_policy: str = "ignore", qdevice: bool = False) -> Scenario:
    """The scenario as it plays out on a cluster of ``nodes`` nodes (with a quorum device or not). The
    catalogue states the two-node case without a device; with three or more nodes, cutting the active node
    off from its peers is no longer an even split: the others keep quorum, fence it and take the service
    over, while the lone node, without quorum, stops its resources unless ``no-quorum-policy`` is ``ignore``
    (then, unfenced, both sides serve). With a quorum device, a killed corosync comes back by itself."""
    if qdevice and scn.name == "corosync-kill":
        return replace(scn, expected=COROSYNC_KILL_QDEVICE, expected_cloned="", rejoined=_corosync_back,
                       split_brain_without_fencing=False)
    if nodes <= 2 or scn.name != "split-brain":
        return scn
    return replace(
        scn,
        summary="cut the active node off from every peer (both corosync rings); clients still reach it",
        expected=("the peers keep quorum (two votes of three or more), see the active node vanish, fence it and "
                  "start the VIP and Apache: one outage, never two MACs for the VIP. The lone node has no quorum, "
                  f"so under no-quorum-policy {no_quorum_policy} it "
                  + ("keeps its resources: without fencing both sides serve (split brain)"
                     if no_quorum_policy == "ignore" else "stops its resources even before it is fenced")),
        moves=True, outage_expected=True, fenced="active",
        split_brain_without_fencing=no_quorum_policy == "ignore",
    )


def select_for(spec: str | list[str] | tuple[str, ...], params: "Params") -> list[Scenario]:
    """`select` for a cluster's params: its fencing, node count, no-quorum-policy, and whether its lab nodes
    get kernel bonds. Failover trials inject faults through the lab, so the params must have a lab section."""
    names = [n.name for n in params.nodes]
    return select(spec, fencing=params.pacemaker.stonith_enabled, nodes=len(names),
                  no_quorum_policy=params.pacemaker.no_quorum_policy,
                  bonds=params.lab.real_bonds(names) if params.lab is not None else None,
                  qdevice=params.quorum_device is not None)


def select(spec: str | list[str] | tuple[str, ...], fencing: bool | None = None, nodes: int = 2,
           no_quorum_policy: str = "ignore", bonds: bool | None = None,
           qdevice: bool | None = None) -> list[Scenario]:
    """'all', 'default', 'extended', a comma list, or a list of names -> scenarios; unknown names raise
    listing the valid ones. With ``fencing`` known: 'all' leaves out what needs fencing when it is off,
    and naming such a scenario is refused; the same for ``bonds`` (real kernel bonds on the nodes) and
    what pulls a bond's slave. Each comes as it plays out on ``nodes`` nodes (for_cluster)."""
    if isinstance(spec, str) and spec in SETS:
        spec = list(SETS[spec])
    if spec == "all":
        names = [n for n, s in SCENARIOS.items() if (fencing is not False or not s.needs_fencing)
                 and (bonds is not False or not s.needs_bonds) and (qdevice is not False or not s.needs_qdevice)]
    else:
        names = [x.strip() for x in spec.split(",")] if isinstance(spec, str) else list(spec)
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise ValueError(f"scenarios {bad or names!r}: unknown; valid: all, default, extended, "
                         f"{', '.join(SCENARIOS)}")
    # What a scenario needs that this cluster lacks: refused by name, with what to do instead.
    lacking = ((fencing is False, "needs_fencing", "tests fencing, but this cluster runs without it "
                "(pacemaker.stonith_enabled is false); enable fencing or leave it out"),
               (bonds is False, "needs_bonds", "pulls a slave of a real bond, but these nodes have no kernel bonds "
                "(container nodes get one plain link per network); use VM nodes (params/lab-vm.yaml) or leave it out"),
               (qdevice is False, "needs_qdevice", "powers off the quorum device's host, but these params have no "
                "quorum_device; use params/lab-qdevice.yaml or leave it out"))
    for lacks, flag, why in lacking:
        need = [n for n in names if getattr(SCENARIOS[n], flag)]
        if lacks and need:
            raise ValueError(f"scenario {', '.join(need)} {why}")
    return [for_cluster(SCENARIOS[n], nodes, no_quorum_policy, qdevice is True) for n in names]
