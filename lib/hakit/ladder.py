"""The failover ladder (`hakit bench failover --ladder`): five clusters, from the article's timing to the
fastest layout, each measured with fencing on by the same suite, side by side in one run.

A rung is a timing profile, with or without a quorum device, in one of the two layouts. Adding a quorum
device to a running cluster is a full restart, and switching the layout of a built cluster is a
conflict, so each new structure (device, layout) starts from fresh lab nodes and is built by the
stages 00-06 (and 03q) like a deployment; a rung that differs from the one before only in its profile
is switched to it in place (stages 3-5), as `bench failover --profiles` does.

Beside each median the ladder prints the floor the settings allow: the waits that the settings fix
(corosync's detection, the fence delay, the fence agent's power wait, the ping dampen) plus what must
stop and start, from the exec-time of those operations as pacemaker recorded them in that rung, and the
worst case, which adds a monitor interval where a monitor has to notice the fault first.
"""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .fencing import fence_wait_s
from .params import Params
from .profiles import Profile, get_profile


@dataclass(frozen=True)
class Rung:
    name: str
    profile: str
    qdevice: bool
    layout: str  # article | cloned-apache

    @property
    def structure(self) -> tuple[bool, str]:
        """What needs fresh nodes to change (the profile does not)."""
        return self.qdevice, self.layout

    @property
    def slug(self) -> str:
        return self.name.replace("+", "-")


RUNGS = (
    Rung("seed", "seed", False, "article"),
    Rung("fast", "fast", False, "article"),
    Rung("fast+qdevice", "fast", True, "article"),
    Rung("fast+qdevice+cloned", "fast", True, "cloned-apache"),
    Rung("lan+qdevice+cloned", "lan", True, "cloned-apache"),
)

# The goals the ladder is measured against (lab, fencing on, the median of the best rung), seconds.
GOALS = {"node-crash": 2.5, "corosync-kill": 2.5, "apache-crash": 1.0, "planned-move": 0.5,
         "gateway-loss": 1.0, "split-brain": 0.0, "ring0-loss": 0.0}


def select_rungs(spec: str) -> list[Rung]:
    """'all' or a comma list of rung names -> rungs in ladder order; unknown names raise listing the valid."""
    if spec.strip() == "all":
        return list(RUNGS)
    names = [x.strip() for x in spec.split(",") if x.strip()]
    known = {r.name: r for r in RUNGS}
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f"--rungs {spec!r}: unknown rung(s) {bad or names}; valid: all, {', '.join(known)}")
    return [r for r in RUNGS if r.name in names]


def rung_params(base: Params, rung: Rung) -> Params:
    """Pure: the base params as this rung runs them (profile, layout, quorum device or none), validated."""
    if not base.pacemaker.stonith_enabled:
        raise ValueError("pacemaker.stonith_enabled is false: the ladder measures with fencing on "
                         "(use params/lab-qdevice.yaml)")
    if rung.qdevice and base.quorum_device is None:
        raise ValueError(f"rung {rung.name} needs a quorum device and these params have no quorum_device; "
                         "use params/lab-qdevice.yaml, or --rungs seed,fast")
    d = base.model_dump()
    d["cluster"]["profile"] = rung.profile
    d["pacemaker"]["layout"] = rung.layout
    if not rung.qdevice:
        d["quorum_device"] = None
    return Params.model_validate(d)


# ----------------------------------------------------------------- floors


def op_times(status_xml: str) -> dict[tuple[str, str], float]:
    """Median exec-time (s) of each resource's successful start and stop in a CIB status section, over the
    nodes (pacemaker keeps the last start-or-stop of every resource per node). Clone instances count as
    their primitive."""
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    for res in ET.fromstring(status_xml).iter("lrm_resource"):
        rid = (res.get("id") or "").split(":")[0]
        for op in res.iter("lrm_rsc_op"):
            if op.get("operation") in ("start", "stop") and op.get("rc-code") == "0" and op.get("exec-time"):
                seen[(rid, op.get("operation", ""))].append(int(op.get("exec-time", "0")) / 1000)
    return {k: statistics.median(v) for k, v in seen.items()}


