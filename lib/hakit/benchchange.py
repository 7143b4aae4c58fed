"""`hakit bench change`: what each kind of change to a running lab cluster costs the client.

The client probe of the failover tests (HTTP GET of the VIP at 25/s from the lab's public bridge)
and the ARP watch (who answers for the VIP; two MACs at once is a split brain) run while the
cluster goes through, in order: a profile switch fast -> seed and seed -> fast (runtime reload),
a node added 2 -> 3 (`lab up` boots it, stages 0-6 bring it in), that node removed 3 -> 2
(`membership.remove`, then `lab drop`), a rolling restart of every node (`rolling.rollout`) and
a pacemaker restart under maintenance-mode on the serving node (`rolling.maintenance_restart`).
Each change is timed from its start until the cluster is healthy in its normal layout again.
Per change: failed probes, client downtime (the sum of the outages), outages, dual-MAC ARP
samples; the median over ``trials`` rounds (default 1: one round takes minutes), a CSV and a chart
in ``runs/bench-change-<UTC time>/``.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from pathlib import Path

from .params import Node, Params

CHANGES = ("profile fast -> seed", "profile seed -> fast", "node add 2 -> 3", "node remove 3 -> 2",
           "rolling restart", "maintenance restart")
COLUMNS = ["change", "trial", "seconds", "probes", "failed", "downtime_s", "outages", "dual_mac_samples", "detail"]


def with_added_node(params: Params) -> Params:
    """Pure: the params with one node more, numbered after the last (name, nodeid, both addresses + 1)."""
    last = params.nodes[-1]
    m = re.fullmatch(r"(.*?)(\d+)", last.name)
    name = f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{last.name}-2"
    node = Node(name=name, nodeid=max(n.nodeid for n in params.nodes) + 1,
                private_ip=ipaddress.ip_address(last.private_ip) + 1, public_ip=ipaddress.ip_address(last.public_ip) + 1)
    return Params.model_validate(params.model_dump() | {"nodes": [*(n.model_dump() for n in params.nodes),
                                                                   node.model_dump()]})


def _measure(change: str, trial: int, vip: str, do: Callable[[], str]) -> dict:
    from .failover import timeline
    from .failover.watch import ArpWatch, HttpProbe

    with HttpProbe(vip) as probe, ArpWatch(vip) as arp:
        t0 = time.monotonic()
        detail = do()
        seconds = time.monotonic() - t0
    samples = probe.snapshot()
    out = timeline.outages(samples)
    return {"change": change, "trial": trial, "seconds": round(seconds, 1), "probes": len(samples),
            "failed": sum(not s.ok for s in samples),
            "downtime_s": round(sum((o.duration or 0.0) for o in out), 2), "outages": len(out),
            "dual_mac_samples": sum(len(a.macs) > 1 for a in list(arp.samples)), "detail": detail}


def bench_change(params_file: str, trials: int = 1, out_root: Path | None = None,
                 progress: Callable[[str], None] = print) -> tuple[str, Path]:
    """Run the changes ``trials`` times on the built two-node lab cluster of ``params_file``; return the
    medians table (text) and the results folder."""
    import pandas as pd

    from . import membership, rolling
    from .bench import _out_dir
    from .failover.profile import use_profile
    from .failover.runner import settle
    from .lab import Lab
    from .notebook import connect_nodes, load
    from .stages import driver, pipeline

    if trials < 1:
        raise ValueError(f"--trials {trials}: use 1 or more")
    params = load(params_file)
    if params.lab is None:
        raise ValueError(f"{params_file}: bench change grows the cluster through the lab; this params file has no "
                         "lab section")
    if len(params.nodes) != 2:
        raise ValueError(f"{params_file}: bench change starts from two nodes (it grows to three and back); "
                         f"these params have {len(params.nodes)}")
    grown = with_added_node(params)
    new = grown.nodes[-1].name
    vip = str(params.vip.address)
    out = _out_dir("change", out_root)
    rows: list[dict] = []
    hosts = connect_nodes(params)
    try:
        progress("bench change: the cluster on profile fast, healthy, first")
        use_profile(hosts, params, "fast", out / "cib-fast")
        settle(hosts, params, timeout_s=180)
        for trial in range(1, trials + 1):
            def switch(to: str) -> str:
                done = use_profile(hosts, params, to, out / f"cib-{to}-{trial}")
                settle(hosts, params, timeout_s=180)
                return "; ".join(done) or "already so"

            def add() -> str:
                Lab(grown, progress=lambda m: None).up()
                gh = connect_nodes(grown)
                try:
                    for st in pipeline.stages(grown):
                        driver.run_stage(st, gh, dry_run=False)
                    settle(gh, grown, timeout_s=180)
                finally:
                    for h in gh.values():
                        h.close()
                return f"{new} booted and brought in by stages 0-6"

            def remove() -> str:
                gh = connect_nodes(grown)
                try:
                    r = membership.remove(grown, gh, new, dry_run=False)
                finally:
                    for h in gh.values():
                        h.close()
                settle(hosts, params, timeout_s=180)
                return f"membership.remove: {r.seconds}"

            def roll() -> str:
                r = rolling.rollout(params, hosts, "restart", dry_run=False)
                settle(hosts, params, timeout_s=180)
                return "; ".join(f"{s.node} {s.outcome}" for s in r.steps)

            def maint() -> str:
                node = params.preferred_node
                rolling.maintenance_restart(params, hosts, node, dry_run=False)
                settle(hosts, params, timeout_s=180)
                return f"pacemaker restarted on {node} under maintenance-mode"

            for change, do in zip(CHANGES, (lambda: switch("seed"), lambda: switch("fast"), add, remove, roll, maint)):
                progress(f"[trial {trial}] {change} ...")
                row = _measure(change, trial, vip, do)
                rows.append(row)
                progress(f"[trial {trial}] {change}: {row['seconds']} s, {row['probes']} probes, {row['failed']} failed, "
                         f"downtime {row['downtime_s']} s, dual-MAC samples {row['dual_mac_samples']}")
                if change.startswith("node remove"):
                    Lab(grown, progress=lambda m: None).drop(new)  # outside the measurement: the lab, not the cluster
    finally:
        for h in hosts.values():
            h.close()
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.to_csv(out / "change.csv", index=False)
    med = df.groupby("change", sort=False)[["seconds", "failed", "downtime_s", "outages", "dual_mac_samples"]].median()
    med.to_csv(out / "change-medians.csv")
    _chart(med).savefig(out / "change.png", dpi=110, bbox_inches="tight")
    text = "\n".join([f"per change, median of {trials} trial(s) (--trials; the default 1 keeps a round to minutes):",
                      med.to_string()])
    return text, out


def _chart(med):  # noqa: ANN001, ANN202 - a pandas DataFrame in, a matplotlib Figure out
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(med.index)
    a.barh(names, med["failed"], color="tab:red")
    a.set_xlabel("failed probes (of 25/s)")
    a.invert_yaxis()
    b.barh(names, med["downtime_s"], color="tab:orange")
    b.set_xlabel("client downtime (s)")
    b.invert_yaxis()
    b.set_yticklabels([])
    fig.suptitle("What each change to the running cluster cost the client (median)")
    fig.tight_layout()
    return fig
