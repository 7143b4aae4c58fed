"""A network diagram of the cluster, drawn from the params with matplotlib.

The picture follows the article's: each node bonds two NICs per network,
`bond0` on the private network (corosync ring0) and `bond1` on the public one
(ring1, the VIP, the gateway, the clients). In a notebook, one line shows it:

    from hakit import diagram; diagram.draw(params)
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from .params import Params

NODE_W, NODE_H, STEP = 2.5, 1.5, 3.4  # node box size and spacing, in drawing units
Y_PRIV, Y_NODE, Y_PUB = 6.2, 3.9, 1.6  # the private bus, the node row, the public bus
PRIV_COLOR, PUB_COLOR = "#1f5fa8", "#2e8540"


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
