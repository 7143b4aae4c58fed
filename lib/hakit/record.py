"""Stage records: what one stage notebook did, saved as JSON (with any files it made) for a run report.

The convention every stage notebook follows:

* its `parameters` cell declares
  ``record_dir: str = ""  # where hakit run saves this stage's record; empty: not saved``
* its last cell saves the record: ``run.save(artifacts={...})`` of its
  `stages.driver.StageRun` (made with ``record_dir``), which calls `save` here

`python -m hakit run` sets ``record_dir`` to ``runs/<run>/<notebook>/``; there
`save` writes ``record.json`` (the per-node outcomes, the verification, the
plan's operations and those executed, a list of the files) and each artifact. Run by hand with ``record_dir`` empty, `save`
writes nothing and only shows the record, so a notebook works the same in
JupyterLab. Never pass secret material as an artifact: the run's secret scan
fails the whole run if any reaches the run folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import HakitError
from .stages.base import StageResult, Verification

RECORD_FILE = "record.json"
SCHEMA = 1


class RecordError(HakitError, ValueError):
    """An artifact name or value that cannot be saved; the message says what would work."""


@dataclass
class StageRecord:
    """A stage's record as saved (or, with no record_dir, as it would have been)."""

    data: dict[str, Any]
    folder: Path | None = None
    files: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        if self.folder is None:
            where = "not saved: <code>record_dir</code> is empty (a run by hand); <code>hakit run</code> sets it"
        else:
            names = ", ".join(html.escape(f) for f in self.files) or "no artifacts"
            where = f"saved to <code>{html.escape(str(self.folder))}</code>: {RECORD_FILE}, {names}"
        return f"<p><b>Record: {html.escape(self.data['stage'])}</b>: {where}</p>"

    def __str__(self) -> str:
        outcomes = "; ".join(f"{o['node']}: {o['outcome']}" for o in self.data["outcomes"])
        return f"{self.data['stage']}: {outcomes}"


def _artifact_path(name: str) -> PurePosixPath:
    """A relative path inside the record folder; refuses anything that could escape it."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("..", "") for part in p.parts) or name != str(p):
        raise RecordError(f"artifact name {name!r}: use a plain relative file name like 'cib-before.xml' or 'vm-node1/hakit-bond0'")
    if p.name == RECORD_FILE:
        raise RecordError(f"artifact name {name!r} is reserved for the record itself; pick another")
    return p


def _flatten(artifacts: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested mappings become folders: {"interfaces.d": {"vm-node1": {"hakit-bond0": text}}} -> one file each."""
    out: dict[str, object] = {}
    for name, value in artifacts.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{full}/"))
        else:
            out[full] = value
    return out


def _write_artifact(dest: Path, value: object) -> None:
    """Write one artifact by its type: text, bytes, a file to copy, a figure, or a table."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, Path):
        shutil.copyfile(value, dest)
    elif isinstance(value, bytes | bytearray):
        dest.write_bytes(bytes(value))
    elif isinstance(value, str):  # also str subclasses such as a rendered config
        dest.write_text(str(value))
    elif hasattr(value, "savefig"):  # a matplotlib Figure (or anything like it); format from the suffix
        value.savefig(dest, bbox_inches="tight")
    elif hasattr(value, "to_csv"):  # a pandas DataFrame
        value.to_csv(dest, index=False)
    else:
        raise RecordError(
            f"artifact {dest.name}: cannot save a {type(value).__name__}; "
            "pass text, bytes, a Path, a matplotlib Figure or a pandas DataFrame"
        )


def _verification(v: Verification | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "ok": v.ok,
        "before_apply": v.before_apply,
        "checks": [{"node": c.node, "check": c.check, "ok": c.ok, "detail": c.detail} for c in v.checks],
    }


def to_dict(result: StageResult, verification: Verification | None = None) -> dict[str, Any]:
    """The JSON-ready record of a stage (without artifacts)."""
    return {
        "schema": SCHEMA,
        "stage": result.stage,
        "dry_run": result.dry_run,
        "changed": result.changed,
        "outcomes": [{"node": o.node, "outcome": o.outcome, "detail": o.detail} for o in result.outcomes],
        "program": list(result.program),
        "executed": list(result.executed),
        "operations": list(result.operations),
        "verification": _verification(verification),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "artifacts": [],
    }


def save(
    result: StageResult,
    record_dir: str | Path | None,
    *,
    verification: Verification | None = None,
    artifacts: Mapping[str, object] | None = None,
) -> StageRecord:
    """Save a stage's outcome per node, its verification and its artifacts into `record_dir`.

    `artifacts` maps a relative file name to its content: text, bytes, a Path (copied),
    a matplotlib Figure (saved in the format the suffix names), a DataFrame (CSV), or a
    mapping of more of these (a folder).
    Suggested names, so the run report groups them: ``cib-before.xml``,
    ``cib-after.xml``, ``cib.diff``, ``failover.csv``, ``*.png``/``*.svg`` for charts.
    With an empty `record_dir` nothing is written (a notebook run by hand).
    """
    data = to_dict(result, verification)
    items = _flatten(artifacts or {})
    paths = {name: _artifact_path(name) for name in items}  # check every name before writing any file
    if not record_dir:
        return StageRecord(data)
    folder = Path(record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in items.items():
        dest = folder / paths[name]
        _write_artifact(dest, value)
        blob = dest.read_bytes()
        data["artifacts"].append({"name": name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
    tmp = folder / f".{RECORD_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(folder / RECORD_FILE)
    return StageRecord(data, folder, list(items))


def write_files(record_dir: str | Path, artifacts: Mapping[str, object]) -> list[str]:
    """Artifacts written beside a record without touching record.json (e.g. logs next to error.json)."""
    items = _flatten(artifacts)
    paths = {name: _artifact_path(name) for name in items}
    for name, value in items.items():
        _write_artifact(Path(record_dir) / paths[name], value)
    return list(items)


def load(record_dir: str | Path) -> dict[str, Any] | None:
    """A saved record, or None when the stage saved none (it failed first, or does not call save)."""
    path = Path(record_dir) / RECORD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
