"""The stage record convention: what `record.save` writes, and what it refuses."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from matplotlib.figure import Figure

from hakit import record
from hakit.stages.base import StageResult, Verification


def _result() -> tuple[StageResult, Verification]:
    r = StageResult("09 example")
    r.add("n1", "changed", "wrote /etc/x")
    r.add("n2", "unchanged", "same content")
    v = Verification("09 example")
    v.add("n1", "file present", True, "ok")
    v.add("n2", "file present", False, "missing")
    return r, v


def test_save_writes_the_record_and_every_kind_of_artifact(tmp_path):
    r, v = _result()
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    src = tmp_path / "src.xml"
    src.write_text("<cib/>")
    folder = tmp_path / "run" / "09_example"
    rec = record.save(r, folder, verification=v, artifacts={
        "cib.diff": "--- a\n+++ b\n",
        "blob.bin": b"\x00\x01",
        "cib-before.xml": src,
        "failover.csv": pd.DataFrame({"t": [0.0, 0.5], "ok": [True, False]}),
        "failover.png": fig,
        "interfaces.d": {"n1": {"hakit-bond0": "auto bond0\n"}},
    })
    data = json.loads((folder / "record.json").read_text())
    assert data["stage"] == "09 example" and data["changed"] is True
    assert [(o["node"], o["outcome"]) for o in data["outcomes"]] == [("n1", "changed"), ("n2", "unchanged")]
    assert data["verification"]["ok"] is False and len(data["verification"]["checks"]) == 2
    names = {a["name"] for a in data["artifacts"]}
    assert names == {"cib.diff", "blob.bin", "cib-before.xml", "failover.csv", "failover.png", "interfaces.d/n1/hakit-bond0"}
    assert (folder / "blob.bin").read_bytes() == b"\x00\x01"
    assert (folder / "cib-before.xml").read_text() == "<cib/>"
    assert (folder / "failover.csv").read_text().splitlines()[0] == "t,ok"
    assert (folder / "failover.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "interfaces.d/n1/hakit-bond0").read_text() == "auto bond0\n"
    assert record.load(folder) == data
    assert "saved to" in rec._repr_html_() and str(rec) == "09 example: n1: changed; n2: unchanged"


def test_without_record_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r, v = _result()
    rec = record.save(r, "", verification=v, artifacts={"x.txt": "text"})
    assert list(tmp_path.iterdir()) == []
    assert rec.folder is None and "not saved" in rec._repr_html_()
    assert record.load(tmp_path) is None


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a//b", "record.json", "", "a/../../b"])
def test_artifact_names_cannot_escape_or_overwrite_the_record(tmp_path, name):
    r, _ = _result()
    with pytest.raises(record.RecordError):
        record.save(r, tmp_path / "rec", artifacts={name: "x"})
    assert not (tmp_path / "rec").exists(), "nothing is written when a name is refused"


def test_unknown_artifact_types_are_refused_with_a_hint(tmp_path):
    r, _ = _result()
    with pytest.raises(record.RecordError, match="pass text, bytes"):
        record.save(r, tmp_path, artifacts={"x": 42})
