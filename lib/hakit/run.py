"""Run the stage notebooks headlessly with papermill into a new run folder, in order.

A first cut of `python -m hakit run`: validates the params once, executes each
stage notebook into runs/<UTC time>-<cluster>/, prints each stage's outcome,
and stops at the first failure with the failing notebook saved.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from .notebook import repo_root, resolve
from .params import load_params


def stage_notebooks() -> list[Path]:
    return sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def select(spec: str) -> list[Path]:
    """'all', '1-3', '2' or '1,3' -> the matching stage notebooks."""
    nbs = stage_notebooks()
    if spec == "all":
        return nbs
    wanted: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--stages {spec!r}: use 'all', a number, a range like 1-3, or a list like 1,3")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        wanted |= set(range(lo, hi + 1))
    chosen = [p for p in nbs if int(p.name[:2]) in wanted]
    if not chosen:
        have = ", ".join(p.name for p in nbs)
        raise ValueError(f"--stages {spec!r} matches no notebook; there are: {have}")
    return chosen


def last_output(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return "".join("".join(o.get("text", "")) for o in cells[-1].get("outputs", [])).strip() if cells else ""


def run(params_file: str, stages: str = "all", dry_run: bool = False, out_root: Path | None = None) -> Path:
    import papermill as pm

    params_path = resolve(params_file)
    params = load_params(params_path)  # bad input stops here, before any host is touched
    chosen = select(stages)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (out_root or repo_root() / "runs") / f"{stamp}-{params.cluster.name}"
    out.mkdir(parents=True)
    print(f"run folder: {out}", flush=True)
    for nb in chosen:
        dst = out / nb.name
        t0 = time.monotonic()
        print(f"[{nb.stem}] running ...", flush=True)
        try:
            pm.execute_notebook(
                str(nb), str(dst), parameters={"params_file": str(params_path.resolve()), "dry_run": dry_run},
                cwd=str(repo_root()), progress_bar=False,
            )
        except pm.PapermillExecutionError as e:
            raise RuntimeError(
                f"stage {nb.stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                f"the notebook with the error is saved at {dst}"
            ) from None
        print(f"[{nb.stem}] {time.monotonic() - t0:.1f} s: {last_output(dst)}", flush=True)
    return out
