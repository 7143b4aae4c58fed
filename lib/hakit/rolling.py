"""Node by node: work that restarts a node's cluster stack, done while the service stays up.

A rollout takes one node at a time, the nodes that do not run the service first and the one that
runs it last (so the service moves at most once away from its node, and back when that node is
online again). For each node: standby (day-2 `standby`: pacemaker moves what runs there and
nothing starts there), the work (restart corosync and pacemaker, or upgrade packages), wait until
the node is a cluster member again, online, and wait until the cluster is healthy with the service
on the preferred node. A node that does not rejoin within its timeout stops the rollout there: it
stays in standby (the service runs elsewhere), the nodes before it are done, the nodes after it
untouched, and the error says exactly that.

`maintenance_restart` is the other way: maintenance-mode on (pacemaker manages nothing, so what
runs keeps running), restart pacemaker on one node, maintenance-mode off; nothing moves. One
thing needs care there, seen on the lab: the node's transient attributes go with its pacemaker,
so its `pingd` is gone after the restart, and under maintenance-mode no ping monitor runs to set
it again. Ended like that, the `vip-needs-gateway` rule bans the VIP from the node at once and
the service moves away and back (1-2 s outage). So before maintenance ends, the node pings the
gateway itself and, if it answers, its `pingd` is set again to the value it had before
(`attrd_updater`); if it does not answer, `pingd` stays unset and the VIP leaves, as it should.

Everything runs under the cluster lock, taken once for the whole rollout; the day-2 operations
inside it take it again under the same owner. A dry run lists the steps and sends nothing that
changes a host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from . import lock
from .errors import HakitError
from .failover.runner import healthy
from .operations import Operations, read_facts
from .params import Params
from .runner import Runner
from .stages import cibstage

Progress = Callable[[str], None]

# The work per node, as the shell lines it runs there (in order, each must succeed).
RESTART = (
    "systemctl stop pacemaker",  # its resources left the node at standby; a clean leave, nobody is fenced
    "systemctl restart corosync",
    "systemctl start pacemaker",
)
UPGRADE = (
    "apt-get update -q",
    # pacemaker's and corosync's maintainer scripts restart them; the node is in standby, so that costs nothing
    "DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q --no-install-recommends "
    "-o Dpkg::Options::=--force-confold",
)
WORKS: dict[str, tuple[str, ...]] = {"restart": RESTART, "upgrade": UPGRADE}
WORK_TIMEOUT_S = 900  # one command of the work (an upgrade may take minutes)


class RolloutRefused(HakitError, ValueError):
    """The cluster is not in a state to start a rollout; nothing was changed."""


class RolloutFailed(HakitError, RuntimeError):
    """A node failed mid-rollout: it is left in standby, earlier nodes are done, later ones untouched."""

    def __init__(self, node: str, phase: str, why: str, done: list[str], untouched: list[str]) -> None:
        self.node, self.phase, self.done, self.untouched = node, phase, done, untouched
        super().__init__(
            f"rollout stopped at {node} ({phase}): {why}. {node} is left in standby, so the service runs on the "
            f"other nodes; done: {', '.join(done) or 'none'}; untouched: {', '.join(untouched) or 'none'}. "
            f"Fix {node}, then bring it back with `crm node online {node}` (day-2 `online`), and run the rollout "
            "again for the untouched nodes")


@dataclass
class NodeStep:
    node: str
    outcome: str = "planned"  # planned, done, failed, untouched
    standby_s: float = float("nan")
    work_s: float = float("nan")
    rejoin_s: float = float("nan")
    healthy_s: float = float("nan")
    detail: str = ""


@dataclass
class Rollout:
    work: str
    commands: tuple[str, ...]
    order: list[str]
    dry_run: bool
    steps: list[NodeStep] = field(default_factory=list)

    def plan_text(self) -> list[str]:
        """What the rollout does, node by node, in words and commands."""
        out = []
        for n in self.order:
            out.append(f"{n}: crm node standby {n}  (crm_attribute --node {n} --name standby --update on)")
            out += [f"{n}:   {c}" for c in self.commands]
            out.append(f"{n}: wait until {n} is a cluster member again")
            out.append(f"{n}: crm node online {n}; wait until the cluster is healthy, the service on its node")
        return out

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(s) for s in self.steps],
                            columns=["node", "outcome", "standby_s", "work_s", "rejoin_s", "healthy_s", "detail"])


def order(params: Params, serving: str | None) -> list[str]:
    """The nodes in params order, the one that runs the service last."""
    names = [n.name for n in params.nodes]
    return [n for n in names if n != serving] + ([serving] if serving in names else [])


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check()`` held; raises TimeoutError naming ``what``. Reads every 0.5 s."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - a node restarting its stack may not answer: read again
            pass
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.5)


def _member(hosts: MutableMapping[str, Runner], params: Params, node: str, via: str) -> bool:
    st = cibstage.status(hosts[via])
    s = st.nodes.get(node)
    return s is not None and s.online and not s.pending and not s.unclean


@contextmanager
def _held(hosts: MutableMapping[str, Runner]) -> Iterator[None]:
    """The cluster lock for the whole procedure; the day-2 operations inside take it again as its owner."""
    owner = lock.owner_id()
    prev = os.environ.get(lock.RUN_ID_ENV)
    os.environ[lock.RUN_ID_ENV] = owner
    taken: list[str] = []
    try:
        taken = lock.acquire(hosts, owner)
        yield
    finally:
        lock.release({m: hosts[m] for m in taken}, owner)
        if prev is None:
            os.environ.pop(lock.RUN_ID_ENV, None)
        else:
            os.environ[lock.RUN_ID_ENV] = prev


def _healthy_via(hosts: MutableMapping[str, Runner], params: Params, via: str) -> bool:
    return healthy(cibstage.status(hosts[via]), params)[0]


def _refuse_unless_ready(hosts: MutableMapping[str, Runner], params: Params) -> str | None:
    """The cluster must be healthy in its normal layout, with no node in standby; returns the serving node."""
    f = read_facts(hosts, params)
    ok, why = healthy(f.status, params)
    if not ok:
        raise RolloutRefused(f"the cluster is not healthy in its normal layout ({why}); nothing was changed. "
                             "Fix that first (`hakit check` names each drift)")
    return f.status.serving("vip")


def rollout(params: Params, hosts: MutableMapping[str, Runner], work: str = "restart", *, dry_run: bool = True,
            rejoin_timeout_s: float = 180, healthy_timeout_s: float = 180, record_dir: str = "",
            progress: Progress | None = None) -> Rollout:
    """Do ``work`` (``restart`` or ``upgrade``) node by node; see the module's docstring."""
    if work not in WORKS:
        raise RolloutRefused(f"work={work!r}: use one of {', '.join(WORKS)}")
    say = progress or (lambda m: None)
    serving = _refuse_unless_ready(hosts, params)
    r = Rollout(work, WORKS[work], order(params, serving), dry_run)
    r.steps = [NodeStep(n) for n in r.order]
    if dry_run:
        for line in r.plan_text():
            say(line)
        return r
    with _held(hosts):
        ops = Operations(params, hosts, dry_run=False, record_dir=record_dir)
        for i, step in enumerate(r.steps):
            n = step.node
            via = next(m for m in r.order if m != n)
            t0 = time.monotonic()
            say(f"{n}: standby")
            ops.standby(n)
            step.standby_s = round(time.monotonic() - t0, 2)
            phase = "work"
            try:
                t1 = time.monotonic()
                for c in r.commands:
                    say(f"{n}: {c}")
                    res = hosts[n].run(c, check=False, timeout=WORK_TIMEOUT_S)
                    if not res.ok:
                        raise RuntimeError(f"`{c}` exited {res.exit_code}: {(res.stderr or res.stdout).strip()[-300:]}")
                step.work_s = round(time.monotonic() - t1, 2)
                phase = "rejoin"
                say(f"{n}: waiting until it is a cluster member again")
                step.rejoin_s = round(_wait(f"{n} back in the membership", lambda: _member(hosts, params, n, via),
                                            rejoin_timeout_s), 2)
            except (RuntimeError, TimeoutError) as e:
                step.outcome, step.detail = "failed", f"{phase}: {e}"
                for later in r.steps[i + 1:]:
                    later.outcome = "untouched"
                raise RolloutFailed(n, phase, str(e), [s.node for s in r.steps[:i]],
                                    [s.node for s in r.steps[i + 1:]]) from e
            say(f"{n}: online")
            ops.online(n)
            step.healthy_s = round(_wait("the cluster healthy, the service on its node",
                                         lambda: _healthy_via(hosts, params, via), healthy_timeout_s), 2)
            step.outcome = "done"
            step.detail = " ; ".join(r.commands)
            say(f"{n}: done")
    return r


