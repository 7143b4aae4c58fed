"""Diagrams of the cluster, drawn from the params alone with matplotlib (pure: no node is asked).

- `draw(params)`: the network, as the article's picture has it: each node bonds two NICs per
  network, `bond0` on the private network (corosync ring0) and `bond1` on the public one (ring1,
  the VIP, the gateway, the clients). Notebook 01.
- `rings(params)`: corosync's two knet links between every pair of nodes, which one carries the
  traffic, and the token's round in nodeid order with the profile's timings. Notebook 03.
- `fencing(params)`: each node's fence device, the BMC it drives and the network the fencer
  reaches it on, which node fences which, and the delay that settles a two-node fence race. Notebook 04.

In a notebook, one line shows each: `from hakit import diagram; diagram.rings(params)`.
"""

from __future__ import annotations

import io
import ipaddress

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .params import Params

NODE_W, NODE_H, STEP = 2.5, 1.5, 3.4  # node box size and spacing, in drawing units
Y_PRIV, Y_NODE, Y_PUB = 6.2, 3.9, 1.6  # the private bus, the node row, the public bus
PRIV_COLOR, PUB_COLOR = "#1f5fa8", "#2e8540"
TOKEN_COLOR, FENCE_COLOR = "#c25e00", "#a11d2b"


class Diagram:
    """A drawn cluster: shows itself in notebooks as SVG (text kept as text) and saves to files."""

    def __init__(self, figure: Figure):
        self.figure = figure

    def svg(self) -> str:
        buf = io.StringIO()
        import matplotlib

        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hakit"}):
            self.figure.savefig(buf, format="svg", bbox_inches="tight")
        return buf.getvalue()

    def _repr_svg_(self) -> str:
        return self.svg()

    def savefig(self, path: object, **kwargs: object) -> None:
        """Save as the file suffix says (.svg, .png, .pdf), so a record can keep the picture."""
        import matplotlib

        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hakit"}):
            self.figure.savefig(path, **kwargs)  # type: ignore[arg-type]


def _box(ax, x: float, y: float, w: float, h: float, text: str, face: str, edge: str = "#333", dashed: bool = False) -> None:  # noqa: ANN001
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05,rounding_size=0.15",
            facecolor=face, edgecolor=edge, linewidth=1.2, linestyle="--" if dashed else "-",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, family="monospace")


