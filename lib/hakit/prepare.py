"""Training mode: parameter-filled copies of the notebooks for a trainee to step through in JupyterLab.

Each copy gets papermill's `injected-parameters` cell with the params file only,
so `dry_run` keeps its safe default (True): stepping through changes nothing
until the trainee sets it to False. A short note on top of each copy says where
it sits in the sequence and what to open next.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import nbformat
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from .notebook import repo_root, resolve
from .params import load_params


def training_notebooks() -> list[Path]:
    """Every numbered notebook: the stages, then the failover tests (07) and the day-2 operations (08)."""
    return sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _banner(i: int, names: list[str], cluster: str, params_path: Path) -> str:
    total = len(names)
    prev = f"previous: `{names[i - 2]}`" if i > 1 else "this is the first notebook: **start here**"
    nxt = f"next: `{names[i]}`" if i < total else "this is the last notebook"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"**Training copy {i} of {total}** for cluster `{cluster}`, made by `hakit prepare` on {when} "
        f"from `{params_path}`; {prev}; {nxt}.\n\n"
        "Run the cells from top to bottom (Shift+Enter). `dry_run` is `True`: every step shows what it "
        "would do and changes nothing. When the plan reads right, set `dry_run = False` in the parameters "
        "cell and run the notebook again (Run > Run All Cells). The cell tagged `injected-parameters` "
        "below it only points at your params file."
    )


ANSWER_TAG = "answer"  # a cell with the answer to a notebook's exercise: in trainer copies only


def prepare(params_file: str, out: str | Path, trainer: bool = False, runs: Path | None = None,
            status: bool = False) -> Path:
    """Write the copies into `out` (created; refuses to overwrite a trainee's work) and return it.
    A trainee's copies leave out the exercises' answers (cells tagged ``answer``); ``trainer`` keeps them.
    Beside them: each notebook's reference run (from ``runs``, default runs/) and the course's
    index.html; ``status`` also runs every exercise's read-only checker on the lab for the index."""
    params_path = resolve(params_file).resolve()
    params = load_params(params_path)  # a bad params file stops here, before anything is written
    sources = training_notebooks()
    dest = Path(out).expanduser().resolve()
    clash = [p.name for p in sources if (dest / p.name).exists()]
    if clash:
        raise ValueError(
            f"{dest} already holds {', '.join(clash)}; a trainee may have worked in them. "
            "Pick another --out or remove those files first."
        )
    dest.mkdir(parents=True, exist_ok=True)
    names = [p.name for p in sources]
    for i, src in enumerate(sources, 1):
        nb = load_notebook_node(str(src))  # as papermill reads it (every cell gets a tags list)
        nb = parameterize_notebook(nb, {"params_file": str(params_path)})
        if not trainer:
            nb.cells = [c for c in nb.cells if ANSWER_TAG not in c.metadata.get("tags", [])]
        banner = _banner(i, names, params.cluster.name, params_path) + (
            "\n\n**Trainer copy**: the answers to the exercises are shown." if trainer else "")
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner))
        nbformat.write(nb, dest / src.name)
    course_index(params_file, dest, runs=runs, status=status)
    return dest


def course_index(params_file: str, out: str | Path, runs: Path | None = None, status: bool = False) -> Path:
    """(Re)write the references and index.html in ``out``, never the notebooks; ``status``: check the lab first."""
    from . import courseindex

    params_path = resolve(params_file).resolve()
    params = load_params(params_path)
    dest = Path(out).expanduser().resolve()
    if not dest.is_dir():
        raise ValueError(f"{dest} does not exist: make the training copies first (hakit prepare --out {out})")
    found = courseindex.check_status(params) if status else None
    return courseindex.write_index(dest, params, str(params_path), [p.stem for p in training_notebooks()],
                                   runs=runs, status=found)
