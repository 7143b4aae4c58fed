"""Benchmarks that print figures (never pass/fail): lab start-up and memory, the failover suite, the soak."""

from __future__ import annotations

import contextlib
import dataclasses

import shutil
import statistics
import time
from pathlib import Path

from .lab import Lab
from .lab.image import ImageCache
from .params import load_params
from .profiles import get_profile


def _quiet(_msg: str) -> None:
    pass


def bench_lab(params_files: list[str], runs: int = 5, settle: float = 5.0, cold: bool = False) -> list[str]:
    """Warm `lab up` to SSH-ready (median of runs) and idle memory per node, per params file."""
    lines = []
    if cold:
        p = load_params(params_files[0])
        assert p.lab is not None
        tmp = p.lab.image_cache.parent / "bench-cold-image"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.monotonic()
        ImageCache(tmp, mirror=p.lab.mirror).ensure(_quiet)
        lines.append(f"image build (cold, from the mirror): {time.monotonic() - t0:.1f} s")
        shutil.rmtree(tmp, ignore_errors=True)
    for f in params_files:
        lab = Lab(load_params(f), progress=_quiet)
        lab.down()
        lab.image.ensure()
        ups, mems = [], []
        for _ in range(runs):
            t0 = time.monotonic()
            lab.up()
            ups.append(time.monotonic() - t0)
            time.sleep(settle)
            mems += [s.memory_mib for s in lab.status(probe=False) if s.memory_mib is not None]
            lab.down()
        n = len(lab.params.nodes)
        lines.append(
            f"{Path(f).name}: {n} nodes, warm `lab up` to SSH-ready: median {statistics.median(ups):.2f} s "
            f"(min {min(ups):.2f}, max {max(ups):.2f}, {runs} runs); "
            f"idle memory per node (PSS): median {statistics.median(mems):.1f} MiB"
        )
    return lines


def _out_dir(kind: str, out_root: Path | None, when=None) -> Path:
    """A new results folder runs/bench-<kind>-<UTC time>/ (or under out_root)."""
    from datetime import datetime, timezone

    from .notebook import repo_root

    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    out = (out_root or repo_root() / "runs") / f"bench-{kind}-{stamp}"
    out.mkdir(parents=True)
    return out


def _switch_profile(params, profile: str, save_dir: Path, progress, settle: bool = False) -> None:
    """Put the lab cluster on ``profile`` (stages 3 and 5), printing what changed; optionally wait
    until it is healthy in the preferred layout. Its SSH sessions are closed afterwards."""
    from .failover import runner
    from .failover.profile import use_profile
    from .notebook import connect_nodes

    hosts = connect_nodes(params)
    try:
        for line in use_profile(hosts, params, profile, save_dir):
            progress(f"[{profile}] {line}")
        if settle:
            progress(f"[{profile}] waiting for the cluster to be healthy (vip and httpd on {params.preferred_node})")
            runner.settle(hosts, params)
    finally:
        for h in hosts.values():
            h.close()


