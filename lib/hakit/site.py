"""Which provider hands these params their inventory: the params themselves, or the local lab.

The one place that knows providers exist; everything else calls `inventory(params)`.
"""

from __future__ import annotations

from . import inventory as inv
from .lab import inventory as lab_inventory
from .params import Params


def inventory(params: Params) -> inv.Inventory:
    """The inventory for these params, from whichever provider their file names (a `lab:` section or not)."""
    if params.lab is not None:
        return lab_inventory.lab_inventory(params)
    return inv.from_params(params)
