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
