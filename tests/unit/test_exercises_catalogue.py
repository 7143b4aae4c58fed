"""The exercises: one or more at the end of every notebook 01-08, each with a checker cell and an answer
that only a trainer's copy keeps; a course refuses params without a lab."""

from __future__ import annotations

import nbformat
import pytest

from hakit import exercises
from hakit.notebook import load
from hakit.prepare import ANSWER_TAG, prepare, training_notebooks


def _cells(path):
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("number", [f"{i:02d}" for i in range(1, 9)])
def test_every_notebook_ends_with_its_exercises(root, number):
    (path,) = (root / "notebooks").glob(f"{number}_*.ipynb")
    exs = exercises.for_notebook(number)
    assert exs, f"notebook {number} has no exercise"
    cells = _cells(path)
    for ex in exs:
        checks = [c for c in cells if c.cell_type == "code" and f"course.check({ex.id!r})" in c.source]
        answers = [c for c in cells if ANSWER_TAG in c.metadata.get("tags", []) and ex.id in c.source]
        assert len(checks) == 1 and len(answers) == 1, ex.id
        assert ex.check is not None and ex.answers
    # nothing in the exercise cells changes the lab when the notebook runs headless: the calls are comments
    for c in cells:
        if c.cell_type == "code" and "course." in c.source:
            live = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            assert all("course.show(" in ln or "course.check(" in ln or "exercises.course(" in ln
                       or ln.startswith("from hakit") for ln in live), c.source


def test_a_course_needs_a_lab(root):
    with pytest.raises(exercises.NotALab, match="no lab section"):
        exercises.Course(load(root / "params" / "example-real.yaml"))
    assert exercises.course(load(root / "params" / "example-real.yaml")) is None


def test_texts_name_this_labs_nodes_and_bad_answers_are_refused(root):
    c = exercises.Course(load(root / "params" / "lab-3node.yaml"))
    card = c.show("05-failcount").text()
    assert 'course.lab.kill_process("vm-node1", "apache2")' in card and "{first}" not in card
    assert "failcount=..., node=..." in card
    with pytest.raises(TypeError, match="takes failcount, node"):
        c.check("05-failcount", count=1)
    with pytest.raises(KeyError, match="no exercise 'nope'; there are: 01-cable"):
        c.check("nope")


def test_allocation_scores_from_crm_simulate(root):
    captured = root / "tests" / "unit" / "fixtures" / "captured" / "trixie"
    text = (captured / "crm_simulate-sL-gateway-cut.txt").read_text().partition("# ---\n")[2]
    scores = exercises.parse_scores(text)
    assert scores[("vip", "vm-node1")] == "-INFINITY" and scores[("vip", "vm-node2")] == "0"
    before = exercises.parse_scores((captured / "crm_simulate-sL.txt").read_text().partition("# ---\n")[2])
    assert before[("vip", "vm-node1")] == "100"  # the preferred node's location score, the gateway reachable


def test_trainee_copies_leave_the_answers_out_and_trainer_copies_keep_them(root, tmp_path):
    trainee = prepare(str(root / "params" / "lab.yaml"), tmp_path / "t")
    trainer = prepare(str(root / "params" / "lab.yaml"), tmp_path / "r", trainer=True)
    for src in training_notebooks():
        tagged = [c for c in _cells(trainer / src.name) if ANSWER_TAG in c.metadata.get("tags", [])]
        assert not [c for c in _cells(trainee / src.name) if ANSWER_TAG in c.metadata.get("tags", [])]
        assert len(tagged) == len(exercises.for_notebook(src.name[:2]))
        if tagged:
            assert "Trainer copy" in _cells(trainer / src.name)[0].source


def test_the_score_view_reads_a_copy_now_and_without_the_gateway(root):
    """hakit.stages.scores on a scripted node answering with the two captures: the copy gets pingd=0 for
    the second reading, crm_simulate keeps its working file in the temp dir, the live CIB is never written."""
    from hakit.runner import FakeRunner
    from hakit.stages import scores

    captured = root / "tests" / "unit" / "fixtures" / "captured" / "trixie"
    now = (captured / "crm_simulate-sL.txt").read_text().partition("# ---\n")[2]
    cut = (captured / "crm_simulate-sL-gateway-cut.txt").read_text().partition("# ---\n")[2]
    state = {"pingd0": False}

    def simulate(cmd: str) -> str:
        return cut if state.pop("pingd0", False) else now

    def pingd(cmd: str) -> str:
        state["pingd0"] = True
        return ""

    h = FakeRunner("vm-node2")
    h.answer(r"^cibadmin --query$", "<cib/>")
    h.answer(r"^mktemp -d /run/hakit-cib", "/run/hakit-cib.abc123")
    h.answer(r"^CIB_file=/run/hakit-cib\.abc123/live\.xml crm_attribute --node vm-node1 --name pingd --update 0", pingd)
    h.answer(r"^crm_simulate --show-scores --xml-file /run/hakit-cib\.abc123/live\.xml --save-output "
             r"/run/hakit-cib\.abc123/scored\.xml$", simulate)
    params = load(root / "params" / "lab.yaml")
    v = scores.view({"vm-node1": h, "vm-node2": h}, params)
    assert not v.error and v.winner(v.now) == "vm-node1" and v.winner(v.gateway_lost) == "vm-node2"
    df = v.to_frame().set_index(["resource", "node"])
    assert df.loc[("vip", "vm-node1"), "score now"] == "100"
    assert df.loc[("vip", "vm-node1"), "vm-node1 without its gateway"] == "-INFINITY"
    runs = [s.what for s in h.sent if s.kind == "run"]
    assert all(c.startswith("CIB_file=/run/hakit-cib.") for c in runs if "crm_attribute" in c)
    assert not any(c.startswith("crm_simulate") and "-L" in c.split() for c in runs)
    assert [s.what for s in h.sent if s.kind == "write"] == ["/run/hakit-cib.abc123/live.xml"] * 2
