"""The cloned-apache layout end to end: Apache on every node, only the VIP moves.

A fresh two-node lab from params/lab.yaml with ``pacemaker.layout: cloned-apache`` (its own lab id
and subnets), built with `hakit run` (stages 00-06, whose verify steps check the layout). Then the
failover suite's planned-move, apache-crash and node-crash, one trial each, judged by the runner as
for the article's layout, plus what only this layout promises, read on the nodes: the standby's
Apache is never stopped (its master process keeps its PID through all three faults, and crm_mon
shows its instance started in every sample of the planned move). The downtimes are printed beside
the article layout's figures from the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit import notebook
from hakit.check import check
from hakit.facts.pacemaker import parse_crm_mon
from hakit.lab import Lab
from hakit.run import run as hakit_run

pytestmark = pytest.mark.lab

SCENARIOS = ("planned-move", "apache-crash", "node-crash")
# The article layout's downtimes on this lab (README, "Failover tests"): printed for comparison, never asserted.
ARTICLE_S = {"planned-move": "2.16-2.40", "apache-crash": "0.68-0.96", "node-crash": "~7.8 (fenced)"}
PID_FILE = "/run/apache2/apache2.pid"


def _apache_pid(lab: Lab, node: str) -> int | None:
    """The Apache master's PID on ``node`` if that process runs (None otherwise)."""
    r = lab.ssh(node, ["sh", "-c", f'p=$(cat {PID_FILE} 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"'])
    out = r.stdout.strip()
    return int(out) if out.isdigit() else None


@pytest.fixture(scope="module")
def cloned(labc_params: Path, tmp_path_factory, start_lab) -> Lab:
    lab = start_lab(labc_params)
    hakit_run(str(labc_params), stages="all", out_root=tmp_path_factory.mktemp("runs-cloned"), html=False)
    yield lab
    lab.down()


def test_cloned_layout_failover(cloned: Lab, tmp_path: Path) -> None:
    from hakit.failover.suite import FailoverSuite

    lab = cloned
    params = lab.params
    assert params.pacemaker.cloned_apache
    first, second = (n.name for n in params.nodes)
    st = parse_crm_mon(lab.ssh(first, ["crm_mon", "-1", "--output-as=xml"], check=True).stdout)
    assert st.started_on("httpd") == [first, second], st.resources_frame().to_string()
    assert {r.clone for r in st.instances("httpd")} == {"httpd-clone"}
    assert st.serving("vip") == first == params.preferred_node
    hosts = notebook.connect_nodes(params)
    try:
        report = check(params, hosts)  # `hakit check`: the built cluster matches its params
    finally:
        for h in hosts.values():
            h.close()
    assert report.clean, report.drift
    standby_pid = _apache_pid(lab, second)
    assert standby_pid is not None, f"no Apache master process on {second} before the faults"

    suite = FailoverSuite(params, ",".join(SCENARIOS), 1, dry_run=False, record_dir=str(tmp_path / "record"))
    df = suite.run()
    suite.save()
    print(df[["scenario", "downtime_s", "detect_s", "recover_s", "failback_s", "served_after", "fenced",
              "ended", "problems"]].to_string(index=False))
    print("downtime, cloned-apache (this run, one trial each) vs article (README):")
    for r in df.itertuples():
        print(f"  {r.scenario:13s} cloned {r.downtime_s:5.2f} s   article {ARTICLE_S[r.scenario]} s")
    assert list(df["scenario"]) == list(SCENARIOS)
    assert df["ok"].all(), df[~df["ok"]][["scenario", "problems"]].to_string()
    by = df.set_index("scenario")
    for name in SCENARIOS:
        assert by.loc[name, "served_after"] == second, name
        assert by.loc[name, "ended"] == f"back on {first}", name
    assert by.loc["node-crash", "fenced"] == first and by.loc["apache-crash", "httpd_failcount"] == 1

    # Only the VIP moved: the standby's Apache instance was started in every crm_mon sample of the move...
    move = next(t for t in suite.done if t.row.scenario == "planned-move")
    samples = [c.status for c in move.cluster if c.status is not None]
    assert samples, "no crm_mon sample during the planned move"
    stopped = [s.resources_frame().to_string() for s in samples if second not in s.started_on("httpd")]
    assert not stopped, f"httpd was not started on {second} during the planned move:\n{stopped[0]}"
    # ... and its master process is the same one after all three faults: never stopped, never restarted.
    assert _apache_pid(lab, second) == standby_pid, f"Apache on {second} was restarted during the faults"
    # The first node runs an instance again (it stopped in standby, was banned after the crash, lost power).
    st = parse_crm_mon(lab.ssh(second, ["crm_mon", "-1", "--output-as=xml"], check=True).stdout)
    assert st.started_on("httpd") == [first, second] and st.serving("vip") == first
