"""The cluster diagram renders from 2- and 3-node params and shows what the params say."""

from __future__ import annotations

import pytest

from hakit import diagram
from hakit.params import load_params


@pytest.mark.parametrize("name", ["lab.yaml", "lab-3node.yaml"])
def test_diagram_shows_nodes_networks_bonds_vip_gateway_and_lab_host(root, name, tmp_path):
    params = load_params(root / "params" / name)
    d = diagram.draw(params)
    svg = d._repr_svg_()
    nets = params.networks
    expected = [params.cluster.name, str(params.vip.address), str(nets.public.gateway),
                str(nets.private.subnet), str(nets.public.subnet), nets.private.bond, nets.public.bond,
                *nets.private.slaves, *nets.public.slaves,
                str(params.lab.host_private_ip), str(params.lab.host_public_ip)]
    for n in params.nodes:
        expected += [n.name, str(n.private_ip), str(n.public_ip)]
    missing = [t for t in expected if t not in svg]
    assert not missing, f"not in the drawing: {missing}"
    assert svg.count(f">{nets.private.slaves[0]}<") == len(params.nodes)  # one pair of slaves per node
    d.savefig(tmp_path / "cluster.png", dpi=60)
    assert (tmp_path / "cluster.png").read_bytes()[:4] == b"\x89PNG"


def test_real_hosts_have_no_lab_host_box(root):
    svg = diagram.draw(load_params(root / "params" / "example-real.yaml")).svg()
    assert "this machine" not in svg and "VIP" in svg


def _variant(root, tmp_path, name: str, *swaps: tuple[str, str]):
    """A shipped params file with some text replaced: what the drawing shows must follow it."""
    text = (root / "params" / name).read_text()
    for old, new in swaps:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"variant-{name}"
    path.write_text(text)
    return load_params(path)


@pytest.mark.parametrize("name", ["lab.yaml", "lab-3node.yaml"])
def test_rings_show_both_links_every_node_and_the_token_round_from_the_params(root, name):
    from hakit.profiles import get_profile

    params = load_params(root / "params" / name)
    svg = diagram.rings(params).svg()
    nets, profile, n = params.networks, get_profile(params.cluster.profile), len(params.nodes)
    expected = [params.cluster.name, f"profile {profile.name}", str(nets.private.subnet), str(nets.public.subnet),
                f"on {nets.private.bond}", f"on {nets.public.bond}", f"token {profile.effective_token(n)} ms",
                f"consensus {profile.consensus} ms", f"{n * (n - 1) // 2} pair"]
    for nd in params.nodes:
        expected += [nd.name, f"nodeid {nd.nodeid}", f"ring0 {nd.private_ip}", f"ring1 {nd.public_ip}"]
    missing = [t for t in expected if t not in svg]
    assert not missing, f"not in the rings: {missing}"
    order = " -&gt; ".join(f"nodeid {nd.nodeid}" for nd in sorted(params.nodes, key=lambda x: x.nodeid))
    assert order in svg  # the token's round, in nodeid order
    assert ("two_node: 1" in svg) == (n == 2)


def test_rings_follow_changed_params(root, tmp_path):
    params = _variant(root, tmp_path, "lab.yaml", ("vm-node2", "db-east"), ("10.77.0.12", "10.77.0.42"),
                      ("profile: fast", "profile: seed"))
    svg = diagram.rings(params).svg()
    assert "db-east" in svg and "ring0 10.77.0.42" in svg and "vm-node2" not in svg
    assert "token 3000 ms" in svg and "consensus 3600 ms" in svg and "profile seed" in svg


@pytest.mark.parametrize("name", ["lab.yaml", "lab-3node.yaml", "example-real.yaml"])
def test_fencing_shows_each_device_its_bmc_and_who_fences_whom(root, name):
    from hakit import fencing

    params = load_params(root / "params" / name)
    svg = diagram.fencing(params).svg()
    devs = fencing.devices(params)
    assert devs and len(devs) == len(params.nodes)
    for d in devs:
        others = " or ".join(nd.name for nd in params.nodes if nd.name != d.node)
        for t in (f"BMC of {d.node}", f"{d.address}:{d.port}", f"fence-{d.node}", f"run by {others}",
                  f"power off {d.node}"):
            assert t in svg, t
    assert f"stonith-action {params.pacemaker.fencing.action}" in svg
    delays = [r for r in fencing.stonith_resources(params) if "pcmk_delay_base" in r.attributes]
    if len(params.nodes) == 2:
        (r,) = delays
        assert r.target == params.preferred_node and f"pcmk_delay_base {r.attributes['pcmk_delay_base']}" in svg
    else:
        assert not delays and "pcmk_delay_base" not in svg
    # where the fencer reaches the BMCs: the lab's run on this machine's private address
    if params.lab is not None:
        assert "(this machine)" in svg and f"private network {params.networks.private.subnet}" in svg
    else:
        assert "(this machine)" not in svg


def test_fencing_follows_changed_params(root, tmp_path):
    params = _variant(root, tmp_path, "example-real.yaml", ("web2: {address: 10.0.2.12}",
                                                            "web2: {address: 10.0.2.99, port: 6240}"),
                      ("lanplus: true", "lanplus: true\n    delay_s: 9"))
    svg = diagram.fencing(params).svg()
    assert "10.0.2.99:6240" in svg and "10.0.2.12" not in svg
    assert "pcmk_delay_base 9s" in svg and "a management network" in svg
    lab = _variant(root, tmp_path, "lab.yaml", ("vm-node1", "alpha"), ("host_private_ip: 10.77.0.254",
                                                                       "host_private_ip: 10.77.0.250"))
    svg = diagram.fencing(lab).svg()
    assert "BMC of alpha" in svg and "10.77.0.250:6231" in svg
    assert "fence race alpha shoots first" in svg


def test_fencing_without_devices_says_so(root, tmp_path):
    text = (root / "params" / "lab.yaml").read_text().replace("stonith_enabled: true", "stonith_enabled: false")
    (tmp_path / "unfenced.yaml").write_text("\n".join(
        ln for ln in text.splitlines() if not ln.strip().startswith(("fencing:", "agent: fence_", "power_wait_s:"))))
    params = load_params(tmp_path / "unfenced.yaml")
    svg = diagram.fencing(params).svg()
    assert "fencing of hakit-lab: none" in svg and "stonith-enabled: false" in svg


@pytest.mark.parametrize("number, call", [("01", "diagram.draw(params)"), ("03", "diagram.rings(params)"),
                                          ("04", "diagram.fencing(params)")])
def test_each_notebook_draws_its_part(root, number, call):
    import nbformat

    (path,) = (root / "notebooks").glob(f"{number}_*.ipynb")
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert any(c.source.rstrip().endswith(call) for c in cells), f"{path.name} does not show {call}"
