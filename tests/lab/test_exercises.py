"""Every exercise's checker on the built two-node lab, both ways: before the task it reports what is not
yet as asked, after the exercise's own call (run as the notebook shows it) it passes with the right
prediction and names a wrong one, and after course.restore the lab is back in its normal layout."""

from __future__ import annotations

import time

import pytest

from hakit import exercises, notebook
from hakit.failover.runner import settle

pytestmark = pytest.mark.lab

# exercise -> (the right prediction on this lab, a wrong one)
ANSWERS = {
    "01-cable": ({"ssh_works": True}, {"ssh_works": False}),
    "02-authkey": ({"mode": "400", "owner": "root"}, {"mode": "644", "owner": "root"}),
    "03-ring0": ({"quorate": True}, {"quorate": False}),
    "04-quorum": ({"votes": 1}, {"votes": 2}),
    "05-failcount": ({"failcount": 1, "node": "vm-node2"}, {"failcount": 1, "node": "vm-node1"}),
    "06-scores": ({"score": "-INFINITY", "node": "vm-node2"}, {"score": "100", "node": "vm-node2"}),
    "07-passive": ({"fenced": "vm-node2", "moved": False}, {"fenced": "vm-node1", "moved": False}),
    "08-move": ({"constraint": "cli-prefer-vip"}, {"constraint": "cli-ban-vip"}),
}
READ_ONLY = {"02-authkey", "04-quorum"}  # nothing to do on the lab: the prediction is the exercise


@pytest.fixture
def course(cluster2):
    lab, _ = cluster2
    c = exercises.Course(lab.params)
    yield c
    c.close()


def _settled(params) -> None:
    hosts = notebook.connect_nodes(params)
    try:
        settle(hosts, params, timeout_s=180)
    finally:
        for h in hosts.values():
            h.close()


def test_every_exercise_has_a_case_here():
    assert set(ANSWERS) == set(exercises.EXERCISES)


@pytest.mark.parametrize("ex_id", list(ANSWERS))
def test_checker_not_done_then_done(course, ex_id):
    right, wrong = ANSWERS[ex_id]
    ex = course.exercise(ex_id)
    before = course.check(ex_id, **right)
    if ex_id in READ_ONLY:
        assert before.passed, before
        r = course.check(ex_id, **wrong)
        assert not r.passed and any(k in p for p in r.problems for k in wrong if wrong[k] != right[k]), r
        assert not course.check(ex_id).passed  # no prediction, no pass
        return
    assert not before.passed, f"{ex_id} passes before its task was done: {before}"
    t0 = time.monotonic()
    try:
        exec(ex.call, {"course": course})  # the call exactly as the notebook shows it
        done = exercises.wait_for(lambda: course.check(ex_id, **right), timeout_s=120)
        assert done.passed, done
        took = time.monotonic() - t0
        r = course.check(ex_id, **wrong)
        assert not r.passed and any(f"{k}=" in p for p in r.problems for k in wrong if wrong[k] != right[k]), r
        print(f"\n{ex_id}: passed {took:.1f} s after the call; a wrong prediction: {r.problems}")
    finally:
        course.restore(ex_id)
        _settled(course.params)
    after = course.check(ex_id, **right)
    assert not after.passed, f"{ex_id} still passes after course.restore: {after}"


def test_course_status_writes_what_the_checkers_find_into_the_index(cluster2, course, lab2_params, tmp_path):
    """`hakit course status` on the built lab with one task done (ring0 down): the index shows that exercise
    and the two read-only ones done, every other not done with the checker's reason; the build's own run
    folder gives stages 01-06 their reference runs."""
    import re

    from hakit.courseindex import REFERENCE_SUFFIX
    from hakit.prepare import course_index, prepare, training_notebooks

    _, build = cluster2
    t0 = time.monotonic()
    out = prepare(str(lab2_params), tmp_path / "training", runs=build.parent)
    print(f"\nprepare with references: {time.monotonic() - t0:.1f} s")
    assert (out / "index.html").read_text().count("not checked</span>") == len(exercises.EXERCISES)
    for nb in training_notebooks():
        ref = out / f"{nb.stem}{REFERENCE_SUFFIX}"
        assert ref.is_file() == (nb.stem in {p.stem for p in (build.glob("0[1-6]_*.ipynb"))}), nb.stem
    assert f"cluster_name: {course.params.cluster.name}" in (out / f"03_corosync_rings{REFERENCE_SUFFIX}").read_text()
    exec(course.exercise("03-ring0").call, {"course": course})
    try:
        assert exercises.wait_for(lambda: course.check("03-ring0", quorate=True), timeout_s=60).passed
        t0 = time.monotonic()
        page = course_index(str(lab2_params), out, runs=build.parent, status=True).read_text()
        print(f"\ncourse status: every checker in {time.monotonic() - t0:.1f} s")
    finally:
        course.restore("03-ring0")
        _settled(course.params)
    done = {"03-ring0"} | READ_ONLY
    for ex_id in exercises.EXERCISES:
        row = re.search(rf"<code>{ex_id}</code>.*?</tr>", page).group(0)
        if ex_id in done:
            assert '<span class="done">done</span>' in row, row
        else:
            assert '<span class="todo">not done</span>' in row and "could not read the lab" not in row, row
    assert "not checked</span>" not in page