def maintenance_restart(params: Params, hosts: MutableMapping[str, Runner], node: str, *, dry_run: bool = True,
                        timeout_s: float = 180, record_dir: str = "", progress: Progress | None = None) -> list[str]:
    """maintenance-mode on, `systemctl restart pacemaker` on ``node``, wait until it is a member, maintenance-mode
    off, wait until healthy. Returns the steps (a dry run only lists them)."""
    say = progress or (lambda m: None)
    params.node(node)
    _refuse_unless_ready(hosts, params)
    gw = params.networks.public.gateway
    steps = ["crm configure property maintenance-mode=true", f"{node}: systemctl restart pacemaker",
             f"wait until {node} is a cluster member again",
             f"{node}: ping {gw}; if it answers, attrd_updater --name pingd --update <its value before> "
             f"--node {node} (the restart cleared it, and no ping monitor runs under maintenance-mode)",
             "crm configure property maintenance-mode=false",
             "wait until the cluster is healthy (pacemaker re-probes what runs; nothing should restart)"]
    if dry_run:
        for s in steps:
            say(s)
        return steps
    via = next(n.name for n in params.nodes if n.name != node)
    with _held(hosts):
        ops = Operations(params, hosts, dry_run=False, record_dir=record_dir)
        pingd = cibstage.status(hosts[via]).attribute(node, "pingd")
        say(steps[0])
        ops.maintenance(True)
        say(steps[1])
        hosts[node].run("systemctl restart pacemaker", timeout=300)
        _wait(f"{node} back in the membership", lambda: _member(hosts, params, node, via), timeout_s)
        say(steps[3])
        reach = hosts[node].run(["ping", "-n", "-q", "-c", "2", "-W", "1", str(gw)], check=False, timeout=30)
        if pingd and reach.ok:
            hosts[node].run(["attrd_updater", "--name", "pingd", "--update", pingd, "--node", node], timeout=30)
            _wait(f"pingd={pingd} on {node} again",
                  lambda: cibstage.status(hosts[via]).attribute(node, "pingd") == pingd, timeout_s)
        else:
            say(f"{node}: the gateway does not answer (or pingd was unset): pingd stays unset, the VIP will leave")
        say(steps[4])
        ops.maintenance(False)
        _wait("the cluster healthy", lambda: _healthy_via(hosts, params, via), timeout_s)
    return steps