def _bond(ax, x: float, top: bool, bond: str, slaves: tuple[str, str], ip: str, color: str) -> None:  # noqa: ANN001
    """Two slave NICs from the node's edge to the bus, with the bond's name and address between them."""
    edge = Y_NODE + NODE_H / 2 if top else Y_NODE - NODE_H / 2
    bus = Y_PRIV if top else Y_PUB
    for dx, slave in ((-0.45, slaves[0]), (0.45, slaves[1])):
        ax.plot([x + dx, x + dx], [edge, bus], color=color, linewidth=1.6)
        ax.text(x + dx + (0.08 if dx > 0 else -0.08), (edge + bus) / 2, slave, fontsize=7,
                ha="left" if dx > 0 else "right", va="center", color=color)
    ax.plot([x - 0.45, x + 0.45], [edge + (0.18 if top else -0.18)] * 2, color=color, linewidth=3)
    ax.text(x, (edge + bus) / 2, f"{bond}\n{ip}", fontsize=7.5, ha="center", va="center", color=color,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": color, "linewidth": 0.8})


def draw(params: Params) -> Diagram:
    """The cluster as the params describe it: nodes, both networks, bonds and slaves, VIP, gateway, lab host."""
    nets = params.networks
    n = len(params.nodes)
    xs = [1.7 + i * STEP for i in range(n)]
    right = xs[-1] + STEP * 0.8  # where the gateway and this machine go
    width = right + (2.6 if params.lab else 1.2)
    fig = Figure(figsize=(max(7.5, width * 0.95), 5.8))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.3, width)
    ax.set_ylim(-0.2, 8.3)
    ax.axis("off")

    ax.text(0, 8.0, f"cluster {params.cluster.name}: {n} nodes, corosync profile {params.cluster.profile}",
            fontsize=11, weight="bold", va="center")
    for y, legend_y, color, label in (
        (Y_PRIV, 7.45, PRIV_COLOR, f"private {nets.private.subnet}: corosync ring0 on {nets.private.bond}"),
        (Y_PUB, 7.0, PUB_COLOR, f"public {nets.public.subnet}: ring1, VIP, gateway, clients on {nets.public.bond}"),
    ):
        ax.plot([0, width - 0.4], [y, y], color=color, linewidth=4, solid_capstyle="round")
        ax.plot([0, 0.6], [legend_y, legend_y], color=color, linewidth=4, solid_capstyle="round")
        ax.text(0.8, legend_y, label, fontsize=8.5, color=color, va="center", weight="bold")

    for x, node in zip(xs, params.nodes):
        pref = " (VIP prefers)" if node.name == params.preferred_node else ""
        _box(ax, x, Y_NODE, NODE_W, NODE_H * 0.62, f"{node.name}\nnodeid {node.nodeid}{pref}", "#f4f4f4")
        _bond(ax, x, True, nets.private.bond, nets.private.slaves, str(node.private_ip), PRIV_COLOR)
        _bond(ax, x, False, nets.public.bond, nets.public.slaves, str(node.public_ip), PUB_COLOR)

    # The VIP lives on the public network, on whichever node runs the service.
    px = xs[[nd.name for nd in params.nodes].index(params.preferred_node)]
    _box(ax, px, 0.35, 2.3, 0.6, f"VIP {params.vip.address}", "#fff6d5", edge="#b8860b", dashed=True)
    ax.plot([px, px], [0.65, Y_PUB], color="#b8860b", linestyle="--", linewidth=1)

    gx = right
    _box(ax, gx, 0.35, 2.0, 0.6, f"gateway\n{nets.public.gateway}", "#eaf4ea", edge=PUB_COLOR)
    ax.plot([gx, gx], [0.65, Y_PUB], color=PUB_COLOR, linewidth=1.6)

    if params.lab is not None:
        lx = right + 1.2
        _box(ax, lx, Y_NODE, 2.1, 1.3,
             f"this machine\n(lab {params.lab.id})\n{params.lab.host_private_ip}\n{params.lab.host_public_ip}", "#eef2fb")
        ax.plot([lx, lx], [Y_NODE + 0.65, Y_PRIV], color=PRIV_COLOR, linewidth=1.6)
        ax.plot([lx, lx], [Y_NODE - 0.65, Y_PUB], color=PUB_COLOR, linewidth=1.6)
    return Diagram(fig)