def bench_failover(params_file: str, profiles: list[str], trials: int, scenarios: str = "default",
                   out_root: Path | None = None, progress=print, load: str = "") -> tuple[str, Path]:
    """Run the failover suite under each profile; return the medians table (text) and the folder of results.
    ``load`` ("" none; "200" or "200,4,4") runs a client load on the VIP during every trial (`failover.load`)."""
    import pandas as pd

    from .failover import charts, runner
    from .failover import scenarios as scn_mod
    from .failover.load import parse_spec
    from .notebook import load as load_params

    params = load_params(params_file)
    if params.lab is None:
        raise ValueError(f"{params_file}: failover benchmarks inject faults through the lab; this params file has no lab section")
    chosen = scn_mod.select_for(scenarios, params)
    spec = parse_spec(load) if load else None
    for p in profiles:
        get_profile(p)  # all names checked before the first change
    out = _out_dir("failover", out_root)
    lab = Lab(params, progress=_quiet)
    frames, all_trials = [], []
    for prof in profiles:
        _switch_profile(params, prof, out / f"cib-{prof}", progress)
        df, trials_ = runner.run_suite(lab, params, chosen, trials, prof, progress=lambda m: progress(f"[{prof}] {m}"),
                                       load=spec)
        frames.append(df)
        all_trials += trials_
        df.to_csv(out / f"failover-{prof}.csv", index=False)
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out / "failover.csv", index=False)
    charts.downtime_plot(df).savefig(out / "downtime.png", dpi=110, bbox_inches="tight")
    charts.timelines(all_trials).savefig(out / "timelines.png", dpi=110, bbox_inches="tight")
    med = runner.medians(df)
    table = med.pivot(index="scenario", columns="profile", values="downtime_s")
    lines = ["median client downtime (s), " + f"{trials} trial(s) each"
             + (f", under a client load of {spec.describe()}" if spec else "") + ":", table.to_string(), "",
             "all medians:", med.to_string(index=False)]
    return "\n".join(lines + trial_notes(df, "profile", spec is not None)), out


def trial_notes(df, by: str, loaded: bool) -> list[str]:
    """The lines after a suite's medians: each trial's client load (when there was one) and every trial
    that broke a correctness rule; ``by`` is the column that tells the runs apart (profile, rung)."""
    lines: list[str] = []
    if loaded:
        cols = [by, "scenario", "trial", "load_requests", "load_errors", "load_p50_ms", "load_p99_ms"]
        lines += ["", "client load from the fault to the restore:", df[cols].to_string(index=False)]
    bad = df[~df["ok"]]
    if not bad.empty:
        lines += ["", "trials that broke a correctness rule:"]
        lines += [f"  {r.scenario} ({getattr(r, by)}) #{r.trial}: {r.problems}" for r in bad.itertuples()]
    return lines


