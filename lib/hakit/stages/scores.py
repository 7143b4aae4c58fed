"""Allocation scores: why the VIP runs where it does, now and if the preferred node lost its gateway.

Read-only. The live CIB is copied into a private temp dir on one node (`cib.Workdir`); `crm_simulate
--show-scores` runs on the copy (with ``--save-output``, so it keeps no shadow file in pacemaker's CIB
directory), once as it is and once with the gateway ping's attribute (``pingd``) at 0 on the preferred
node, the value the ping agent publishes there when the gateway stops answering. Nothing reaches the
cluster. Notebook 06 shows both side by side.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .. import cib
from ..params import Params
from ..render.cib import HTTPD_CLONE
from ..runner import Runner

_SCORE = re.compile(r"(\S+) allocation score on (\S+): (\S+)")
RESOURCES = ("vip", "httpd")
# The cloned-apache layout: crm_simulate scores the clone as a whole (httpd-clone) and each instance
# (httpd:0, httpd:1); the clone's row is the one to read beside the VIP's.
CLONED_RESOURCES = ("vip", HTTPD_CLONE)


def parse_scores(text: str) -> dict[tuple[str, str], str]:
    """``crm_simulate -s`` allocation scores: (resource, node) -> score as printed (pacemaker 2.1 and 3.0
    both print ``<function>: <resource> allocation score on <node>: <score>``)."""
    out: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        m = _SCORE.search(line)
        if m:
            out[(m.group(1), m.group(2))] = m.group(3)
    return out


def scores_on_copy(host: Runner, changes: tuple[tuple[str, ...], ...] = ()) -> dict[tuple[str, str], str]:
    """Scores of the live CIB with ``changes`` (argv, run with CIB_file=<the copy>) applied to a copy first."""
    xml = host.run("cibadmin --query", check=True, timeout=60).stdout
    with cib.Workdir(host) as wd:
        path = wd.put("live.xml", xml)
        for argv in changes:
            host.run(f"CIB_file={shlex.quote(path)} {shlex.join(argv)}", check=True, timeout=60)
        out = shlex.quote(f"{wd.path}/scored.xml")
        text = host.run(f"crm_simulate --show-scores --xml-file {shlex.quote(path)} --save-output {out}",
                        check=True, timeout=60).stdout
    return parse_scores(text)


@dataclass(frozen=True)
class ScoreView:
    via: str
    node: str  # the preferred node, whose gateway the second column takes away
    now: dict[tuple[str, str], str]
    gateway_lost: dict[tuple[str, str], str]
    nodes: tuple[str, ...]
    error: str = ""
    resources: tuple[str, ...] = RESOURCES  # the rows: CLONED_RESOURCES in the cloned-apache layout

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for rsc in self.resources:
            for n in self.nodes:
                rows.append({"resource": rsc, "node": n, "score now": self.now.get((rsc, n), "?"),
                             f"{self.node} without its gateway": self.gateway_lost.get((rsc, n), "?")})
        return pd.DataFrame(rows, columns=["resource", "node", "score now", f"{self.node} without its gateway"])

    def winner(self, scores: Mapping[tuple[str, str], str], rsc: str = "vip") -> str:
        def value(s: str) -> float:
            return {"INFINITY": float("inf"), "+INFINITY": float("inf"), "-INFINITY": float("-inf")}.get(s, float(s))
        best = max(self.nodes, key=lambda n: value(scores.get((rsc, n), "-INFINITY")))
        return best if value(scores.get((rsc, best), "-INFINITY")) > float("-inf") else "no node"

    def _repr_html_(self) -> str:
        if self.error:
            return f"<p>allocation scores not read: {html.escape(self.error)}</p>"
        return (f"<h4>crm_simulate --show-scores on a copy of the live CIB (through {html.escape(self.via)})</h4>"
                + self.to_frame().to_html(index=False)
                + f"<p>The VIP goes to the highest score: {html.escape(self.winner(self.now))} now, "
                  f"{html.escape(self.winner(self.gateway_lost))} if {html.escape(self.node)} lost its gateway.</p>")


def view(hosts: Mapping[str, Runner], params: Params) -> ScoreView:
    """Scores now and with the preferred node's pingd at 0, read through the first node that answers."""
    node = params.preferred_node
    nodes = tuple(n.name for n in params.nodes)
    lost = (("crm_attribute", "--node", node, "--name", "pingd", "--update", "0", "--lifetime", "reboot"),)
    rows = CLONED_RESOURCES if params.pacemaker.cloned_apache else RESOURCES
    err = ""
    for name in nodes:
        try:
            return ScoreView(name, node, scores_on_copy(hosts[name]), scores_on_copy(hosts[name], lost), nodes,
                             resources=rows)
        except Exception as e:  # noqa: BLE001 - a node without a running pacemaker: try the next, say why at the end
            err = f"{name}: {e}"
    return ScoreView("", node, {}, {}, nodes, error=err or "no node answered", resources=rows)