def _canvas(n: int, extra: float = 1.2, height: float = 5.8) -> tuple[Figure, object, list[float], float]:
    """A blank figure for ``n`` node columns: the figure, its axes, the columns' x and the width."""
    xs = [1.7 + i * STEP for i in range(n)]
    width = xs[-1] + STEP * 0.8 + extra
    fig = Figure(figsize=(max(7.5, width * 0.95), height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.3, width)
    ax.set_ylim(-0.2, 8.3)
    ax.axis("off")
    return fig, ax, xs, width


def _arrow(ax, a: tuple[float, float], b: tuple[float, float], color: str, rad: float = 0.0,  # noqa: ANN001
           dashed: bool = False, width: float = 1.4, head: bool = True) -> None:
    ax.add_patch(FancyArrowPatch(a, b, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>" if head else "-",
                                 mutation_scale=12, color=color, linewidth=width,
                                 linestyle="--" if dashed else "-"))


def rings(params: Params) -> Diagram:
    """Corosync's view of the network: both knet links per pair of nodes and the token's round."""
    from .profiles import get_profile
    from .render.corosync import LINK_PRIORITY

    nets = params.networks
    nodes = sorted(params.nodes, key=lambda nd: nd.nodeid)  # the token goes round in nodeid order
    n = len(nodes)
    profile = get_profile(params.cluster.profile)
    token = profile.effective_token(n)
    fig, ax, xs, width = _canvas(n)
    ax.text(0, 8.0, f"corosync rings of {params.cluster.name}: knet, link_mode passive, profile {profile.name}",
            fontsize=11, weight="bold", va="center")
    active = max(LINK_PRIORITY, key=LINK_PRIORITY.__getitem__)
    for link, y, legend_y, color, net, label in (
        (0, Y_PRIV, 7.45, PRIV_COLOR, nets.private, "private"),
        (1, Y_PUB, 7.0, PUB_COLOR, nets.public, "public"),
    ):
        role = "carries the traffic" if link == active else "standby: takes over if the other link fails"
        ax.plot([0, width - 0.4], [y, y], color=color, linewidth=4, solid_capstyle="round",
                linestyle="-" if link == active else (0, (4, 2)))
        ax.plot([0, 0.6], [legend_y, legend_y], color=color, linewidth=4)
        ax.text(0.8, legend_y, f"ring{link} = knet link {link} (priority {LINK_PRIORITY[link]}, {role}): "
                f"{label} {net.subnet} on {net.bond}", fontsize=8.5, color=color, va="center", weight="bold")
    for x, node in zip(xs, nodes):
        _box(ax, x, Y_NODE, NODE_W, NODE_H, f"{node.name}\nnodeid {node.nodeid}\nring0 {node.private_ip}\n"
             f"ring1 {node.public_ip}", "#f4f4f4")
        ax.plot([x, x], [Y_NODE + NODE_H / 2, Y_PRIV], color=PRIV_COLOR, linewidth=1.6)
        ax.plot([x, x], [Y_NODE - NODE_H / 2, Y_PUB], color=PUB_COLOR, linewidth=1.6, linestyle="--")
    # one knet link per network between every pair of nodes: arcs above ring0's bus and below ring1's
    for i in range(n):
        for j in range(i + 1, n):
            rad = 2 * (0.3 + 0.2 * (j - i - 1)) / (xs[j] - xs[i])  # the arc's peak: 0.3 up, higher for far pairs
            _arrow(ax, (xs[i], Y_PRIV + 0.05), (xs[j], Y_PRIV + 0.05), PRIV_COLOR, rad=-rad, head=False)
            _arrow(ax, (xs[i], Y_PUB - 0.05), (xs[j], Y_PUB - 0.05), PUB_COLOR, rad=rad, dashed=True, head=False)
    pairs = n * (n - 1) // 2
    mid = (xs[0] + xs[1]) / 2 if n > 1 else xs[0]
    for y, color, link in ((Y_PRIV + 0.55, PRIV_COLOR, 0), (Y_PUB - 0.6, PUB_COLOR, 1)):
        ax.text(mid, y, f"knet link {link}: {pairs} pair{'s' if pairs > 1 else ''} of nodes", fontsize=7.5,
                ha="center", va="center", color=color, bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                                                             "edgecolor": "none"})
    # the token: from each node to the next by nodeid, the last back to the first
    order = " -> ".join([f"nodeid {nd.nodeid}" for nd in nodes] + [f"nodeid {nodes[0].nodeid}"])
    for i in range(n - 1):  # each node hands the token to the next one by nodeid ...
        y = Y_NODE + (0.25 if n == 2 else 0.0)
        _arrow(ax, (xs[i] + NODE_W / 2, y), (xs[i + 1] - NODE_W / 2, y), TOKEN_COLOR, width=2)
    if n == 2:  # ... and the last one back to the first
        _arrow(ax, (xs[1] - NODE_W / 2, Y_NODE - 0.25), (xs[0] + NODE_W / 2, Y_NODE - 0.25), TOKEN_COLOR, width=2)
    elif n > 2:
        _arrow(ax, (xs[-1], Y_NODE - NODE_H / 2), (xs[0], Y_NODE - NODE_H / 2), TOKEN_COLOR, width=2,
               rad=-2 * 0.7 / (xs[-1] - xs[0]))
    quorum = ("two_node: 1, so one vote is quorum (and wait_for_all)" if n == 2
              else f"quorum: {n // 2 + 1} of {n} votes")
    ax.text(0, 0.35, f"token round ({order}), over the link in use; a node is lost after token {token} ms "
            f"without it, then consensus {profile.consensus} ms: about {(token + profile.consensus) / 1000:.1f} s."
            f"\n{quorum}", fontsize=8.5, color=TOKEN_COLOR, va="center")
    return Diagram(fig)


