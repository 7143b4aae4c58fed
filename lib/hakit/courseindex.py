"""The course's front page: `training/index.html`, and the reference run beside each training notebook.

For every numbered notebook the index lists, in order, its exercises (id and title, from
`hakit.exercises`), a link to the trainee's copy, a link to a **reference run** (the same notebook
executed for real by `hakit run`, rendered to HTML), and each exercise's state on this trainee's lab
as the checkers last saw it.

Reference runs come from the run folders `hakit run` leaves in `runs/`: per notebook the newest
folder of this cluster whose run was not a dry run, whose own secret scan was clean, and where that
notebook's stage ended `changed` or `unchanged`. Its executed notebook is rendered with nbconvert and
scanned again (`hakit.secretscan`) for every secret this machine holds for these params (params
secrets, the BMC passwords); a rendering that contains one is not written, and the index says why. The
authkey was searched for by the run's own scan (it needs the nodes; it is per lab, and a run's key is
that lab's).

States need the live lab: `hakit course status` runs every exercise's checker (`Course.status`,
read-only: the checkers only read the nodes) and writes what they found into the index;
`hakit course index` rewrites the index and the references without asking the lab.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import exercises
from .notebook import repo_root
from .params import Params

INDEX = "index.html"
REFERENCE_SUFFIX = ".reference.html"
STATUS_FILE = "course-status.json"  # the last `hakit course status`, kept so `course index` can show it again
SUCCESS = ("changed", "unchanged")  # a stage's status in summary.json when it ran for real and verified


@dataclass(frozen=True)
class Reference:
    """Where one notebook's reference comes from, and whether it was written (else why not)."""

    notebook: str  # "03_corosync_rings"
    run: str | None = None  # the run folder's name
    started: str | None = None
    file: str | None = None  # the HTML beside the training copy
    missing: str = ""  # why there is none


def default_runs() -> Path:
    return repo_root() / "runs"


def _summaries(runs: Path, cluster: str) -> list[tuple[Path, dict[str, Any]]]:
    """This cluster's real (not dry) runs whose secret scan was clean, newest first."""
    found = []
    for f in sorted(runs.glob("*/summary.json")) if runs.is_dir() else []:
        try:
            s = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if s.get("cluster") != cluster or s.get("dry_run") or not (s.get("secret_scan") or {}).get("clean"):
            continue
        found.append((f.parent, s))
    found.sort(key=lambda fs: fs[1].get("started") or "", reverse=True)
    return found


