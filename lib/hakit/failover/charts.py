"""Charts for failover results, readable without the code.

- ``timelines``: per scenario, every probe as a dot (time since the fault on
  x, the node that answered on y, failures in red), with the fault, the
  cluster's detection, its recovery and the restore marked.
- ``downtime_plot``: per scenario, one column of dots per profile with the
  median drawn as a bar, in three panels: the downtime at the fault, the
  failback when the service moves back, and the whole incident (their sum).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless runs (papermill, the bench command) have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .runner import Trial  # noqa: E402

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")


def timelines(trials: list[Trial], title: str = "") -> plt.Figure:
    """One panel per scenario (its first trial): who answered the client, second by second."""
    firsts: dict[str, Trial] = {}
    for t in trials:
        firsts.setdefault(t.row.scenario, t)
    n = max(1, len(firsts))
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.9 * n + 0.6), squeeze=False)
    for ax, (name, t) in zip(axes[:, 0], firsts.items()):
        nodes = sorted({p.node for p in t.probes if p.node})
        levels = {node: i + 1 for i, node in enumerate(nodes)}
        ok = [p for p in t.probes if p.ok]
        bad = [p for p in t.probes if not p.ok]
        ax.scatter([p.t - t.t_inject for p in ok], [levels[p.node] for p in ok], s=6, c="tab:green", label="page served")
        ax.scatter([p.t - t.t_inject for p in bad], [0] * len(bad), s=6, c="tab:red", label="no answer")
        ax.set_yticks([0, *levels.values()], ["failed", *levels.keys()])
        ax.axvline(0, color="black", lw=1)
        ax.text(0, len(levels) + 0.35, " fault", fontsize=8)
        for key, color, label in (("detect_s", "tab:orange", "detected"), ("recover_s", "tab:blue", "recovered")):
            v = getattr(t.row, key)
            if v is not None and not math.isnan(v):
                ax.axvline(v, color=color, lw=1, ls="--")
                ax.text(v, len(levels) + 0.35, f" {label}", fontsize=8, color=color)
        if t.t_heal is not None:  # the fault's second step (fence-failure: the BMC is back)
            ax.axvline(t.t_heal - t.t_inject, color="purple", lw=1, ls="-.")
            ax.text(t.t_heal - t.t_inject, -0.6, " 2nd step", fontsize=8, color="purple")
        ax.axvline(t.t_restore - t.t_inject, color="grey", lw=1, ls=":")
        ax.text(t.t_restore - t.t_inject, -0.6, " restore", fontsize=8, color="grey")
        if t.t_back is not None:  # the end of the incident: the normal placement again
            ax.axvline(t.t_back - t.t_inject, color="tab:green", lw=1, ls=":")
            ax.text(t.t_back - t.t_inject, -0.6, " normal", fontsize=8, color="tab:green")
        ax.set_ylim(-0.8, len(levels) + 0.9)
        verdict = "ok" if t.row.ok else "FAILED: " + t.row.problems[:80]
        fb = "" if math.isnan(t.row.failback_s) else f" + failback {t.row.failback_s:.2f} s"
        ax.set_title(f"{name} ({t.row.profile}): client downtime {t.row.downtime_s:.2f} s{fb}, {t.row.ended}, "
                     f"{verdict}",
                     fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds since the fault was injected")
    axes[0, 0].legend(loc="upper right", fontsize=7, markerscale=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


PANELS = (("downtime_s", "at the fault"), ("failback_s", "failback (moving back after the restore)"),
          ("incident_s", "whole incident (sum)"))


def downtime_plot(df: pd.DataFrame) -> plt.Figure:
    """Client downtime per scenario x profile (every trial a dot, the median a bar): at the fault,
    at the failback, and for the whole incident."""
    scenarios = list(dict.fromkeys(df["scenario"]))
    profiles = list(dict.fromkeys(df["profile"]))
    width = 0.8 / max(1, len(profiles))
    panels = [p for p in PANELS if p[0] in df.columns]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 1.4 * len(scenarios)), 2.9 * len(panels)),
                             squeeze=False, sharex=True)
    for ax, (col, label) in zip(axes[:, 0], panels):
        for j, prof in enumerate(profiles):
            color = COLORS[j % len(COLORS)]
            for i, scn in enumerate(scenarios):
                vals = df[(df["scenario"] == scn) & (df["profile"] == prof)][col].dropna()
                if vals.empty:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ax.scatter([x] * len(vals), vals, s=14, color=color, alpha=0.7, label=prof if i == 0 else None)
                med = float(vals.median())
                ax.hlines(med, x - width * 0.4, x + width * 0.4, color=color, lw=2.5)
                ax.text(x, med, f"{med:.2f}", fontsize=7, ha="center", va="bottom")
        ax.set_ylabel("client downtime (s)")
        ax.set_title(f"Downtime seen by the client: {label} (bar: median)", fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(range(len(scenarios)), scenarios, rotation=20, ha="right")
    axes[0, 0].legend(title="profile", fontsize=8)
    fig.tight_layout()
    return fig
