"""A fact is a read-only command and the pure parser of its output; `read` is the one way to get one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..runner import Runner
from .errors import FactParseError

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """``command`` must not change the host; ``parse`` turns its stdout into typed data (no I/O)."""

    name: str
    command: str | Sequence[str]
    parse: Callable[[str], T]
    timeout: float | None = None


def read(host: Runner, fact: Fact[T]) -> T:
    """Run the fact's command on ``host`` (any exit code: the parser judges the output) and parse it."""
    return fact.parse(host.run(fact.command, check=False, timeout=fact.timeout).stdout)


def xml_root(text: str, source: str, tag: str) -> ET.Element:
    """The root element of a tool's XML output, which must be ``<tag>``; FactParseError naming ``source`` if not."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise FactParseError(source, f"not XML ({e})", line=text[:160]) from None
    if root.tag != tag:
        raise FactParseError(source, f"expected <{tag}>, got <{root.tag}>")
    return root
