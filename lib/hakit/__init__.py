"""hakit: runbooks and a local lab for Pacemaker/Corosync active/passive clusters."""

__version__ = "0.1.0"
