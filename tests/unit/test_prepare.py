"""Training copies: every notebook, parameter-filled, still a dry run, never over a trainee's work."""

from __future__ import annotations

import nbformat
import pytest

from hakit.prepare import prepare, training_notebooks
from papermill.inspection import _infer_parameters
from papermill.iorw import load_notebook_node


def test_prepare_writes_filled_dry_run_copies(root, tmp_path):
    out = prepare(str(root / "params" / "lab-3node.yaml"), tmp_path / "train")
    names = [p.name for p in training_notebooks()]
    assert names[-2:] == ["07_failover_tests.ipynb", "08_operations.ipynb"]  # after the stages, day 2 comes last
    assert sorted(p.name for p in out.glob("*.ipynb")) == names
    for i, name in enumerate(names):
        nb = nbformat.read(out / name, as_version=4)
        assert nb.cells[0].cell_type == "markdown" and f"Training copy {i + 1} of {len(names)}" in nb.cells[0].source
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and str(root / "params" / "lab-3node.yaml") in injected[0].source
        assert "dry_run" not in injected[0].source
        defaults = {p.name: p.default for p in _infer_parameters(load_notebook_node(str(out / name)))}
        assert defaults["dry_run"] == "True"
    first = nbformat.read(out / names[0], as_version=4)
    assert "start here" in first.cells[0].source and "Where to begin" in first.cells[1].source


def test_prepare_never_overwrites_and_checks_params_first(root, tmp_path):
    prepare(str(root / "params" / "lab.yaml"), tmp_path / "train")
    with pytest.raises(ValueError, match="already holds"):
        prepare(str(root / "params" / "lab.yaml"), tmp_path / "train")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {name: x}\n")
    with pytest.raises(ValueError):
        prepare(str(bad), tmp_path / "other")
    assert not (tmp_path / "other").exists()
