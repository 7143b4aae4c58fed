"""Pure renderers: params model in, configuration file text out (no I/O)."""

from hakit.render.corosync import CorosyncConfError, parse_corosync_conf, render_corosync_conf
from hakit.render.interfaces import BondOptions, render_all_interfaces, render_interfaces

__all__ = [
    "BondOptions",
    "CorosyncConfError",
    "parse_corosync_conf",
    "render_all_interfaces",
    "render_corosync_conf",
    "render_interfaces",
]
