"""Pure arithmetic on what the client probe saw: outages, downtime, who served.

All times are seconds on one clock (the machine running the probe), usually
relative to the moment a fault was injected. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from .load import percentile

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ProbeSample:
    """One HTTP GET to the VIP: when it was sent, whether it got the page, and who served it."""

    t: float  # send time
    ok: bool
    node: str | None = None  # from the page; None when it failed
    latency: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Outage:
    start: float  # send time of the first failed probe
    end: float | None  # send time of the first successful probe after it; None: not over by the end
    failed: int  # failed probes inside

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


def outages(samples: Sequence[ProbeSample], t0: float = float("-inf"), t1: float = float("inf")) -> list[Outage]:
    """Runs of failed probes sent in [t0, t1), in time order.

    An outage starts at the first failed probe and ends at the next successful
    one. A run still failing at the last probe has ``end=None``.
    """
    out: list[Outage] = []
    start: float | None = None
    failed = 0
    for s in sorted((s for s in samples if t0 <= s.t < t1), key=lambda s: s.t):
        if not s.ok:
            if start is None:
                start, failed = s.t, 0
            failed += 1
        elif start is not None:
            out.append(Outage(start, s.t, failed))
            start = None
    if start is not None:
        out.append(Outage(start, None, failed))
    return out


@dataclass(frozen=True)
class Downtime:
    """What a client saw in a window: total unavailability and its shape."""

    seconds: float  # first failure -> first success that lasted (0.0 if no failure)
    outages: int  # separate runs of failures (more than 1: flapping)
    failed_probes: int
    probes: int
    recovered: bool  # False: still failing at the end of the window

    @property
    def success_ratio(self) -> float:
        return 1.0 if self.probes == 0 else (self.probes - self.failed_probes) / self.probes


def downtime(samples: Sequence[ProbeSample], t0: float = float("-inf"), t1: float = float("inf"),
             end_of_window: float | None = None) -> Downtime:
    """Client-visible downtime in [t0, t1): from the first failed probe to the first success after the last outage.

    Flapping (fail, succeed, fail again) counts as one span from the first
    failure to the final recovery, because a client saw the service unreliable
    the whole time. A window ending while still failing counts up to
    ``end_of_window`` (default: the last probe sent) and reports ``recovered=False``.
    """
    inside = [s for s in samples if t0 <= s.t < t1]
    runs = outages(inside)
    failed = sum(1 for s in inside if not s.ok)
    if not runs:
        return Downtime(0.0, 0, 0, len(inside), True)
    last = runs[-1]
    if last.end is None:
        stop = end_of_window if end_of_window is not None else max(s.t for s in inside)
        return Downtime(max(0.0, stop - runs[0].start), len(runs), failed, len(inside), False)
    return Downtime(last.end - runs[0].start, len(runs), failed, len(inside), True)


def what_failed(samples: Sequence[ProbeSample], t0: float = float("-inf"), t1: float = float("inf")) -> str:
    """The failed probes in [t0, t1) by the client's error, most frequent first, and how long the answers before
    t0 took (p50 and the slowest): timeouts on a node that answered fast just before point at a stall (a starved
    machine), refusals or "no route" at the network or the service."""
    kinds = Counter(s.error or "failed" for s in samples if t0 <= s.t < t1 and not s.ok)
    words = ", ".join(f"{n} {e}" for e, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    lat = [s.latency * 1000 for s in samples if s.t < t0 and s.ok and s.latency is not None]
    if lat:
        words += f"; the {len(lat)} answers before took p50 {percentile(lat, 50):.0f} ms, the slowest {max(lat):.0f} ms"
    return words


def probe_table(samples: Sequence[ProbeSample], t_inject: float, wall_offset: float) -> "pd.DataFrame":
    """Every probe of a trial, one row each, for the record: seconds since the fault, this machine's wall clock
    (UTC, to read beside the nodes' journals), whether the page came, from which node, the answer's latency
    and the client's error."""
    import pandas as pd

    rows = [{"at_s": round(s.t - t_inject, 3),
             "wall": datetime.fromtimestamp(s.t + wall_offset, timezone.utc).isoformat(timespec="microseconds"),
             "ok": s.ok, "node": s.node or "",
             "latency_ms": None if s.latency is None else round(s.latency * 1000, 1), "error": s.error}
            for s in sorted(samples, key=lambda s: s.t)]
    return pd.DataFrame(rows, columns=["at_s", "wall", "ok", "node", "latency_ms", "error"])


def served(samples: Sequence[ProbeSample], t0: float = float("-inf"), t1: float = float("inf")) -> list[str]:
    """The nodes that answered in [t0, t1), in order of first answer, each once per stretch (A, B, A)."""
    seq: list[str] = []
    for s in sorted((s for s in samples if t0 <= s.t < t1 and s.ok and s.node), key=lambda s: s.t):
        if not seq or seq[-1] != s.node:
            seq.append(s.node)  # type: ignore[arg-type]
    return seq


def last_served(samples: Sequence[ProbeSample], t0: float = float("-inf"), t1: float = float("inf")) -> str | None:
    seq = served(samples, t0, t1)
    return seq[-1] if seq else None


def rate(samples: Sequence[ProbeSample]) -> float:
    """Probes per second over the span of the samples."""
    if len(samples) < 2:
        return 0.0
    ts = sorted(s.t for s in samples)
    return (len(ts) - 1) / (ts[-1] - ts[0]) if ts[-1] > ts[0] else 0.0


def first_at_or_after(times: Sequence[tuple[float, bool]], t0: float) -> float | None:
    """The first time >= t0 whose flag is True (for detect/recover on cluster samples)."""
    for t, flag in sorted(times):
        if t >= t0 and flag:
            return t
    return None
