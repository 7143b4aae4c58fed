"""What the teaching texts state, parsed from the texts themselves, for tests that hold a statement
against the code, the params or a lab node: the figures are read from the prose, never typed twice.

Importable from tests/unit and tests/lab alike (tests/ is on sys.path through its conftest).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook_text(number: str, cell_type: str = "markdown") -> str:
    """Every cell of that type in notebooks/<number>_*.ipynb, joined, whitespace folded to single spaces."""
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    return " ".join(" ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == cell_type)


def profiles_text() -> str:
    """The prose of lib/hakit/profiles.py: its docstrings and comments (whitespace folded)."""
    source = (ROOT / "lib" / "hakit" / "profiles.py").read_text()
    tree = ast.parse(source)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    comments = [ln.split("#", 1)[1] for ln in source.splitlines() if "#" in ln]
    return " ".join(" ".join(strings + comments).split())


_DEFAULT = re.compile(r"corosync's own defaults? since [\d.]+ (?:is|are) token (\d+) ms, consensus (\d+) ms")


def stated_corosync_defaults(text: str) -> set[tuple[int, int]]:
    """Every (token, consensus) the text gives as corosync's own default, in ms."""
    return {(int(t), int(c)) for t, c in _DEFAULT.findall(text)}
