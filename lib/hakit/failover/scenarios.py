"""The fault catalogue: how each scenario breaks the active node, what should happen, how to undo it.

Faults use the lab's own primitives (power, links, gateway, process kill) or
the cluster's own commands (standby). Each scenario states its expected
behaviour in words (shown in the notebook) and as data (checked per trial).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..params import FailurePolicy
    from .context import TrialContext


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
    heal: Callable[["TrialContext"], None] | None = None  # a second step during the fault ...
    heal_after_s: float = 0.0  # ... this long after the inject; no recovery may come before it
    observe_s: float | None = None  # the longest the fault is watched (default: the runner's)

    def moves_under(self, policy: "FailurePolicy | None" = None) -> bool:
        """Does the service end the fault elsewhere? For a resource failure the params decide:
        it moves once the failcount reaches ``migration_threshold`` (never when it is unset)."""
        if not self.policy_moves:
            return self.moves
        t = policy.migration_threshold if policy is not None else None
        return t is not None and self.failcount_httpd >= t

    def expected_node(self, active: str, other: str, policy: "FailurePolicy | None" = None) -> str:
        return other if self.moves_under(policy) else active

    def expected_text(self, policy: "FailurePolicy | None" = None) -> str:
        """What should happen, in words, for this cluster's failure policy."""
        if not self.policy_moves:
            return self.expected
        t = policy.migration_threshold if policy is not None else None
        if self.moves_under(policy):
            after = ("the failcount expires after failure_timeout "
                     f"{policy.failure_timeout} s and the service fails back (a second, short outage)"
                     if policy.failure_timeout and policy.fails_back else
                     "stickiness keeps the service on the survivor" if not policy.fails_back else
                     "the node stays banned until `crm resource cleanup` (no failure_timeout)")
            return (f"the next httpd monitor fails; failcount 1 reaches migration_threshold {t}, so httpd is "
                    "banned on that node and, through `colocation httpd-with-vip inf`, the VIP moves with it "
                    f"to the other node; {after}")
        why = "unset (INFINITY)" if t is None else f"{t}, not reached by one failure"
        return (f"the next httpd monitor fails; pacemaker restarts Apache on the same node (failcount 1, "
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
    c.lab.kill_process(c.active, "corosync", 9)


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
            moves=True, outage_expected=True, inject=_kill_corosync, restore=_power_cycle,
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
    )
}

# The six plus split-brain, which teaches with or without fencing. fence-failure (over a
# minute per trial) runs when named or with 'all'.
DEFAULT = ("node-crash", "apache-crash", "gateway-loss", "planned-move", "ring0-loss", "corosync-kill", "split-brain")
FENCING = ("split-brain", "fence-failure")  # about fencing; split-brain also teaches without it


def select(spec: str | list[str] | tuple[str, ...], fencing: bool | None = None) -> list[Scenario]:
    """'all', 'default', a comma list, or a list of names -> scenarios; unknown names raise listing
    the valid ones. With ``fencing`` known: 'all' leaves out what needs fencing when it is off,
    and naming such a scenario is refused."""
    if spec == "default":
        spec = list(DEFAULT)
    if spec == "all":
        names = [n for n, s in SCENARIOS.items() if fencing is not False or not s.needs_fencing]
    else:
        names = [x.strip() for x in spec.split(",")] if isinstance(spec, str) else list(spec)
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise ValueError(f"scenarios {bad or names!r}: unknown; valid: all, default, {', '.join(SCENARIOS)}")
    if fencing is False:
        need = [n for n in names if SCENARIOS[n].needs_fencing]
        if need:
            raise ValueError(
                f"scenario {', '.join(need)} tests fencing, but this cluster runs without it "
                "(pacemaker.stonith_enabled is false); enable fencing or leave it out"
            )
    return [SCENARIOS[n] for n in names]
