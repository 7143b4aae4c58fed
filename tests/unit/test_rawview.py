"""The operator's own commands beside the tables: legends read against output captured on lab nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit import rawview
from hakit.runner import FakeRunner

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> str:
    """A captured output without its '# ' header (test modules cannot import tests/unit/conftest.py)."""
    return (FIXTURES / name).read_text().partition("# ---\n")[2]


def parts(name: str, fixture: str) -> dict[str, str]:
    lg = rawview.legend(load_fixture(fixture), rawview.VIEWS[name].legend)
    return dict(zip(lg["part"], lg["seen here"]))


def test_cfgtool_legend_names_each_link_and_a_lost_one() -> None:
    up = parts("cfgtool", "captured/trixie/cfgtool-2node-connected.txt")
    assert list(up) == ["Local node ID", "link 0 (ring0)", "addr", "localhost", "connected", "link 1 (ring1)"]
    down = parts("cfgtool", "captured/trixie/cfgtool-2node-link0-down.txt")
    assert down["disconnected"].endswith("disconnected") and down["connected"].endswith(" connected")


def test_quorumtool_legend_explains_two_node_flags() -> None:
    p = parts("quorumtool", "captured/trixie/quorumtool-2node-quorate.txt")
    assert p["Flags"].startswith("Flags:") and "WaitForAll" in p["Flags"]
    assert p["Quorum"].startswith("Quorum:") and p["Expected votes"] == "Expected votes:   2"
    assert "Flags " not in p  # one line, one part: the Flags line is explained once


@pytest.mark.parametrize("fixture", ["captured/trixie/crm-configure-show.txt", "captured/crm-configure-show-bookworm.txt"])
def test_crm_show_legend_on_both_releases(fixture: str) -> None:
    p = parts("crm-show", fixture)
    for part in ("node", "primitive ... stonith:", "primitive", "op monitor", "clone", "colocation",
                 "location ... 100:", "rule", "property"):
        assert part in p, (part, list(p))
    assert p["colocation"] == "colocation httpd-with-vip inf: httpd vip"


def test_bonding_legend_reads_the_kernels_bond_file() -> None:
    p = parts("bonding", "bond0-healthy.txt")
    assert p["Currently Active Slave"] == "Currently Active Slave: eth0"
    assert p["MII Polling Interval"] == "MII Polling Interval (ms): 100"


def test_show_runs_read_only_on_the_right_nodes() -> None:
    hosts = {n: FakeRunner(n) for n in ("vm-node1", "vm-node2")}
    for h in hosts.values():
        h.answer(r"^corosync-cfgtool -s$", load_fixture("captured/trixie/cfgtool-2node-connected.txt"))
    shown = rawview.show(hosts, "cfgtool")
    assert [o.node for o in shown.outputs] == ["vm-node1", "vm-node2"]  # each node's own view
    assert "How to read it" in shown._repr_html_()
    one = rawview.show(hosts, "quorumtool")
    assert [o.node for o in one.outputs] == ["vm-node1"]  # the first node that answers speaks for the cluster
    bonds = rawview.show(hosts, "bonding")
    assert "no /proc/net/bonding here" in bonds.outputs[0].text
    with pytest.raises(ValueError, match="use one of cfgtool, quorumtool, crm-show, bonding"):
        rawview.show(hosts, "crm_mon")
