"""A bounded HTTP load on the VIP during trials and soaks, so figures hold for a busy service.

The probe (``watch.HttpProbe``) asks once every 40 ms whether the service answers; this module
keeps the service busy the way clients do: some connections are kept alive and reused (a browser,
a reverse proxy), others are opened fresh for every request (scripts, health checks). Each worker
paces itself to its share of the rate, so a stalled request slows that worker only, and the whole
load ends by itself after ``max_s`` even if nobody stops it. It sends only to the address it is
given (the lab's VIP) and never retries: a failed request is counted, and the next one is due at
its own time.

Pure parts (`LoadSpec` validation, `summarize`) are unit-tested; the generator runs in lab tests.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["keepalive", "fresh"]
MAX_RATE_HZ = 1000.0  # what one Python process on a small machine can pace honestly
MAX_WORKERS = 64


@dataclass(frozen=True)
class LoadSpec:
    """How much load: ``rate_hz`` requests per second in all, shared by ``keepalive`` workers that each
    reuse one connection and ``fresh`` workers that open a new one per request."""

    rate_hz: float = 200.0
    keepalive: int = 4
    fresh: int = 4
    timeout_s: float = 2.0
    max_s: float = 900.0  # the load stops by itself after this long

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.rate_hz <= MAX_RATE_HZ:
            problems.append(f"rate_hz {self.rate_hz}: between 1 and {MAX_RATE_HZ:g} requests/s")
        for name in ("keepalive", "fresh"):
            v = getattr(self, name)
            if not 0 <= v <= MAX_WORKERS:
                problems.append(f"{name} {v}: between 0 and {MAX_WORKERS} connections")
        if self.keepalive + self.fresh == 0:
            problems.append("keepalive 0 and fresh 0: at least one worker")
        elif self.rate_hz / (self.keepalive + self.fresh) > 200:
            problems.append(f"rate_hz {self.rate_hz} over {self.keepalive + self.fresh} workers is more than 200/s "
                            "per worker: add workers")
        if not 0.05 <= self.timeout_s <= 30:
            problems.append(f"timeout_s {self.timeout_s}: between 0.05 and 30 s")
        if not 1 <= self.max_s <= 3600:
            problems.append(f"max_s {self.max_s}: between 1 and 3600 s")
        if problems:
            raise ValueError("load: " + "; ".join(problems))

    @property
    def workers(self) -> int:
        return self.keepalive + self.fresh

    def describe(self) -> str:
        return (f"{self.rate_hz:g} requests/s over {self.keepalive} keep-alive and {self.fresh} fresh connections "
                f"(timeout {self.timeout_s:g} s, stops by itself after {self.max_s:g} s)")


def parse_spec(text: str) -> LoadSpec:
    """``"200"`` or ``"200,4,4"`` (rate, keep-alive workers, fresh workers), as the CLI takes it."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 1:
            return LoadSpec(rate_hz=float(parts[0]))
        if len(parts) == 3:
            return LoadSpec(rate_hz=float(parts[0]), keepalive=int(parts[1]), fresh=int(parts[2]))
    except ValueError as e:
        if str(e).startswith("load:"):
            raise
        raise ValueError(f"load {text!r}: numbers expected, e.g. 200 or 200,4,4 (rate, keep-alive, fresh)") from None
    raise ValueError(f"load {text!r}: give RATE or RATE,KEEPALIVE,FRESH, e.g. 200 or 200,4,4")


@dataclass(frozen=True)
class LoadSample:
    t: float  # when the request was due (this machine's monotonic clock)
    kind: Kind
    ok: bool
    latency_s: float  # due -> answer read (or the failure)
    error: str = ""


@dataclass(frozen=True)
class LoadSummary:
    requests: int
    errors: int
    rate_hz: float  # achieved: requests / window
    p50_ms: float
    p99_ms: float
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.requests:
            return "no load request in the window"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.errors_by_kind.items()) if n)
        return (f"{self.requests} requests ({self.rate_hz:.0f}/s), {self.errors} failed" + (f" ({kinds})" if kinds else "")
                + f", latency p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms")


def percentile(values: Sequence[float], q: float) -> float:
    """Pure: the q-th percentile (0-100) by nearest rank; nan for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(s)))
    return s[min(rank, len(s)) - 1]


def summarize(samples: Sequence[LoadSample], t0: float = float("-inf"), t1: float = float("inf")) -> LoadSummary:
    """Pure: what the load saw in [t0, t1). Latency percentiles are of the answered requests only
    (a failure has no latency a client would wait through again); errors are counted by kind."""
    inside = [s for s in samples if t0 <= s.t < t1]
    ok = [s.latency_s * 1000 for s in inside if s.ok]
    errors = {k: sum(1 for s in inside if s.kind == k and not s.ok) for k in ("keepalive", "fresh")}
    span = 0.0
    if inside:  # an open end of the window closes at the first or last request
        lo = t0 if math.isfinite(t0) else min(s.t for s in inside)
        hi = t1 if math.isfinite(t1) else max(s.t for s in inside)
        span = hi - lo
    rate = len(inside) / span if span > 0 else 0.0
    return LoadSummary(len(inside), sum(errors.values()), round(rate, 1), round(percentile(ok, 50), 2),
                       round(percentile(ok, 99), 2), errors)


class LoadGenerator:
    """Runs ``spec`` against http://<address>:<port>/ from this machine until stopped (or ``spec.max_s``)."""

    def __init__(self, address: str, spec: LoadSpec = LoadSpec(), port: int = 80, clock=time.monotonic) -> None:
        self.address = address
        self.port = port
        self.spec = spec
        self.clock = clock
        self.samples: list[LoadSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        kinds: list[Kind] = ["keepalive"] * spec.keepalive + ["fresh"] * spec.fresh
        self._threads = [threading.Thread(target=self._work, args=(k, i), daemon=True) for i, k in enumerate(kinds)]
        self.started_at: float | None = None

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.address, self.port, timeout=self.spec.timeout_s)

    def _work(self, kind: Kind, index: int) -> None:
        period = self.spec.workers / self.spec.rate_hz
        start = self.clock()
        end = start + self.spec.max_s
        due = start + period * index / self.spec.workers  # spread the workers over one period
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            now = self.clock()
            if now >= end:
                break
            if due > now:
                self._stop.wait(due - now)
                continue
            if kind == "fresh" or conn is None:
                conn = self._connect()
            try:
                conn.request("GET", "/", headers={"Connection": "close" if kind == "fresh" else "keep-alive"})
                r = conn.getresponse()
                r.read(65536)
                ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
                if kind == "fresh" or r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                ok, err = False, str(e) or type(e).__name__
                conn.close()
                conn = None
            sample = LoadSample(due, kind, ok, self.clock() - due, err)
            with self._lock:
                self.samples.append(sample)
            due += period
            if self.clock() - due > period:  # fell behind (a stalled request): the next one is due now
                due = self.clock()
        if conn is not None:
            conn.close()

    def snapshot(self) -> list[LoadSample]:
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)

    def summary(self, t0: float = float("-inf"), t1: float = float("inf")) -> LoadSummary:
        return summarize(self.snapshot(), t0, t1)

    def __enter__(self) -> "LoadGenerator":
        self.started_at = self.clock()
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=self.spec.timeout_s + 5)