def latest_runs(runs: Path, cluster: str, notebooks: list[str]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Per notebook (stem), the newest run folder in which its stage succeeded, and that run's summary."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder, s in _summaries(runs, cluster):
        for st in s.get("stages") or []:
            name = st.get("notebook_name")
            if name in notebooks and name not in out and st.get("status") in SUCCESS and st.get("notebook") \
                    and (folder / st["notebook"]).is_file():
                out[name] = (folder, s)
    return out


def _local_secrets(params: Params) -> tuple[list[Any], list[str]]:
    from . import secretscan

    rep = secretscan.ScanReport()
    secrets = secretscan.params_secrets(params) + secretscan.fencing_secrets(params, rep)
    return secrets, rep.incomplete


def write_references(dest: Path, params: Params, notebooks: list[str], runs: Path | None = None) -> list[Reference]:
    """Render each notebook's reference run beside its copy in ``dest`` (a stale one is removed first)."""
    from nbconvert import HTMLExporter

    from . import secretscan

    runs = runs or default_runs()
    chosen = latest_runs(runs, params.cluster.name, notebooks)
    secrets, _ = _local_secrets(params)
    patterns = secretscan.Patterns.build(secrets)
    refs = []
    for name in notebooks:
        target = dest / f"{name}{REFERENCE_SUFFIX}"
        target.unlink(missing_ok=True)
        if name not in chosen:
            refs.append(Reference(name, missing=f"no successful run of {name} for cluster {params.cluster.name} "
                                  f"in {runs}"))
            continue
        folder, summary = chosen[name]
        stage = next(st for st in summary["stages"] if st.get("notebook_name") == name)
        body, _ = HTMLExporter().from_filename(str(folder / stage["notebook"]))
        findings = secretscan.scan_bytes(target.name, body.encode(), patterns)
        if findings:
            refs.append(Reference(name, folder.name, summary.get("started"),
                                  missing="not copied: the rendering contains " + "; ".join(
                                      f"{f.secret} ({f.form})" for f in findings)))
            continue
        target.write_text(body)
        refs.append(Reference(name, folder.name, summary.get("started"), target.name))
    return refs


def check_status(params: Params) -> dict[str, Any]:
    """Every exercise's checker against the live lab (read-only), as a JSON-ready dict."""
    c = exercises.Course(params)
    try:
        df = c.status()
    finally:
        c.close()
    return {"cluster": params.cluster.name, "checked": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "exercises": {r["exercise"]: {"state": r["state"], "missing": r["missing"]} for r in df.to_dict("records")}}


def _e(x: object) -> str:
    return html.escape(str(x))


def render_index(params: Params, params_file: str, notebooks: list[str], refs: list[Reference],
                 status: dict[str, Any] | None) -> str:
    """The index page: pure (params, notebook stems, references, the last status or None)."""
    by_name = {r.notebook: r for r in refs}
    first = params.preferred_node
    second = next((n.name for n in params.nodes if n.name != first), first)
    states = (status or {}).get("exercises", {})
    rows = []
    for i, name in enumerate(notebooks, 1):
        ref = by_name.get(name, Reference(name, missing="not looked for"))
        if ref.file:
            reference = (f'<a href="{_e(ref.file)}">reference run</a> <small>({_e(ref.run)}, '
                         f'started {_e(ref.started)})</small>')
        else:
            reference = f"<i>no reference run</i>: {_e(ref.missing)}"
        exs = exercises.for_notebook(name[:2])
        items = []
        for ex in exs:
            ex = ex.for_nodes(first, second)
            st = states.get(ex.id)
            if st is None:
                state = '<span class="unchecked">not checked</span>'
            elif st["state"] == "done":
                state = '<span class="done">done</span>'
            else:
                state = f'<span class="todo">not done</span> <small>{_e(st["missing"])}</small>'
            items.append(f"<tr><td><code>{_e(ex.id)}</code></td><td>{_e(ex.title)}</td><td>{state}</td></tr>")
        table = ("<table><tr><th>exercise</th><th>title</th><th>state on your lab</th></tr>" + "".join(items)
                 + "</table>") if items else "<p>no exercise</p>"
        rows.append(f'<h2>{i}. <a href="{_e(name)}.ipynb">{_e(name)}</a></h2><p>{reference}</p>{table}')
    if status:
        checked = (f"<p>States as the checkers found them on {_e(status['checked'])} (read-only; "
                   "<code>hakit course status</code> checks again).</p>")
    else:
        checked = ("<p>States: <b>not checked yet</b>. With the lab up, <code>.venv/bin/python -m hakit course "
                   f"status --params {_e(params_file)} --out &lt;this folder&gt;</code> runs every exercise's "
                   "checker (they only read the nodes) and writes the result here.</p>")
    if not any(r.file for r in refs):
        checked += ("<p>No reference run exists yet. <code>make demo</code> deploys the lab cluster for real "
                    "(stages 00-06 and the failover suite) into <code>runs/</code>; then <code>hakit course "
                    "index</code> puts each notebook's reference beside it.</p>")
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>hakit course: "
            f"{_e(params.cluster.name)}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
            ".done{color:#2e8540;font-weight:bold}.todo{color:#a11d2b}.unchecked{color:#777}</style></head><body>"
            f"<h1>hakit course for cluster {_e(params.cluster.name)}</h1>"
            "<p>Open the notebooks in this order in JupyterLab; each ends with its exercises. A reference run is "
            "the same notebook executed for real on a lab, to compare with what you see.</p>"
            + checked + "".join(rows) + "</body></html>\n")


def write_index(dest: Path, params: Params, params_file: str, notebooks: list[str], runs: Path | None = None,
                status: dict[str, Any] | None = None) -> Path:
    """References and index.html in ``dest``; ``status`` (from check_status) is kept for later indexes."""
    refs = write_references(dest, params, notebooks, runs)
    saved = dest / STATUS_FILE
    if status is not None:
        saved.write_text(json.dumps(status, indent=1) + "\n")
    elif saved.is_file():
        status = json.loads(saved.read_text())
        if status.get("cluster") != params.cluster.name:
            status = None  # another cluster's lab
    index = dest / INDEX
    index.write_text(render_index(params, params_file, notebooks, refs, status))
    return index
