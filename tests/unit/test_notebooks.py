"""Committed notebooks: no outputs, a `parameters` cell with typed, documented parameters."""

from pathlib import Path

import nbformat
import pytest
from papermill.inspection import _infer_parameters
from papermill.iorw import load_notebook_node

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_stage_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_typed_and_documented(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    params = {p.name: p for p in _infer_parameters(load_notebook_node(str(path)))}
    assert params["params_file"].inferred_type_name == "str"
    assert params["dry_run"].inferred_type_name == "bool"
    assert params["dry_run"].default == "True", "the safe default is a dry run"
    for p in params.values():
        assert p.inferred_type_name != "None" and p.help, f"{path.name}: {p.name} needs a type and a help comment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaches_before_it_acts(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and len(nb.cells[0].source) > 300


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_help_notebook_lists_typed_documented_parameters(path):
    """What an operator sees from `papermill --help-notebook`: every parameter with its type and help."""
    import subprocess
    import sys

    papermill = Path(sys.executable).with_name("papermill")
    out = subprocess.run([str(papermill), "--help-notebook", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    params = _infer_parameters(load_notebook_node(str(path)))
    assert {"params_file", "dry_run", "record_dir"} <= {p.name for p in params}
    for p in params:
        assert f"  {p.name}: {p.inferred_type_name} (default {p.default})" in out.stdout, out.stdout
        assert " ".join(p.help.split()) in " ".join(out.stdout.split()), f"{p.name}: help text missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_records_its_stage_for_headless_runs(path):
    """The record convention (hakit.record): a `record_dir` parameter, and the last code cell (before the
    exercises) saves the result,
    through the object that ran it (`run.save()` of a StageRun, `suite.save()`, made with record_dir) or `record.save(..., record_dir)`."""
    params = {p.name: p for p in _infer_parameters(load_notebook_node(str(path)))}
    assert params["record_dir"].inferred_type_name == "str" and params["record_dir"].default == '""'
    nb = nbformat.read(path, as_version=4)
    # the stage's own cells: the exercises that end a notebook come after its record
    start = next((i for i, c in enumerate(nb.cells) if c.source.startswith("## Exercise ")), len(nb.cells))
    body = nb.cells[:start]
    last = [c for c in body if c.cell_type == "code"][-1]
    code = "\n".join(c.source for c in body if c.cell_type == "code")
    via_driver = ".save(" in last.source and "record_dir=record_dir" in code
    direct = "record.save(" in last.source and "record_dir" in last.source
    assert via_driver or direct, f"{path.name}: last cell must save the record (run.save() or record.save)"


FOLD = "## How hakit does it"


@pytest.mark.parametrize("number, inside, kept_out", [
    ("01", ["systemd-run --on-active", "fresh** SSH session", "flushed before `ifup`"], ["systemd-run"]),
    ("04", ["ipmitool_path", "`-P <password>`", "ipmitool -f <file>"], ["ipmitool_path", "-P <password>"]),
])
def test_internals_sit_in_a_marked_fold_at_the_end_of_the_stage(number, inside, kept_out):
    """The dense internals are one markdown section "How hakit does it" after the stage's record and before
    its exercises; the teaching cells above point at it and no longer carry the mechanics."""
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    cells = nbformat.read(path, as_version=4).cells
    folds = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith(FOLD)]
    assert len(folds) == 1, f"{path.name}: one '{FOLD}' section"
    i = folds[0]
    record = max(j for j, c in enumerate(cells[:i]) if c.cell_type == "code")
    assert ".save(" in cells[record].source, "the fold comes after the stage's record"
    assert cells[i + 1].source.startswith("## Exercise "), "and right before the exercises"
    fold = cells[i].source
    assert "for the curious" in fold and all(t in fold for t in inside), fold
    before = " ".join(c.source for c in cells[:i] if c.cell_type == "markdown")
    assert "How hakit does it" in before, "the stage's text points at the fold"
    assert not [t for t in kept_out if t in before], "the mechanics moved, not copied"
    if number == "04":
        from hakit import fencing

        assert fencing.WRAPPER in fold and fencing.CRED_DIR in fold  # the names the code uses
