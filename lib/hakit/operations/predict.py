"""Where resources will end up: crm_simulate on a copy of the live CIB, never on the cluster itself.

A prediction is a chain of steps run on one node in a private temp dir (`cib.Workdir`). The live
CIB the plan was made from is the first copy. Each step changes the copy (the operation's own
command pointed at the copy with ``CIB_file``, a pure edit made here, or a crm_simulate option
such as ``--node-fail``), lets the scheduler run its next transition on it (``crm_simulate
--simulate --save-output``) and reads the result back with ``crm_mon`` (``CIB_file`` again) as a
`ClusterStatus`. The next step starts from that result.

crm_simulate predicts one transition and runs no agent, so an attribute an agent publishes only
once it runs is missing from its result: the gateway ping's ``pingd``, on which the VIP's
``vip-needs-gateway`` rule depends. After a step that starts ping on a node without ``pingd``,
one more step sets it as the agent does when the gateway answers; its label says so.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .. import cib
from ..errors import HakitError
from ..facts.errors import FactParseError
from ..facts.pacemaker import ClusterStatus, parse_crm_mon
from ..render.cib import PING_MULTIPLIER
from ..runner import RemoteError, Runner, as_command

MAX_STEPS = 6


class PredictionError(HakitError, RuntimeError):
    """crm_simulate (or the change on the copy) failed; the cluster was not touched."""


@dataclass(frozen=True)
class Change:
    """How one step changes the copy before the scheduler runs on it."""

    label: str
    commands: tuple[tuple[str, ...], ...] = ()  # each run on the node with CIB_file=<the copy>
    edit: Callable[[str], str] | None = field(default=None, compare=False)  # pure; first step only
    simulate: tuple[str, ...] = ()  # extra crm_simulate options, e.g. ("--node-fail", "vm-node2")


@dataclass(frozen=True)
class Layout:
    """Where everything runs: each node's state, each resource's nodes and whether it is managed."""

    nodes: tuple[tuple[str, str], ...]
    resources: tuple[tuple[str, tuple[str, ...], bool], ...]

    @classmethod
    def of(cls, st: ClusterStatus) -> "Layout":
        ids = list(dict.fromkeys(r.id for r in st.resources))
        return cls(
            tuple(sorted((n, s.state) for n, s in st.nodes.items())),
            tuple((i, tuple(st.running_on(i)), all(r.managed for r in st.instances(i))) for i in ids),
        )

    def where(self, rsc: str) -> tuple[str, ...]:
        return next((on for i, on, _ in self.resources if i == rsc), ())

    def differences(self, other: "Layout") -> list[str]:
        """What differs from ``other`` (the prediction), one phrase each; empty when they match."""
        out = []
        mine, theirs = dict(self.nodes), dict(other.nodes)
        for n in sorted(set(mine) | set(theirs)):
            if mine.get(n) != theirs.get(n):
                out.append(f"{n} is {mine.get(n, 'unknown')} (predicted {theirs.get(n, 'unknown')})")
        mres = {i: (on, m) for i, on, m in self.resources}
        for i, on, managed in other.resources:
            got_on, got_m = mres.get(i, ((), True))
            if got_on != on:
                out.append(f"{i} on {_nodes(got_on)} (predicted {_nodes(on)})")
            if got_m != managed:
                out.append(f"{i} {'managed' if got_m else 'unmanaged'} (predicted {'managed' if managed else 'unmanaged'})")
        return out


def _nodes(on: Sequence[str]) -> str:
    return ", ".join(on) or "nowhere"


@dataclass(frozen=True)
class Step:
    change: Change
    transition: str  # crm_simulate's "Transition Summary", one action a line ("" : nothing to do)
    status: ClusterStatus


@dataclass
class Prediction:
    """The steps crm_simulate went through, from the live CIB (``before``) to the end (``after``)."""

    via: str
    before: ClusterStatus
    steps: list[Step] = field(default_factory=list)

    @property
    def after(self) -> ClusterStatus:
        return self.steps[-1].status if self.steps else self.before

    @property
    def layout(self) -> Layout:
        return Layout.of(self.after)

    def to_frame(self) -> pd.DataFrame:
        """One row per node and resource: now, then after each step."""
        states = [self.before] + [s.status for s in self.steps]
        cols = ["now"] + [f"after step {i}" for i in range(1, len(self.steps) + 1)]
        layouts = [Layout.of(s) for s in states]
        rows = []
        for n, _ in layouts[0].nodes:
            rows.append({"what": f"node {n}", **{c: dict(lay.nodes).get(n, "?") for c, lay in zip(cols, layouts)}})
        for rsc, _, _ in layouts[-1].resources:
            row = {"what": rsc}
            for c, lay in zip(cols, layouts):
                m = {i: (on, managed) for i, on, managed in lay.resources}.get(rsc, ((), True))
                row[c] = _nodes(m[0]) + ("" if m[1] else " (unmanaged)")
            rows.append(row)
        return pd.DataFrame(rows, columns=["what", *cols])

    def text(self) -> str:
        """The prediction as plain text, for the record."""
        out = [f"crm_simulate on a copy of the live CIB, through {self.via}"]
        for i, s in enumerate(self.steps, 1):
            out += [f"step {i}: {s.change.label}", *(f"  {ln}" for ln in (s.transition or "(nothing to do)").splitlines())]
        return "\n".join(out) + "\n\n" + self.to_frame().to_string(index=False) + "\n"

    def _repr_html_(self) -> str:
        parts = [f"<h4>crm_simulate: what pacemaker will do (on a copy of the live CIB, through "
                 f"{html.escape(self.via)})</h4>"]
        for i, s in enumerate(self.steps, 1):
            parts.append(f"<p><b>step {i}</b>: {html.escape(s.change.label)}</p>"
                         f"<pre>{html.escape(s.transition or '(nothing to do)')}</pre>")
        return "".join(parts) + self.to_frame().to_html(index=False)


@dataclass(frozen=True)
class Published:
    """A node attribute an agent sets once it runs on a node (the gateway ping's ``pingd``)."""

    resource: str = "ping-gateway"
    attribute: str = "pingd"
    value: str = str(PING_MULTIPLIER)  # one gateway in host_list, answering

    def missing(self, st: ClusterStatus) -> list[str]:
        return [n for n in st.running_on(self.resource) if st.attribute(n, self.attribute) in (None, "")]

    def change(self, nodes: Sequence[str]) -> Change:
        return Change(
            f"{self.resource} runs on {', '.join(nodes)}: {self.attribute}={self.value} appears there, as the "
            "agent sets it once the gateway answers (crm_simulate runs no agent, so this step sets it)",
            tuple(("crm_attribute", "--node", n, "--name", self.attribute, "--update", self.value,
                   "--lifetime", "reboot") for n in nodes),
        )


def _status(host: Runner, path: str) -> ClusterStatus:
    r = host.run(f"CIB_file={shlex.quote(path)} crm_mon -1 --output-as=xml", check=False, timeout=60)
    try:
        return parse_crm_mon(r.stdout)
    except FactParseError as e:
        raise PredictionError(f"{host.name}: crm_mon could not read the simulated CIB {path}: {e}") from None


def predict(host: Runner, cib_xml: str, changes: Sequence[Change], published: Published | None = Published()
            ) -> Prediction:
    """Run ``changes`` one after the other on a copy of ``cib_xml`` on ``host``; nothing reaches the cluster."""
    with cib.Workdir(host) as wd:
        cur = wd.put("step0.xml", cib_xml)
        pred = Prediction(host.name, _status(host, cur))
        queue = list(changes)
        while queue:
            if len(pred.steps) >= MAX_STEPS:
                raise PredictionError(f"more than {MAX_STEPS} simulation steps; the prediction stops here")
            ch = queue.pop(0)
            n = len(pred.steps) + 1
            if ch.edit is not None:
                if n != 1:
                    raise PredictionError(f"{ch.label}: a pure edit can only be the first step")
                cur = wd.put("step1-input.xml", ch.edit(cib_xml))
            for argv in ch.commands:
                try:
                    host.run(f"CIB_file={shlex.quote(cur)} {as_command(argv)}", timeout=60)
                except RemoteError as e:
                    raise PredictionError(
                        f"{as_command(argv)} failed on a copy of the CIB, so it would fail on the cluster too "
                        f"(nothing was changed): {e}") from None
            out = f"{wd.path}/step{n}.xml"
            sim = host.run(f"crm_simulate --xml-file {shlex.quote(cur)} --simulate --save-output {shlex.quote(out)}"
                           + "".join(f" {shlex.quote(o)}" for o in ch.simulate), check=False, timeout=120)
            if sim.exit_code != 0:
                raise PredictionError(f"{host.name}: crm_simulate failed (exit {sim.exit_code}): "
                                      f"{(sim.stderr or sim.stdout).strip()[-300:]}")
            st = _status(host, out)
            pred.steps.append(Step(ch, cib.transition_summary(sim.stdout), st))
            cur = out
            if published is not None and (missing := published.missing(st)):
                queue.insert(0, published.change(missing))
        return pred
