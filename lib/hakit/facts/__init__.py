"""Pure fact parsers: command or file output in, typed data out (no I/O)."""

from hakit.facts.bonding import BondSlave, BondStatus, parse_proc_bonding
from hakit.facts.corosync import (
    LinkPeer,
    LinkReport,
    LinkStatus,
    QuorumMember,
    QuorumReport,
    parse_cfgtool_status,
    parse_quorumtool_status,
)
from hakit.facts.errors import FactParseError

__all__ = [
    "BondSlave",
    "BondStatus",
    "FactParseError",
    "LinkPeer",
    "LinkReport",
    "LinkStatus",
    "QuorumMember",
    "QuorumReport",
    "parse_cfgtool_status",
    "parse_proc_bonding",
    "parse_quorumtool_status",
]
