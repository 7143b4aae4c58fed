"""The local lab of real Debian nodes (systemd-nspawn containers on host bridges)."""

from .lab import Lab, LabError, NodeStatus

__all__ = ["Lab", "LabError", "NodeStatus"]
