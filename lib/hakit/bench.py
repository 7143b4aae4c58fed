"""Benchmarks that print figures (never pass/fail): lab start-up time and node memory."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from .lab import Lab
from .lab.image import ImageCache
from .params import load_params


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