def _network_of(params: Params, address: str) -> str:
    """Which of the params' networks an address is on, in words (a BMC may sit on a third, management one)."""
    nets = params.networks
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address} (a name: the network its address is on)"
    for label, net in (("private", nets.private), ("public", nets.public)):
        if ip in net.subnet:
            return f"the {label} network {net.subnet} ({net.bond})"
    return "a management network (outside both cluster networks)"


def fencing(params: Params) -> Diagram:
    """Who fences whom: every node's fence device, the BMC it drives and how the fencer reaches it."""
    from .fencing import devices, stonith_resources

    names = [nd.name for nd in params.nodes]
    fig, ax, xs, width = _canvas(len(names), height=5.8)
    x_of = dict(zip(names, xs))
    pm = params.pacemaker
    if pm.fencing is None:
        ax.text(0, 8.0, f"fencing of {params.cluster.name}: none", fontsize=11, weight="bold", va="center")
        ax.text(0, 6.8, f"stonith-enabled: {str(pm.stonith_enabled).lower()}; no fence devices in the params "
                "(pacemaker.fencing): a lost node is never powered off, so a split brain is possible",
                fontsize=9, va="center", color=FENCE_COLOR)
        for x, name in zip(xs, names):
            _box(ax, x, Y_NODE, NODE_W, NODE_H * 0.62, name, "#f4f4f4")
        return Diagram(fig)
    devs = {d.node: d for d in devices(params)}
    res = stonith_resources(params)
    ax.text(0, 8.0, f"fencing of {params.cluster.name}: stonith-enabled {str(pm.stonith_enabled).lower()}, "
            f"stonith-action {pm.fencing.action}, agent {pm.fencing.agent}", fontsize=11, weight="bold", va="center")
    nets = {_network_of(params, d.address) for d in devs.values()}
    ax.text(0, 7.45, "the fencer reaches each BMC on " + "; ".join(sorted(nets)), fontsize=8.5, va="center",
            color=PRIV_COLOR, weight="bold")
    y_node, y_bmc = 5.6, 1.45
    for x, name in zip(xs, names):
        _box(ax, x, y_node, NODE_W, NODE_H * 0.62, f"{name}\n(runs the service)" if name == params.preferred_node
             else name, "#f4f4f4")
    for r in res:
        d = devs[r.target]
        x = x_of[r.target]
        delay = r.attributes.get("pcmk_delay_base")
        fencers = [nm for nm in names if nm != r.avoid_node]  # any node but the one it powers off
        here = " (this machine)" if params.lab is not None and d.address == str(params.lab.host_private_ip) else ""
        label = (f"BMC of {r.target}{here}\n{d.address}:{d.port}\n{r.id}\nrun by {' or '.join(fencers)}"
                 + (f"\npcmk_delay_base {delay}" if delay else ""))
        _box(ax, x, y_bmc, NODE_W + 0.6, 1.45 if delay else 1.2, label, "#fdecee", edge=FENCE_COLOR,
             dashed=bool(delay))
        # the BMC powers its own node off: a line up the node's column
        _arrow(ax, (x - NODE_W / 2 + 0.15, y_bmc + 0.75), (x - NODE_W / 2 + 0.15, y_node - 0.5), FENCE_COLOR,
               dashed=True)
        ax.text(x - NODE_W / 2 + 0.22, (y_bmc + y_node) / 2, f"power off {r.target}", fontsize=7,
                color=FENCE_COLOR, rotation=90, va="center")
        for f in fencers:  # the fencer's ipmitool call to the target's BMC
            fx = x_of[f]
            _arrow(ax, (fx + 0.35, y_node - 0.5), (x + 0.35, y_bmc + 0.75), FENCE_COLOR,
                   rad=0.0 if abs(fx - x) < 0.1 else (0.15 if fx < x else -0.15))
    delayed = [r for r in res if "pcmk_delay_base" in r.attributes]
    ax.text(0, -0.05, ("two nodes: the device that fences " + delayed[0].target + " waits "
                       + delayed[0].attributes["pcmk_delay_base"] + ", so in a fence race " + delayed[0].target
                       + " shoots first and survives") if delayed else "no fence delay (a race needs two nodes)",
            fontsize=8.5, color=FENCE_COLOR, va="center")
    return Diagram(fig)
