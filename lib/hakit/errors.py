"""The one root of hakit's errors, with the fields a run report and a notebook need.

Every error the library raises on purpose is a `HakitError` (it also keeps its
old built-in base, so `except RuntimeError` in users' code still works). The
fields are structured, so `hakit run` reads them from `error.json` instead of
parsing a message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ERROR_FILE = "error.json"


class HakitError(Exception):
    """An error hakit raised on purpose; its message says what to do next.

    Optional fields: ``stage``, ``node``, ``command``, ``exit_code``, ``stderr``
    (the tail), and ``changed``: the operations already carried out when it was
    raised (empty means nothing was changed).
    """

    stage: str | None = None
    node: str | None = None
    command: str | None = None
    exit_code: int | None = None
    stderr: str = ""
    changed: Sequence[str] = ()

    def fields(self) -> dict[str, Any]:
        """The structured part, JSON-ready (never the key or password bytes: messages carry none)."""
        tail = "\n".join((self.stderr or "").strip().splitlines()[-6:])
        return {
            "type": type(self).__name__,
            "message": str(self),
            "stage": self.stage,
            "node": getattr(self, "host", None) if self.node is None else self.node,
            "command": self.command,
            "exit_code": self.exit_code,
            "stderr_tail": tail,
            "changed": list(self.changed),
        }


def with_tail(head: str, stderr: str, hint: str = "", lines: int = 6, sep: str = ":\n") -> str:
    """A failed command's message: what failed, the last lines of its stderr, then what to do next."""
    tail = "\n".join(stderr.strip().splitlines()[-lines:])
    return head + (f"{sep}{tail}" if tail else "") + (f"\n{hint}" if hint else "")


class ParamsError(HakitError, ValueError):
    """A parameter file that cannot be used; the message says what to fix."""


def error_fields(e: BaseException) -> dict[str, Any]:
    """The structured fields of any exception (a foreign one gets type and message only)."""
    if isinstance(e, HakitError):
        return e.fields()
    return {"type": type(e).__name__, "message": str(e), "stage": None, "node": None, "command": None,
            "exit_code": None, "stderr_tail": "", "changed": []}


def save_error(e: BaseException, record_dir: str | Path | None) -> Path | None:
    """Write ``error.json`` into a stage's record folder (nothing when there is none, as by hand)."""
    if not record_dir:
        return None
    folder = Path(record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ERROR_FILE
    path.write_text(json.dumps(error_fields(e), indent=2) + "\n")
    return path


def load_error(record_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(record_dir) / ERROR_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
