"""Take a node out of a running cluster (3 -> 2) without stopping the service.

Adding a node needs nothing here: add it to the params and run the stages (stage 3 classes the
new nodelist as a runtime change, starts the cluster on the new node only; stage 4 adds its
fence device and retunes the fence delay; the ping clone starts there by itself).

Removing one is never implied by params that lost a node (stage 3 refuses that: a node left
out by mistake must not be dropped). It is one explicit call, `remove` (CLI `hakit node
remove NAME --params FILE`), with the params that still list the node, so hakit can reach it.
The plan, in order (each step a typed operation, shown by a dry run and recorded):

1. drain: ``standby`` on the node; wait until nothing runs there (the service moves away first
   if it ran there; a passive node costs the client nothing);
2. stop pacemaker, then corosync on the node (a clean leave: nobody is fenced), disable both at
   boot and move its corosync.conf aside, so a reboot does not bring it back;
3. the staying nodes get the smaller nodelist (and ``two_node`` again when two stay) from stage 3's
   own plan, applied with one ``corosync-cfgtool -R`` (class: nodelist change, no outage);
4. ``crm_node --remove NAME --force`` through a staying node: pacemaker forgets it (its CIB node
   entry, its status section, its standby attribute, its peer caches; pacemaker 3.0 asks for
   ``--force``, as crmsh 5's ``crm cluster remove`` passes it);
5. its fence device and that device's location constraint leave the CIB;

then stage 4 runs with the smaller params (a fence delay on the preferred node's device again
when two nodes stay) and stage 3 verifies links, quorum and membership.

Afterwards, take the node out of the params file: the stages then find nothing to change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import HakitError
from .facts.pacemaker import ClusterStatus
from .fencing import stonith_resources
from .ops import ApplyContext, Barrier, Command, Op, OperationError, Systemctl
from .params import Params
from .paths import COROSYNC_CONF
from .render.cib import fence_devices
from .runner import Runner
from .stages import cibstage, corosync
from .stages.base import Plan, Verification

STAGE = "node removal"
REMOVED_CONF = f"{COROSYNC_CONF}.hakit-removed"
Progress = Callable[[str], None]


class RemovalRefused(HakitError, ValueError):
    """The node cannot be removed as asked; nothing was changed."""


def remaining_params(params: Params, name: str) -> Params:
    """The params without ``name``; refuses what removal cannot do safely (nothing touched yet)."""
    names = [n.name for n in params.nodes]
    if name not in names:
        raise RemovalRefused(f"node {name!r} is not in the params (nodes: {', '.join(names)}); `node remove` needs "
                             "the params that still list it, so it can reach the node to drain and stop it")
    if len(names) <= 2:
        raise RemovalRefused(f"node {name!r}: the cluster has {len(names)} nodes; removing one would leave "
                             f"{len(names) - 1}, and an active/passive cluster needs at least 2")
    if params.preferred_node == name:
        raise RemovalRefused(f"node {name!r} is pacemaker.preferred_node (where the service prefers to run); set "
                             "pacemaker.preferred_node to a node that stays, run stage 6, then remove it")
    rest = params.model_copy(update={"nodes": [n for n in params.nodes if n.name != name]})
    before = {r.target: _device_key(r) for r in stonith_resources(params)}
    after = {r.target: _device_key(r) for r in stonith_resources(rest)}
    moved = sorted(n for n in after if before.get(n) != after[n])
    if moved:
        raise RemovalRefused(f"removing {name!r} would change the fence device of {', '.join(moved)} (this site's "
                             "inventory numbers the BMCs by node position, as the lab does); remove the last node of "
                             "the params, or give each node its own fencing entry")
    return rest


def _device_key(r) -> tuple:  # noqa: ANN001 - a fencing.StonithResource
    return tuple(sorted((k, v) for k, v in r.attributes.items() if k != "pcmk_delay_base"))


@dataclass(frozen=True, kw_only=True)
class WaitDrained(Op):
    """Read-only: wait until nothing runs on ``target`` (read through ``node``'s crm_mon)."""

    target: str
    timeout_s: float = 120
    mutates: ClassVar[bool] = False

    def describe(self) -> str:
        return f"wait until no resource runs on {self.target} (crm_mon), at most {self.timeout_s:.0f} s"

    def execute(self, ctx: ApplyContext) -> str:
        t0 = time.monotonic()
        while True:
            st = cibstage.status(ctx.host(self.node))
            left = still_on(st, self.target)
            me = st.nodes.get(self.target)
            if not left and (me is None or me.standby):  # standby seen, so its transition was computed
                return f"nothing runs on {self.target} after {time.monotonic() - t0:.1f} s"
            if time.monotonic() - t0 > self.timeout_s:
                raise OperationError(f"{self.target} still runs {', '.join(left)} {self.timeout_s:.0f} s after "
                                     f"standby; it is left in standby with its cluster stack running. See why with "
                                     f"`crm_mon -1` on {self.node}; `crm node online {self.target}` undoes the drain")
            time.sleep(0.5)


def still_on(st: ClusterStatus, node: str) -> list[str]:
    """Pure: the resources with an active instance on ``node``."""
    return sorted({r.id for r in st.resources if r.active and node in r.nodes})


@dataclass
class RemovalFacts:
    """What the removal plan reads: stage 3's facts of the staying nodes and of the leaving one, and the
    cluster through a staying node."""

    staying: corosync.CorosyncFacts
    leaving: corosync.NodeFacts
    status: ClusterStatus
    via: str


def gather(params: Params, hosts: MutableMapping[str, Runner], name: str) -> RemovalFacts:
    rest = remaining_params(params, name)
    staying = corosync.gather(hosts, rest)
    leaving = corosync.gather(hosts, params).nodes[name]
    via = next((n for n, f in staying.nodes.items() if f.pacemaker_active), None)
    if via is None:
        raise RemovalRefused(f"pacemaker runs on none of the nodes that stay ({', '.join(staying.nodes)}); "
                             "the removal drains through them. Start the cluster first (stage 3)")
    return RemovalFacts(staying, leaving, cibstage.status(hosts[via]), via)


def plan(params: Params, name: str, facts: RemovalFacts) -> Plan:
    """Pure: the operations that take ``name`` out of the running cluster (see the module docstring)."""
    rest = remaining_params(params, name)
    stay = [n.name for n in rest.nodes]
    p = Plan(STAGE, order=[n.name for n in params.nodes])
    via = facts.via
    offline = [n for n in stay if not (facts.status.nodes.get(n) and facts.status.nodes[n].online)]
    if offline:
        p.blocked["cluster"] = (f"{', '.join(offline)} {'is' if len(offline) == 1 else 'are'} not online; removing "
                                f"{name} now would leave the cluster without a healthy pair. Nothing was changed")
        return p
    co = corosync.plan(rest, facts.staying, removing=(name,))
    if co.blocked:
        p.blocked.update(co.blocked)
        return p
    if not any("class: nodelist change" in n for n in co.notes):
        p.blocked["cluster"] = (f"stage 3 does not class the smaller nodelist as a runtime change ({'; '.join(co.notes)}); "
                                "nothing was changed")
        return p
    runs = still_on(facts.status, name)
    serving = facts.status.service_node(rest.pacemaker.cloned_apache) == name
    p.notes.append(
        f"class: node removal, no outage: {name} is drained (standby: "
        + (f"{', '.join(runs)} move{'s' if len(runs) == 1 else ''} off it" if runs else "nothing runs there")
        + ("; the service moves once, a planned move" if serving else "; the service does not move")
        + f"), its pacemaker and corosync stop (a clean leave), then {', '.join(stay)} reload the smaller nodelist "
        f"on one `corosync-cfgtool -R` and pacemaker forgets {name}; nothing restarts on {', '.join(stay)}")
    p.notes += [n for n in co.notes if n.startswith("class: nodelist")]
    L = facts.leaving
    if facts.status.nodes.get(name) is not None and (L.pacemaker_active or L.corosync_active):
        p.ops.append(Command(node=via, argv=("crm_attribute", "--node", name, "--name", "standby", "--update", "on"),
                             label=f"standby {name}",
                             reason=f"drain: pacemaker moves what runs on {name} to the other nodes and starts "
                                    "nothing there"))
        p.ops.append(WaitDrained(node=via, target=name, reason="its resources have left before its stack stops"))
        p.ops.append(Barrier(text=f"nothing runs on {name}"))
    if L.pacemaker_active:
        p.ops.append(Systemctl(node=name, verb="stop", units=("pacemaker",), timeout=180,
                               reason="a clean leave: the others see it go, nobody is fenced"))
        p.ops.append(Barrier(text=f"pacemaker stopped on {name}"))
    if L.corosync_active:
        p.ops.append(Systemctl(node=name, verb="stop", units=("corosync",), timeout=180,
                               reason="it leaves the membership; the others stay quorate (2 of 3 votes)"))
    if L.corosync_enabled or L.pacemaker_enabled:
        p.ops.append(Systemctl(node=name, verb="disable", units=corosync.UNITS, reason="a reboot must not start them"))
    if L.conf_text is not None:
        p.ops.append(Command(node=name, argv=("mv", "-f", COROSYNC_CONF, REMOVED_CONF),
                             label=f"move {COROSYNC_CONF} aside ({REMOVED_CONF})",
                             reason="without it corosync cannot start there by hand or at boot and rejoin"))
    p.ops.append(Barrier(text=f"{name} is out of the membership"))
    p.ops += co.ops
    p.undo += co.undo
    p.ops.append(Barrier(text=f"the staying nodes run the nodelist without {name}"))
    p.ops.append(Command(node=via, argv=("crm_node", "--remove", name, "--force"),
                         label=f"crm_node --remove {name} --force",
                         reason="pacemaker forgets the node: its CIB node entry (with standby), its status section "
                                "and its peer caches"))
    mine = [i for i in fence_devices(params) if f"fence-{name}" in (getattr(i, "rsc", None), getattr(i, "id", None))]
    for item in sorted(mine, key=lambda i: not hasattr(i, "rsc")):  # the constraint before the device it names
            tag = "rsc_location" if hasattr(item, "rsc") else "primitive"
            p.ops.append(Command(
                node=via, argv=(f"if cibadmin --query --xpath \"//{tag}[@id='{item.id}']\" >/dev/null 2>&1; then "
                                f"cibadmin --delete --xml-text '<{tag} id=\"{item.id}\"/>'; fi"),
                label=f"delete {tag} {item.id} from the CIB",
                reason=f"{name} is gone: its fence device goes with it" if tag == "primitive" else
                f"the rule that kept {name} from running its own fence device"))
    p.notes.append(f"then stage 4 with the params without {name} (fence devices for {', '.join(stay)}"
                   + (", pcmk_delay_base on the preferred node's device again" if len(stay) == 2 else "")
                   + "), and stage 3 verifies the cluster")
    return p


@dataclass
class Removal:
    node: str
    plan: Plan
    dry_run: bool
    fence_stage: object | None = None  # stage 4's StageRun on the staying nodes
    verification: Verification | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [*self.plan.notes, *self.plan.program()]


def remove(params: Params, hosts: MutableMapping[str, Runner], name: str, *, dry_run: bool = True,
           record_dir: str = "", progress: Progress | None = None) -> Removal:
    """Plan (dry run: show) or apply the removal of ``name``; see the module docstring. ``hosts``: every node
    in ``params``, the leaving one included."""
    from .stages import driver, properties

    say = progress or (lambda m: None)
    rest = remaining_params(params, name)
    facts = gather(params, hosts, name)
    p = plan(params, name, facts)
    r = Removal(name, p, dry_run)
    for line in r.lines():
        say(line)
    if p.blocked:
        raise RemovalRefused("; ".join(f"{n}: {why}" for n, why in p.blocked.items()))
    staying = {n.name: hosts[n.name] for n in rest.nodes}
    if dry_run:
        r.fence_stage = driver.run_stage(properties.PropertiesStage(rest), staying, dry_run=True)
        return r
    t0 = time.monotonic()
    with driver.locked(hosts):
        driver.apply(p, hosts, dry_run=False, record_dir=record_dir, progress=say)
    r.seconds["removal"] = round(time.monotonic() - t0, 2)
    t1 = time.monotonic()
    r.fence_stage = driver.run_stage(properties.PropertiesStage(rest), staying, dry_run=False, record_dir=record_dir)
    r.seconds["stage 4"] = round(time.monotonic() - t1, 2)
    r.verification = corosync.verify(staying, rest, wait_s=60)
    if not r.verification.ok:
        raise OperationError(f"{name} was removed, but stage 3's checks on {', '.join(staying)} fail: "
                             + "; ".join(f"{c.node} {c.check}: {c.detail}" for c in r.verification.checks if not c.ok))
    return r
