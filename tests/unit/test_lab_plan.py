"""The lab's pure parts: network naming, mirror discovery, image cache keys."""

from pathlib import Path

import pytest

from hakit.lab.image import PACKAGES, ImageSpec, host_mirror, packages_for
from hakit.lab.net import plan_network
from hakit.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def test_bond_names_mode_gives_one_link_per_network_named_like_the_bond():
    p = load_params(ROOT / "params/lab.yaml")
    L = plan_network(p, "bond-names")
    n1 = L.node("vm-node1")
    assert [(ln.node_end, ln.network, ln.address) for ln in n1.links] == [
        ("bond0", "private", "10.77.0.11/24"),
        ("bond1", "public", "10.77.1.11/24"),
    ]
    assert L.bridges == {"private": "hkpriv", "public": "hkpub"}
    assert L.gw_address == "10.77.1.1/24"
    assert n1.netns == "hk-vm-node1"


def test_slaves_mode_gives_the_articles_four_nics_address_on_first_slave():
    p = load_params(ROOT / "params/lab.yaml")
    n2 = plan_network(p, "slaves").node("vm-node2")
    assert [ln.node_end for ln in n2.links] == ["eth0", "eth1", "eth2", "eth3"]
    assert [ln.address for ln in n2.links] == ["10.77.0.12/24", None, "10.77.1.12/24", None]


def test_every_host_side_name_fits_the_kernel_limit_and_is_unique():
    for f in ("lab.yaml", "lab-3node.yaml"):
        p = load_params(ROOT / "params" / f)
        for mode in ("bond-names", "slaves"):
            L = plan_network(p, mode)
            names = [ln.host_end for n in L.nodes for ln in n.links] + list(L.bridges.values()) + [L.gw_host_end]
            assert all(len(n) <= 15 for n in names), names
            assert len(set(names)) == len(names)


def test_two_labs_do_not_share_names():
    a = plan_network(load_params(ROOT / "params/lab.yaml"), "bond-names")
    b = plan_network(load_params(ROOT / "params/lab-3node.yaml"), "bond-names")
    na = {ln.host_end for n in a.nodes for ln in n.links} | set(a.bridges.values()) | {a.gw_netns}
    nb = {ln.host_end for n in b.nodes for ln in n.links} | set(b.bridges.values()) | {b.gw_netns}
    assert not na & nb


def test_host_mirror_deb822(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"


def test_host_mirror_one_line_format(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb http://sec.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.example/debian bookworm main\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"


def test_host_mirror_none(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    assert host_mirror(tmp_path) is None


def test_image_key_changes_with_package_list_only():
    a = ImageSpec()
    assert ImageSpec(packages=tuple(reversed(a.packages))).key == a.key
    assert ImageSpec(packages=a.packages + ("tcpdump",)).key != a.key
    assert ImageSpec(recipe=a.recipe + 1).key != a.key


def test_one_image_per_release_and_the_bookworm_key_unchanged():
    bw, tx = ImageSpec.for_release("bookworm"), ImageSpec.for_release("trixie")
    assert bw == ImageSpec() and bw.key == ImageSpec().key  # existing bookworm caches stay valid
    assert bw.key.startswith("bookworm-") and tx.key.startswith("trixie-") and tx.key != bw.key
    # Debian 13's fence-agents is a metapackage of every agent: trixie takes fence_ipmilan's package only.
    assert "fence-agents" in PACKAGES and "fence-agents" not in tx.packages
    assert "fence-agents-ipmilan" in tx.packages and len(tx.packages) == len(PACKAGES)


def test_image_for_an_unknown_release_is_refused_by_name():
    with pytest.raises(ValueError, match="no lab image for Debian release 'buster'; use one of bookworm, trixie"):
        packages_for("buster")
