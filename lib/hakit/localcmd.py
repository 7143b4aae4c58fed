"""Commands run on this machine (not on cluster nodes): one runner, one error type."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from .errors import HakitError, with_tail
from .runner import Result


class LocalCommandError(HakitError, RuntimeError):
    """A local command failed; carries the command, exit code and stderr tail."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, hint: str = ""):
        self.argv = list(argv)
        self.returncode = self.exit_code = returncode
        self.command = shlex.join(self.argv)
        self.stderr = stderr
        super().__init__(with_tail(f"command failed (exit {returncode}): {self.command}", stderr, hint, 8, "\n"))


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = 120,
    input: str | None = None,
    hint: str = "",
) -> Result:
    """Run argv (never through a shell); raise LocalCommandError on failure when check."""
    try:
        p = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise LocalCommandError(argv, 127, f"{argv[0]}: not found", hint or "install it (make setup)") from None
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise LocalCommandError(argv, -1, err + f"\ntimed out after {timeout} s", hint) from None
    if check and p.returncode != 0:
        raise LocalCommandError(argv, p.returncode, p.stderr, hint)
    return Result(p.stdout, p.stderr, p.returncode)
