"""The one error the fact parsers raise: output that does not match the known format."""

from __future__ import annotations

from ..errors import HakitError


class FactParseError(HakitError, ValueError):
    """Command or file output a parser cannot read; names the source and the line."""

    def __init__(self, source: str, problem: str, line_no: int | None = None, line: str | None = None):
        self.source = source
        self.problem = problem
        self.line_no = line_no
        self.line = line
        where = f"{source}, line {line_no}" if line_no is not None else source
        shown = f" (got {line!r})" if line is not None else ""
        super().__init__(
            f"{where}: {problem}{shown}. If the tool's output format changed, save the raw "
            "output under tests/unit/fixtures/ and extend the parser."
        )