def floors(params: Params, prof: Profile, times: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Per scenario: the least client downtime these settings allow (floor_s), the most a monitor's timing
    and the first stop can add to it (worst_s), and why. The fence agent's calls to the BMC and the
    scheduler's own steps are not counted: a floor, not a forecast.

    What moves stops in order (Apache, then the VIP; with cloned Apache only the VIP) and starts in the
    reverse order. Clients fail from somewhere inside the first stop, so the floor counts the later stops
    and every start, and the worst case the first stop too."""
    from .failover.runner import fence_delay_s

    r = prof.resources
    cloned = params.pacemaker.cloned_apache
    t = lambda rid, op: times.get((rid, op), 0.0)  # noqa: E731
    moving = ["vip"] if cloned else ["vip", "httpd"]  # start order; stops run the other way
    start = sum(t(x, "start") for x in moving)
    first_stop = t(moving[-1], "stop")
    later_stops = sum(t(x, "stop") for x in moving[:-1])
    move = later_stops + start  # a planned move: stop here, start there
    what = "the VIP" if cloned else "the VIP and Apache"
    move_why = (f"starts of {what} {start:.2f}" + (f" + the VIP's stop {later_stops:.2f}" if not cloned else "")
                + f" (the first stop, {first_stop:.2f}, only in the worst case)")
    detect = prof.failure_detection_ms(len(params.nodes)) / 1000
    delay, wait = fence_delay_s(params), fence_wait_s(params)
    # A crashed node is off already: the agent's first status query says so and it returns at once.
    lost = detect + delay + start
    lost_why = (f"detection {detect:.2f} + fence delay {delay:g} + starts of {what} {start:.2f} (the node is off "
                "already: no power wait)")
    # A node whose corosync died serves on until the agent powers it off; then the power wait and the starts.
    killed = wait + start
    killed_why = (f"it serves until it is powered off (detection and fence delay pass meanwhile), then power wait "
                  f"{wait:g} + starts of {what} {start:.2f}")
    if cloned or params.pacemaker.resources.migration_threshold is not None:
        crash, crash_why = move, ("the VIP moves: " if cloned else "the service moves: ") + move_why
    else:
        crash = t("httpd", "start")
        crash_why, first_stop = f"restart in place: Apache's start {crash:.2f}", t("httpd", "stop")
    rows = [
        ("node-crash", lost, lost, lost_why),
        ("corosync-kill", killed, killed, killed_why),
        ("apache-crash", crash, crash + first_stop + r.httpd_monitor,
         f"{crash_why}; worst case after one httpd monitor ({r.httpd_monitor} s)"),
        ("gateway-loss", move, move + first_stop,
         f"{move_why}; the node serves clients on its own network while the ping monitor ({r.ping_monitor} s) and "
         f"the dampen ({r.ping_dampen} s) run, so they delay the move, not the outage"),
        ("planned-move", move, move + first_stop, move_why),
        ("split-brain", 0.0, 0.0, "the preferred side keeps serving; only the other node is fenced"),
        ("ring0-loss", 0.0, 0.0, "knet carries corosync on ring1; pacemaker never notices"),
    ]
    return pd.DataFrame(rows, columns=["scenario", "floor_s", "worst_s", "why"]).round({"floor_s": 2, "worst_s": 2})


# ----------------------------------------------------------------- tables


def ladder_table(trials: pd.DataFrame, floor_rows: pd.DataFrame, rungs: list[str]) -> pd.DataFrame:
    """Scenario x rung: 'median (floor)' of client downtime, rungs in ladder order."""
    med = trials.groupby(["scenario", "rung"], sort=False)["downtime_s"].median()
    fl = floor_rows.set_index(["scenario", "rung"])["floor_s"]
    scen = list(dict.fromkeys(trials["scenario"]))
    out = pd.DataFrame(index=pd.Index(scen, name="scenario"))
    for rung in rungs:
        out[rung] = [f"{med[(s, rung)]:.2f} ({fl.get((s, rung), float('nan')):.2f})" if (s, rung) in med.index else "-"
                     for s in scen]
    return out


def goals_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per goal scenario: the best rung's median against the goal, and whether it was met (split-brain also
    needs exactly one node fenced in every trial)."""
    med = trials.groupby(["scenario", "rung"], sort=False)["downtime_s"].median().reset_index()
    rows = []
    for scn, goal in GOALS.items():
        m = med[med["scenario"] == scn]
        if m.empty:
            continue
        best = m.loc[m["downtime_s"].idxmin()]
        met = bool(best["downtime_s"] <= goal)
        if scn == "split-brain":
            fenced = trials[(trials["scenario"] == scn) & (trials["rung"] == best["rung"])]["fenced"].astype(str)
            met = met and all(f not in ("", "-", "nan") and "," not in f for f in fenced)
        rows.append({"scenario": scn, "goal_s": goal, "best_rung": best["rung"],
                     "median_s": round(float(best["downtime_s"]), 2), "met": "yes" if met else "no"})
    return pd.DataFrame(rows)


def ladder_plot(trials: pd.DataFrame, floor_rows: pd.DataFrame, rungs: list[str]):
    """Grouped bars: median downtime per scenario and rung, each with its floor as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = trials.groupby(["scenario", "rung"], sort=False)["downtime_s"].median()
    fl = floor_rows.set_index(["scenario", "rung"])["floor_s"]
    scen = list(dict.fromkeys(trials["scenario"]))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scen)), 4.5))
    width = 0.8 / max(1, len(rungs))
    for k, rung in enumerate(rungs):
        xs = [i + (k - (len(rungs) - 1) / 2) * width for i in range(len(scen))]
        ys = [med.get((s, rung), float("nan")) for s in scen]
        ax.bar(xs, ys, width=width * 0.95, label=rung)
        ax.scatter(xs, [fl.get((s, rung), float("nan")) for s in scen], marker="_", s=120, color="black", zorder=3)
    ax.set_xticks(range(len(scen)), scen, rotation=20)
    ax.set_ylabel("median client downtime (s); tick: floor")
    ax.set_title("failover ladder, fencing on")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------- the run


def build_stages(params: Params) -> list:
    """Stages 00-06 in the order `hakit run` takes them, with 03q (the quorum device) after 03."""
    from .stages import pipeline, qdevice
    from .stages.corosync import CorosyncStage

    out = []
    for st in pipeline.stages(params):
        out.append(st)
        if isinstance(st, CorosyncStage) and params.quorum_device is not None:
            out.append(qdevice.QdeviceStage(params))
    return out


def _build(lab, params: Params, record_dir: Path, progress) -> None:
    """Fresh lab nodes, then every stage applied and the cluster healthy on the preferred node."""
    from .failover.runner import settle
    from .notebook import connect_nodes
    from .stages import driver

    lab.down()
    lab.up()
    hosts = connect_nodes(params)
    try:
        for k, st in enumerate(build_stages(params)):
            t0 = time.monotonic()
            driver.run_stage(st, hosts, dry_run=False, record_dir=str(record_dir / f"{k:02d}"))
            progress(f"  {st.name}: done in {time.monotonic() - t0:.1f} s (record: {record_dir / f'{k:02d}'})")
        settle(hosts, params, timeout_s=180)
    finally:
        for h in hosts.values():
            h.close()


def bench_ladder(params_file: str, trials: int = 5, scenarios: str = "default", rungs: str = "all",
                 out_root: Path | None = None, progress=print, load: str = "") -> tuple[str, Path]:
    """Run the suite on every rung; return the ladder (text) and the folder of results."""
    import yaml

    from .bench import _out_dir, _switch_profile, trial_notes
    from .failover import charts, runner
    from .failover import scenarios as scn_mod
    from .failover.load import parse_spec
    from .lab import Lab
    from .notebook import load as load_params

    if trials < 1:
        raise ValueError(f"--trials {trials}: use 1 or more")
    base = load_params(params_file)
    lab = Lab(base, progress=lambda _m: None)  # refuses params without a lab; its qnetd host serves the device rungs
    chosen_rungs = select_rungs(rungs)
    per_rung = [(r, rung_params(base, r)) for r in chosen_rungs]  # every rung checked before a host is touched
    plans = {r.name: scn_mod.select_for(scenarios, p) for r, p in per_rung}
    spec = parse_spec(load) if load else None
    out = _out_dir("ladder", out_root)
    frames, floor_frames, all_trials = [], [], []
    prev: tuple[bool, str] | None = None
    done_rungs: list[str] = []
    try:
        for k, (rung, p) in enumerate(per_rung, 1):
            say = lambda m, _r=rung.name, _k=k: progress(f"[{_k}/{len(per_rung)} {_r}] {m}")  # noqa: E731
            (out / f"params-{rung.slug}.yaml").write_text(yaml.safe_dump(p.model_dump(mode="json"), sort_keys=False))
            if rung.structure != prev:
                say("fresh lab nodes, then stages 00-06" + (" and 03q" if rung.qdevice else ""))
                _build(lab, p, out / f"build-{rung.slug}", say)
                prev = rung.structure
            else:
                _switch_profile(p, rung.profile, out / f"cib-{rung.slug}", say, settle=True)
            df, done = runner.run_suite(lab, p, plans[rung.name], trials, rung.profile, progress=say, load=spec)
            df.insert(0, "rung", rung.name)
            # the resource history the floors' start and stop times come from
            status = lab.ssh(p.preferred_node, ["cibadmin", "--query", "--scope", "status"], check=True).stdout
            (out / f"status-{rung.slug}.xml").write_text(status)
            fl = floors(p, get_profile(rung.profile), op_times(status))
            fl.insert(0, "rung", rung.name)
            fl = fl[fl["scenario"].isin(df["scenario"])]
            df.to_csv(out / f"failover-{rung.slug}.csv", index=False)
            fl.to_csv(out / f"floors-{rung.slug}.csv", index=False)
            frames.append(df)
            floor_frames.append(fl)
            all_trials += done
            done_rungs.append(rung.name)
    except KeyboardInterrupt:
        if not frames:
            raise
        progress(f"interrupted: the ladder below covers the rungs done ({', '.join(done_rungs)})")
    df = pd.concat(frames, ignore_index=True)
    fl = pd.concat(floor_frames, ignore_index=True)
    df.to_csv(out / "failover.csv", index=False)
    fl.to_csv(out / "floors.csv", index=False)
    names = done_rungs
    table = ladder_table(df, fl, names)
    goals = goals_table(df)
    table.to_csv(out / "ladder.csv")
    goals.to_csv(out / "goals.csv", index=False)
    ladder_plot(df, fl, names).savefig(out / "ladder.png", dpi=110, bbox_inches="tight")
    charts.timelines(all_trials).savefig(out / "timelines.png", dpi=110, bbox_inches="tight")
    lines = [f"median client downtime (floor), s, fencing on, {trials} trial(s) per scenario and rung"
             + (f", under a client load of {spec.describe()}" if spec else "") + ":", table.to_string(), "",
             "goals (the best rung's median):", goals.to_string(index=False), "",
             "floors:", fl.to_string(index=False)]
    return "\n".join(lines + trial_notes(df, "rung", spec is not None)), out
