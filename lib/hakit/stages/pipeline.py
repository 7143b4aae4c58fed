"""Stages 0-6 in the order a deployment runs them, each bound to the params (one list for every user)."""

from __future__ import annotations

from ..params import Params
from . import authkey, bonding, constraints, corosync, packages, properties, resources
from .driver import Stage

# The notebook that applies each stage, in the same order as `stages`.
NOTEBOOKS = ("00_packages", "01_bonding", "02_authkey", "03_corosync_rings", "04_pacemaker_properties", "05_resources",
             "06_constraints")


def stages(params: Params) -> list[Stage]:
    return [packages.PackagesStage(params), bonding.BondingStage(params), authkey.AuthkeyStage(params), corosync.CorosyncStage(params),
            properties.PropertiesStage(params), resources.ResourcesStage(params), constraints.ConstraintsStage(params)]
