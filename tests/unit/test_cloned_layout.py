"""The cloned-apache layout read from crm_mon as pacemaker 3.0 wrote it on a lab cluster built with it.

Where the service is, whether the cluster is in its normal placement, and what the judge counts as
"active on two nodes": the same questions as for the article's layout, on the lab's own output
(tests/unit/fixtures/captured/trixie/crm_mon-cloned-apache*.xml).
"""

from __future__ import annotations

import pytest

from hakit.facts.pacemaker import ClusterStatus, parse_crm_mon
from hakit.failover import scenarios
from hakit.failover.judge import Observation, judge
from hakit.failover.runner import healthy
from hakit.failover.timeline import ProbeSample
from hakit.failover.watch import ClusterSample
from hakit.params import Params
from hakit.stages.constraints import placed
from hakit.stages.resources import httpd_placed

A, B = "vm-node1", "vm-node2"


@pytest.fixture(scope="module")
def cloned_st(load_fixture) -> ClusterStatus:
    return parse_crm_mon(load_fixture("captured/trixie/crm_mon-cloned-apache.xml"))


@pytest.fixture(scope="module")
def killed_st(load_fixture) -> ClusterStatus:
    return parse_crm_mon(load_fixture("captured/trixie/crm_mon-cloned-apache-standby-killed.xml"))


@pytest.fixture(scope="module")
def cloned(lab: Params) -> Params:
    return lab.model_copy(update={"pacemaker": lab.pacemaker.model_copy(update={"layout": "cloned-apache"})})


def test_crm_mon_lists_one_httpd_per_node_inside_the_clone(cloned_st: ClusterStatus) -> None:
    assert [(r.clone, r.nodes) for r in cloned_st.instances("httpd")] == [("httpd-clone", (B,)), ("httpd-clone", (A,))]
    assert cloned_st.started_on("httpd") == [A, B] and cloned_st.serving("httpd") is None


def test_the_service_node_is_the_vips_when_an_instance_runs_there(cloned_st: ClusterStatus) -> None:
    assert cloned_st.service_node(httpd_cloned=True) == A
    assert cloned_st.service_node() is None  # read as the article's layout: httpd on two nodes serves nowhere


def test_normal_placement_by_layout(cloned_st: ClusterStatus, cloned: Params, lab: Params) -> None:
    assert httpd_placed(cloned_st, cloned) and placed(cloned_st, cloned)
    assert healthy(cloned_st, cloned) == (True, "healthy")
    assert not httpd_placed(cloned_st, lab) and not placed(cloned_st, lab)
    ok, why = healthy(cloned_st, lab)
    assert not ok and f"httpd on {B}, {A}" in why


def test_a_killed_standby_instance_leaves_the_service_but_not_the_normal_placement(
        killed_st: ClusterStatus, cloned: Params) -> None:
    # the instance on the standby is failed and being stopped; the VIP's node still serves
    assert killed_st.service_node(httpd_cloned=True) == A and killed_st.started_on("httpd") == [A]
    assert [f.resource for f in killed_st.failures] == ["httpd"] and killed_st.failures[0].node == B
    assert not httpd_placed(killed_st, cloned)
    ok, why = healthy(killed_st, cloned)
    assert not ok and "a resource is failed" in why
    assert not scenarios.service_stopped(killed_st)


def test_httpd_on_every_node_is_no_problem_for_the_clone_only(cloned_st: ClusterStatus, cloned: Params) -> None:
    (scn,) = scenarios.select("planned-move")
    def observation(httpd_cloned: bool) -> Observation:
        o = Observation(scn, True, A, B, B, None, cloned_st, t_inject=10.0, t_restore=20.0, httpd_cloned=httpd_cloned)
        o.probes = [ProbeSample(8.0 + 0.04 * i, True, A if i < 50 else B) for i in range(300)]
        o.cluster = [ClusterSample(11.0, cloned_st, B)]
        return o
    assert not [p for p in judge(observation(True)) if "at once" in p]
    assert [p for p in judge(observation(False)) if "httpd active on" in p]


def test_the_catalogue_says_what_moves_in_the_cloned_layout() -> None:
    move = scenarios.SCENARIOS["planned-move"]
    assert move.expected_text(None, httpd_cloned=True) != move.expected_text(None)
    assert "keeps running" in move.expected_text(None, httpd_cloned=True)
    assert "already runs" in scenarios.SCENARIOS["node-crash"].expected_text(None, httpd_cloned=True)
    idle = scenarios.SCENARIOS["idle"]  # where the layouts behave alike, one text serves both
    assert idle.expected_text(None, httpd_cloned=True) == idle.expected


def test_the_score_table_reads_the_clone_row_beside_the_vip(load_fixture) -> None:
    from hakit.stages.scores import CLONED_RESOURCES, ScoreView, parse_scores

    now = parse_scores(load_fixture("captured/trixie/crm_simulate-scores-cloned-apache.txt"))
    cut = parse_scores(load_fixture("captured/trixie/crm_simulate-scores-cloned-apache-gateway-cut.txt"))
    v = ScoreView(B, A, now, cut, (A, B), resources=CLONED_RESOURCES)
    rows = v.to_frame().set_index(["resource", "node"])
    assert "?" not in rows.to_numpy()  # every row found in pacemaker's own output
    assert rows.loc[("vip", A)].tolist() == ["100", "-INFINITY"] and rows.loc[("vip", B)].tolist() == ["0", "0"]
    # the VIP's preference reaches the clone through vip-with-httpd: 100 on vm-node1, gone without its gateway
    assert rows.loc[("httpd-clone", A)].tolist() == ["100", "0"]
    assert v.winner(now) == A and v.winner(cut) == B
