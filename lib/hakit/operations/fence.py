"""A manual fence test of one node: power it off through the cluster's own fence device, then back on.

What proves fencing works is a fence: the device, its credentials, the BMC and the fencer, end to
end. The test asks the fencer directly, through a node that stays up, with the cluster's own
action (``stonith-action``, from ``pacemaker.fencing.action``): ``stonith_admin --fence`` (off)
or ``--reboot``. crmsh's ``crm node fence`` does the same through the scheduler (it sets the
node's ``terminate`` attribute; crmsh's ui_node.py on the nodes). After an ``off`` the node stays
off, so the test powers it on again through the same device (``stonith_admin --unfence``, the
device's ``on`` action), then waits until the node is back in the cluster and everything runs
where crm_simulate said it would once the node had failed and come back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar
from datetime import datetime, timezone

from .. import fencing
from ..facts.errors import FactParseError
from ..facts.pacemaker import ClusterStatus, FenceEvent, parse_fence_history
from ..ops import CLUSTER, ApplyContext, Op, OperationError
from ..params import Params
from ..runner import RemoteError, Runner
from ..stages import cibstage
from ..stages.base import Plan, Verification
from .base import CrmCommand, OperationInputError, Operation, OpFacts, read_facts
from .predict import Change, Layout

FENCE_TIMEOUT_S = 120  # stonith_admin's own default
Connect = Callable[[str], Runner]


def _read(host: Runner) -> ClusterStatus | None:
    try:
        return cibstage.status(host, timeout=30)
    except (FactParseError, RemoteError):
        return None


def _wait(host: Runner, done: Callable[[ClusterStatus], bool], timeout_s: float) -> ClusterStatus | None:
    """crm_mon through ``host`` every half second until ``done``; the last reading (None: unreadable)."""
    deadline = time.monotonic() + timeout_s
    st = None
    while time.monotonic() < deadline:
        st = _read(host)
        if st is not None and done(st):
            return st
        time.sleep(0.5)
    return st


@dataclass(frozen=True, kw_only=True)
class FenceNode(CrmCommand):
    """``stonith_admin --fence|--reboot <target>`` through a surviving node, then wait until it sees the
    target gone and (when the node stays off) the layout crm_simulate predicted for that moment."""

    target: str
    stays_off: bool
    expected: Callable[[], Layout | None] = field(repr=False, compare=False)
    seen: list[dict] = field(repr=False, compare=False)  # what the wait saw, for verify (the stage's list)

    def execute(self, ctx: ApplyContext) -> str:
        t0 = time.monotonic()
        self.seen.append({"started": time.time()})
        ctx.host(self.via).run(self.argv, timeout=self.timeout)
        fenced_s = time.monotonic() - t0
        host = ctx.host(self.via)
        gone = _wait(host, lambda s: not (s.nodes.get(self.target) and s.nodes[self.target].online), 60)
        want = self.expected() if self.stays_off else None
        st = gone
        if want is not None:
            st = _wait(host, lambda s: Layout.of(s) == want, 60) or gone
        self.seen[-1].update(fenced_s=fenced_s, layout=Layout.of(st) if st else None, want=want)
        return f"{self.crm}: `{self.command}` through {self.via} returned after {fenced_s:.1f} s"


@dataclass(frozen=True, kw_only=True)
class AwaitRejoin(Op):
    """Read-only: wait until the target is online in the cluster again, then reconnect to it over SSH."""

    node: str = CLUSTER
    via: str
    target: str
    wait_s: float
    connect: Connect | None = field(default=None, repr=False, compare=False)
    seen: list[dict] = field(default_factory=list, repr=False, compare=False)  # the stage's list (FenceNode's)
    mutates: ClassVar[bool] = False

    def describe(self) -> str:
        return f"wait (up to {self.wait_s:.0f} s) until crm_mon through {self.via} shows {self.target} online again"

    def execute(self, ctx: ApplyContext) -> str:
        t0 = time.monotonic()
        st = _wait(ctx.host(self.via), lambda s: bool(s.nodes.get(self.target) and s.nodes[self.target].online),
                   self.wait_s)
        if st is None or not (st.nodes.get(self.target) and st.nodes[self.target].online):
            raise OperationError(f"{self.target} did not come back online within {self.wait_s:.0f} s; look at its "
                                 "console or BMC (stonith_admin --unfence powers it on through its fence device)")
        back = time.monotonic() - t0
        if self.seen:
            self.seen[-1].update(rejoined_s=back, rejoined_at=time.time())
        if self.connect is not None and self.target in ctx.hosts:
            old = ctx.hosts[self.target]
            try:
                old.close()
            except Exception:  # noqa: BLE001 - the old session died with the node
                pass
            ctx.hosts[self.target] = self.connect(self.target)
        return f"{self.target} online in the cluster again after {back:.1f} s"


class FenceTest(Operation):
    def __init__(self, params: Params, node: str, confirmed: bool, connect: Connect | None = None,
                 wait_s: float = 240) -> None:
        super().__init__(params, wait_s)
        if not params.pacemaker.stonith_enabled or params.pacemaker.fencing is None:
            raise OperationInputError("pacemaker.stonith_enabled is false (or pacemaker.fencing unset): this cluster "
                                      "has no fencing to test")
        self.node = node
        self.connect = connect
        self.action = params.pacemaker.fencing.action
        self.title = f"fence test {node}"
        if not confirmed:
            self.forced_dry_run = (f"not confirmed: a fence test powers {node} off; repeat its name in confirm "
                                   "to run it")
        self.seen: list[dict] = []  # filled by the FenceNode that runs (each plan makes a new one; all share this)

    def gather(self, hosts: Mapping[str, Runner]) -> OpFacts:
        self.facts = read_facts(hosts, self.params, avoid=self.node)
        return self.facts

    def device(self) -> fencing.StonithResource:
        return next(d for d in fencing.stonith_resources(self.params) if d.target == self.node)

    def decide(self, facts: OpFacts, p: Plan) -> None:
        st = facts.status
        me = st.nodes.get(self.node)
        if me is None or not me.online:
            p.blocked[CLUSTER] = f"{self.node} is {me.state if me else 'unknown to the cluster'}: a fence test starts " \
                                 "from a node that is online"
            return
        dev = self.device()
        if not st.running_on(dev.id):
            p.blocked[CLUSTER] = (f"{dev.id}, the device that powers off {self.node}, is not running: the fence would "
                                  f"fail (crm resource cleanup {dev.id}; check its BMC)")
            return
        flag = "--fence" if self.action == "off" else "--reboot"
        fence = FenceNode(
            via=facts.via, target=self.node, stays_off=self.action == "off",
            argv=("stonith_admin", flag, self.node, "--timeout", str(FENCE_TIMEOUT_S)),
            crm=f"crm node fence {self.node}", timeout=FENCE_TIMEOUT_S + 30,
            expected=self._while_off, seen=self.seen,
            reason=f"the fencer on {facts.via} powers {self.node} {'off' if self.action == 'off' else 'off and on'} "
                   f"with {dev.id} (stonith-action={self.action})")
        p.ops.append(fence)
        if self.action == "off":
            p.ops.append(CrmCommand(
                via=facts.via, argv=("stonith_admin", "--unfence", self.node, "--timeout", str(FENCE_TIMEOUT_S)),
                crm="(none: crmsh has no power-on)", timeout=FENCE_TIMEOUT_S + 30,
                reason=f"stonith-action=off leaves a fenced node off; {dev.id}'s 'on' action powers it on again"))
        p.ops.append(AwaitRejoin(via=facts.via, target=self.node, wait_s=self.wait_s, connect=self.connect,
                                 seen=self.seen, reason="the node boots, starts corosync and pacemaker, and joins"))
        # A cloned Apache runs idle on every node: only the VIP's node serves clients.
        moving = ("vip",) if self.params.pacemaker.cloned_apache else ("vip", "httpd")
        serving = [r for r in moving if self.node in st.running_on(r)]
        if serving:
            p.notes.append(f"{self.node} runs {', '.join(serving)}: clients lose the service while it moves (and "
                           "again if it moves back). A node that runs nothing is fenced without clients noticing.")
        if self.forced_dry_run:
            p.notes.append(self.forced_dry_run)

    def changes(self, facts: OpFacts) -> list[Change]:
        return [Change(f"{self.node} fails and the cluster fences it (crm_simulate --node-fail {self.node})",
                       simulate=("--node-fail", self.node)),
                Change(f"{self.node} is powered on and joins again (crm_simulate --node-up {self.node})",
                       simulate=("--node-up", self.node))]

    def _while_off(self) -> Layout | None:
        """crm_simulate's layout once the node has failed and was fenced (step 1), for the wait after the fence."""
        if self.prediction is None or not self.prediction.steps:
            return None
        return Layout.of(self.prediction.steps[0].status)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        v = super().verify(hosts, wait)
        seen = self.seen[-1] if self.seen else None
        if seen is None:  # dry run, or nothing ran
            return v
        events = self.history(hosts[self._read_via()], seen["started"] - 5)
        off = [e for e in events if e.action in ("off", "reboot") and e.ok]
        v.add(self.node, f"fenced ({self.action}) by the cluster's fencer", bool(off),
              "; ".join(f"{e.action} by {e.delegate} at {_utc(e.completed)}" for e in off) or "no successful fence event")
        if self.action == "off":
            on = [e for e in events if e.action == "on" and e.ok]
            v.add(self.node, "powered on again through its fence device", bool(on),
                  "; ".join(f"on by {e.delegate} at {_utc(e.completed)}" for e in on) or "no successful 'on' event")
            want, got = seen.get("want"), seen.get("layout")
            if want is not None:
                wrong = got.differences(want) if got is not None else ["crm_mon unreadable"]
                v.add(CLUSTER, f"while {self.node} was off: as crm_simulate predicted (step 1)", not wrong,
                      "nodes and resources as predicted" if not wrong else "; ".join(wrong))
        st = self.after
        s = st.nodes.get(self.node) if st else None
        v.add(self.node, "online in the cluster again", bool(s and s.online), s.state if s else "unknown")
        return v

    def history(self, host: Runner, since: float) -> list[FenceEvent]:
        out = host.run(["stonith_admin", "--history", self.node, "--verbose", "--output-as=xml"], check=False,
                       timeout=60).stdout
        return [e for e in parse_fence_history(out) if e.target == self.node and (e.completed or 0) >= since]

    def artifacts(self) -> dict[str, object]:
        out = super().artifacts()
        if self.seen:
            s = self.seen[-1]
            whole = s.get("rejoined_at", s["started"]) - s["started"]
            out["fence.txt"] = (f"started {_utc(s['started'])}; stonith_admin returned after {s.get('fenced_s', 0):.1f} s; "
                                f"online again {s.get('rejoined_s', 0):.1f} s after the "
                                f"{'power-on' if self.action == 'off' else 'reboot'}; {whole:.1f} s from the fence to "
                                "the node back in the cluster\n")
        return out


def _utc(t: float | None) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3] + " UTC" if t else "?"
