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
    from .runner import TrialContext


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # what is done
    expected: str  # what should happen, in words
    moves: bool  # True: the service should end up on another node during the fault
    outage_expected: bool  # True: clients should see some downtime
    inject: Callable[["TrialContext"], None]
    restore: Callable[["TrialContext"], None]
    failcount_httpd: int = 0  # failures of httpd expected on the active node
    split_brain_without_fencing: bool = False  # the fault leaves the lost node running its resources

    def expected_node(self, active: str, other: str) -> str:
        return other if self.moves else active

    def outage_certain(self, fencing: bool) -> bool:
        """Must clients see downtime? Not in an unfenced split brain: the lost node keeps
        serving while the survivor starts a second copy, so probes may never fail."""
        return self.outage_expected and not (self.split_brain_without_fencing and not fencing)


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
    c.lab.link(c.active, c.params.networks.private.bond, up=False)


def _ring0_up(c: "TrialContext") -> None:
    c.lab.link(c.active, c.params.networks.private.bond, up=True)


def _kill_corosync(c: "TrialContext") -> None:
    c.lab.kill_process(c.active, "corosync", 9)


def _power_cycle(c: "TrialContext") -> None:
    c.lab.power_cut(c.active)
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
            "corosync misses the token (token + consensus), the survivor takes the VIP and starts Apache; "
            "when the node is back, the VIP returns to the preferred node (a second, short outage)",
            moves=True, outage_expected=True, inject=_power_cut, restore=_power_on,
        ),
        Scenario(
            "apache-crash", "kill -9 every Apache process on the active node",
            "the next httpd monitor fails; pacemaker restarts Apache on the same node (failcount 1); "
            "the VIP does not move",
            moves=False, outage_expected=True, inject=_kill_apache, restore=_nothing, failcount_httpd=1,
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
            "the node drops out of the membership but its Apache and VIP keep running: without fencing the "
            "survivor starts them too, and both nodes answer for the VIP (split brain). With fencing the "
            "survivor first powers the node off. Restored by power-cycling the node",
            moves=True, outage_expected=True, inject=_kill_corosync, restore=_power_cycle,
            split_brain_without_fencing=True,
        ),
    )
}

DEFAULT = ("node-crash", "apache-crash", "gateway-loss", "planned-move", "ring0-loss", "corosync-kill")


def select(spec: str | list[str] | tuple[str, ...]) -> list[Scenario]:
    """'all', a comma list, or a list of names -> scenarios; unknown names raise listing the valid ones."""
    names = list(SCENARIOS) if spec == "all" else ([x.strip() for x in spec.split(",")] if isinstance(spec, str) else list(spec))
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise ValueError(f"scenarios {bad or names!r}: unknown; valid: all, {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]
