"""The course index and the reference runs beside the training copies, from a made-up runs folder; and the
exercise checkers, run against scripted nodes, send nothing but reads."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nbformat
import pytest

from hakit import courseindex, exercises
from hakit.params import load_params
from hakit.prepare import course_index, prepare, training_notebooks

NAMES = [p.stem for p in training_notebooks()]


def _run(runs: Path, name: str, started: str, cluster: str, stages: dict[str, str], *, dry_run: bool = False,
         clean: bool = True, output: str = "") -> Path:
    """A run folder as `hakit run` leaves it: summary.json and one executed notebook per stage listed."""
    folder = runs / name
    folder.mkdir(parents=True)
    entries = []
    for stem, status in stages.items():
        (src,) = (p for p in training_notebooks() if p.stem == stem)
        nb = nbformat.read(src, as_version=4)
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{output or name} {stem}\n")]
        nbformat.write(nb, folder / src.name)
        entries.append({"notebook_name": stem, "stage": stem, "notebook": src.name, "status": status})
    (folder / "summary.json").write_text(json.dumps({
        "schema": 1, "run": name, "cluster": cluster, "started": started, "dry_run": dry_run,
        "secret_scan": {"clean": clean}, "stages": entries}))
    return folder


@pytest.fixture
def params_file(root):
    return root / "params" / "lab.yaml"


def test_without_runs_the_index_lists_the_course_and_says_how_to_get_references(root, tmp_path, params_file):
    out = prepare(str(params_file), tmp_path / "t", runs=tmp_path / "no-runs")
    page = (out / "index.html").read_text()
    headings = re.findall(r'<h2>(\d+)\. <a href="([^"]+)\.ipynb">', page)
    assert [n for _, n in headings] == NAMES and [int(i) for i, _ in headings] == list(range(1, len(NAMES) + 1))
    for ex in exercises.EXERCISES.values():
        assert f"<code>{ex.id}</code>" in page and html.escape(ex.title) in page
    assert page.count("not checked</span>") == len(exercises.EXERCISES)
    assert page.count("<i>no reference run</i>") == len(NAMES) and "make demo" in page
    assert not list(out.glob(f"*{courseindex.REFERENCE_SUFFIX}"))


def test_each_notebook_gets_its_newest_successful_run(root, tmp_path, params_file):
    runs = tmp_path / "runs"
    cluster = load_params(params_file).cluster.name
    _run(runs, "old", "2026-01-01T10:00:00+00:00", cluster,
         {"01_bonding": "unchanged", "03_corosync_rings": "changed", "07_failover_tests": "changed"})
    _run(runs, "new", "2026-01-02T10:00:00+00:00", cluster,
         {"01_bonding": "changed", "03_corosync_rings": "failed", "04_pacemaker_properties": "changed"})
    _run(runs, "dry", "2026-01-03T10:00:00+00:00", cluster, {"01_bonding": "dry run"}, dry_run=True)
    _run(runs, "leaky", "2026-01-04T10:00:00+00:00", cluster, {"05_resources": "changed"}, clean=False)
    _run(runs, "other", "2026-01-05T10:00:00+00:00", "someone-else", {"06_constraints": "changed"})
    out = prepare(str(params_file), tmp_path / "t", runs=runs)
    page = (out / "index.html").read_text()
    want = {"01_bonding": "new", "03_corosync_rings": "old", "04_pacemaker_properties": "new",
            "07_failover_tests": "old"}
    for stem in NAMES:
        ref = out / f"{stem}{courseindex.REFERENCE_SUFFIX}"
        if stem in want:
            body = ref.read_text()
            assert f"{want[stem]} {stem}" in body and "<html" in body  # the run's own output, rendered
            assert f'<a href="{ref.name}">reference run</a> <small>({want[stem]},' in page
        else:
            assert not ref.exists(), stem
    assert page.count("<i>no reference run</i>") == len(NAMES) - len(want) and "make demo" not in page


def test_a_rendering_with_a_secret_is_not_copied_and_the_index_says_so_without_it(root, tmp_path):
    secret = "Tr41ner-s3cret-pw"
    text = (root / "params" / "example-real.yaml").read_text()
    assert "password_file: ~/.config/hakit/bmc-password" in text
    params_file = tmp_path / "real.yaml"
    params_file.write_text(text.replace("password_file: ~/.config/hakit/bmc-password", f"password: {secret}"))
    runs = tmp_path / "runs"
    cluster = load_params(params_file).cluster.name
    _run(runs, "r1", "2026-01-01T10:00:00+00:00", cluster, {"02_authkey": "changed"}, output=f"leaked {secret}")
    _run(runs, "r2", "2026-01-01T11:00:00+00:00", cluster, {"03_corosync_rings": "changed"})
    out = tmp_path / "t"
    out.mkdir()
    index = course_index(str(params_file), out, runs=runs)
    page = index.read_text()
    assert not (out / f"02_authkey{courseindex.REFERENCE_SUFFIX}").exists()
    assert (out / f"03_corosync_rings{courseindex.REFERENCE_SUFFIX}").is_file()
    reason = re.search(r"not copied: the rendering contains ([^<]*)", page).group(1)
    assert "the BMC password of web1, web2 (raw bytes)" in reason and secret not in page
    assert not any(secret in p.read_text() for p in out.iterdir())


def test_the_index_shows_the_checkers_last_states_and_keeps_them(root, tmp_path, params_file):
    out = prepare(str(params_file), tmp_path / "t", runs=tmp_path / "no-runs")
    params = load_params(params_file)
    status = {"cluster": params.cluster.name, "checked": "2026-02-03T04:05:06+00:00", "exercises": {
        "03-ring0": {"state": "done", "missing": ""},
        "05-failcount": {"state": "not done", "missing": "httpd has no failure on vm-node1 (failcount 0)"}}}
    courseindex.write_index(out, params, str(params_file), NAMES, runs=tmp_path / "no-runs", status=status)
    again = courseindex.write_index(out, params, str(params_file), NAMES, runs=tmp_path / "no-runs")  # no lab asked
    for page in ((out / "index.html").read_text(), again.read_text()):
        row = re.search(r"<code>03-ring0</code>.*?</tr>", page).group(0)
        assert '<span class="done">done</span>' in row
        row = re.search(r"<code>05-failcount</code>.*?</tr>", page).group(0)
        assert "not done</span>" in row and "httpd has no failure on vm-node1 (failcount 0)" in row
        assert "2026-02-03T04:05:06" in page and page.count("not checked</span>") == len(exercises.EXERCISES) - 2
    other = load_params(root / "params" / "lab-3node.yaml")  # another cluster's index ignores those states
    page = courseindex.write_index(out, other, "x.yaml", NAMES, runs=tmp_path / "no-runs").read_text()
    assert page.count("not checked</span>") == len(exercises.EXERCISES)


def test_course_index_needs_the_training_folder(tmp_path, params_file):
    with pytest.raises(ValueError, match="make the training copies first"):
        course_index(str(params_file), tmp_path / "nowhere")


# -- the checkers only read -----------------------------------------------------------------------------------

READS = re.compile(
    r"^(ip -o -4 addr show to \S+|cat /sys/class/net/\S+/carrier 2>/dev/null \|\| echo 0|true"
    r"|stat -c '%a %U' /etc/corosync/authkey|sha256sum /etc/corosync/authkey|corosync-cfgtool -s"
    r"|corosync-quorumtool -s|crm_failcount --query --resource httpd --node \S+|crm_mon -1 --output-as=xml"
    r"|stonith_admin --history \S+ --verbose --output-as=xml|cibadmin --query( --scope constraints)?"
    r"|mktemp -d /run/hakit-cib\.\S+|rm -rf -- /run/hakit-cib\.\S+"
    r"|crm_simulate --show-scores --xml-file /run/hakit-cib\.\S+ --save-output /run/hakit-cib\.\S+)$")


class _NoLab:
    """The lab a checker may consult: its recorded node state only; any lab action fails the test."""

    def _node_state(self, name: str) -> dict:
        return {}

    def __getattr__(self, name: str):
        raise AssertionError(f"a checker called lab.{name}")


def test_every_checker_sends_only_reads(root, load_fixture):
    from hakit.runner import FakeRunner

    captured = root / "tests" / "unit" / "fixtures" / "captured" / "trixie"

    def cap(name: str) -> str:
        return (captured / name).read_text().partition("# ---\n")[2]

    params = load_params(root / "params" / "lab.yaml")
    c = exercises.Course(params)
    c.lab = _NoLab()
    for n in params.nodes:
        h = FakeRunner(n.name)
        h.answer(r"^ip -o -4 addr show", f"2: bond0    inet {n.private_ip}/24 scope global bond0")
        h.answer(r"^corosync-cfgtool -s$", cap("cfgtool-2node-link0-down.txt"))
        h.answer(r"^corosync-quorumtool -s$", cap("quorumtool-2node-quorate.txt"))
        h.answer(r"^crm_mon -1 --output-as=xml$", cap("crm_mon-2node-resources.xml"))
        h.answer(r"^crm_failcount", cap("crm_failcount-httpd.txt"))
        h.answer(r"^stonith_admin --history", cap("stonith-history-verbose.xml"))
        h.answer(r"^cibadmin --query$", (captured / "cib-after-stage6.xml").read_text())
        h.answer(r"^mktemp -d /run/hakit-cib", "/run/hakit-cib.abc123")
        h.answer(r"^crm_simulate", cap("crm_simulate-sL.txt"))
        c._hosts[n.name] = h
    for ex in exercises.EXERCISES.values():
        r = c.check(ex.id, **{a: None for a in ex.answers})
        assert not any(p.startswith("could not read the lab") for p in r.problems), (ex.id, r.problems)
    sent = [s for h in c._hosts.values() for s in h.sent]
    runs = [s.what for s in sent if s.kind == "run"]
    assert runs and not [w for w in runs if not READS.match(w)], [w for w in runs if not READS.match(w)]
    writes = [s.what for s in sent if s.kind == "write"]
    assert writes and all(w.startswith("/run/hakit-cib.abc123/") for w in writes), writes  # 06's scratch copy
    assert {"corosync-cfgtool -s", "crm_mon -1 --output-as=xml", "cibadmin --query --scope constraints"} <= set(runs)