def bench_soak(params_file: str, minutes: float, profile: str = "fast", out_root: Path | None = None,
               progress=print, report_every_s: float = 60.0, load: str = "") -> tuple[dict, Path]:
    """Watch a healthy cluster for ``minutes`` with nothing injected; return the figures and the folder of results.

    The client probe, the ARP watch and a crm_mon watch (through the non-preferred node, on its own SSH
    session) run together; a progress line is printed every ``report_every_s``. Ctrl-C ends the soak
    early and still reports what was seen (``interrupted: true``). With ``load`` ("200" or "200,4,4") a
    client load (`failover.load`) runs beside them for the whole soak, ending by itself at its end.
    """
    import csv
    import json
    import math
    from datetime import datetime, timezone

    from .failover import soak
    from .failover.load import LoadGenerator, parse_spec
    from .failover.watch import ArpWatch, ClusterWatch, HttpProbe
    from .notebook import load as load_params
    from .remote import connect

    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"--minutes {minutes}: use a number of minutes greater than 0")
    params = load_params(params_file)
    if params.lab is None:
        raise ValueError(f"{params_file}: the soak benchmark probes the VIP from the lab's public bridge; "
                         "this params file has no lab section")
    get_profile(profile)  # an unknown name fails before any change
    spec = parse_spec(load) if load else None
    if spec is not None:  # the load stops by itself a minute after the soak should have ended
        spec = dataclasses.replace(spec, max_s=min(3600.0, minutes * 60 + 60))
    started = datetime.now(timezone.utc)
    out = _out_dir("soak", out_root, started)
    vip = str(params.vip.address)
    watcher = next(n.name for n in params.nodes if n.name != params.preferred_node)
    _switch_profile(params, profile, out / f"cib-{profile}", progress, settle=True)
    progress(f"soak: {minutes:g} min, probing http://{vip}/, crm_mon through {watcher}"
             + (f", client load {spec.describe()}" if spec else "") + "; Ctrl-C ends it early")
    watcher_host = connect(params, params.node(watcher))  # its own SSH session: the watch runs in a thread
    interrupted = False
    try:
        with HttpProbe(vip) as probe, ArpWatch(vip) as arp, ClusterWatch(watcher_host) as cw, \
                (LoadGenerator(vip, spec) if spec else contextlib.nullcontext()) as busy:
            t0 = time.monotonic()
            t_end = t0 + minutes * 60
            next_report = t0 + report_every_s
            try:
                while (now := time.monotonic()) < t_end:
                    time.sleep(max(0.0, min(1.0, t_end - now, next_report - now)))
                    if time.monotonic() >= next_report and time.monotonic() < t_end:
                        s = soak.summarize(probe.snapshot(), list(arp.samples), list(cw.samples), t0,
                                           time.monotonic())
                        progress(soak.progress_line(time.monotonic() - t0, s)
                                 + (f"; load: {busy.summary(t0, time.monotonic()).describe()}" if busy else ""))
                        next_report += report_every_s
            except KeyboardInterrupt:
                interrupted = True
                progress("soak: interrupted; reporting what was seen so far")
            t1 = min(time.monotonic(), t_end)
        probes = probe.snapshot()
        arp_samples, cluster = list(arp.samples), list(cw.samples)
        busy_summary = busy.summary(t0, t1) if busy else None
    finally:
        watcher_host.close()
    summary = soak.summarize(probes, arp_samples, cluster, t0, t1)
    result = {
        "params": str(params_file),
        "cluster": params.cluster.name,
        "profile": profile,
        "fencing": params.pacemaker.stonith_enabled,
        "vip": vip,
        "crm_mon_via": watcher,
        "started_utc": started.isoformat(timespec="seconds"),
        "minutes_asked": minutes,
        "interrupted": interrupted,
        **summary,
    }
    if busy_summary is not None:
        result.update({"load_hz": spec.rate_hz, "load_requests": busy_summary.requests,
                       "load_errors": busy_summary.errors, "load_p50_ms": busy_summary.p50_ms,
                       "load_p99_ms": busy_summary.p99_ms})
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    with (out / "probes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "ok", "node", "latency_s", "error"])
        for p in probes:
            if t0 <= p.t < t1:
                w.writerow([f"{p.t - t0:.4f}", int(p.ok), p.node or "",
                            "" if p.latency is None else f"{p.latency:.4f}", p.error])
    return result, out


def bench_stages(params_files: list[str], runs: int = 5, progress=_quiet) -> list[str]:
    """Median time of a no-op re-run of stages 0-6 (gather, plan, apply, verify) per lab, nodes read in
    parallel and one after another, side by side in one run. Builds the cluster first if it is not built."""
    from .notebook import connect_nodes
    from .stages import driver, pipeline

    lines = []
    for f in params_files:
        params = load_params(f)
        lab = Lab(params, progress=progress)
        lab.up()
        stages = pipeline.stages(params)
        hosts = connect_nodes(params)
        try:
            for st in stages:  # converge first (a no-op where it is built already)
                driver.run_stage(st, hosts, dry_run=False)
            times: dict[bool, list[float]] = {True: [], False: []}
            changed = 0
            for _ in range(runs):
                for parallel in (True, False):
                    driver.PARALLEL["on"] = parallel
                    t0 = time.monotonic()
                    for st in stages:
                        r = driver.run_stage(st, hosts, dry_run=False)
                        changed += bool(r.result and r.result.executed and r.result.changed)
                    times[parallel].append(time.monotonic() - t0)
        finally:
            driver.PARALLEL["on"] = True
            for h in hosts.values():
                h.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        lines.append(
            f"{Path(f).name}: {len(params.nodes)} nodes, no-op re-run of stages 0-6: median {med[True]:.1f} s with "
            f"nodes in parallel, {med[False]:.1f} s one after another ({runs} runs each, interleaved; "
            f"{changed} stage runs changed anything)")
    return lines
