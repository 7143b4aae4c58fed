"""The one seam between hakit and a host: a `Runner` protocol, one `Result`, and a fake.

`remote.Host` (SSH), `localcmd` (this machine) and `FakeRunner` (unit tests) all
answer with the same `Result`. Stages and operations only ever see a `Runner`,
so a unit test can stand a `FakeRunner` with captured real output in for a node
and read back exactly what would have been sent.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .errors import HakitError, with_tail


@dataclass(frozen=True)
class Result:
    """What one command gave back."""

    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def returncode(self) -> int:  # the name subprocess uses
        return self.exit_code


class RemoteError(HakitError, RuntimeError):
    """A step on a host failed: which host, which command, exit code, stderr tail."""

    def __init__(self, host: str, command: str, exit_code: int | None, stderr: str = "", hint: str = ""):
        self.host, self.node, self.command, self.exit_code, self.stderr = host, host, command, exit_code, stderr
        code = "no exit code" if exit_code is None else f"exit {exit_code}"
        super().__init__(with_tail(f"on {host}: `{command}` failed ({code})", stderr, hint))


@runtime_checkable
class Runner(Protocol):
    """A host that runs commands and moves files (bytes in memory only: never on a command line)."""

    name: str

    def run(self, command: str | Sequence[str], *, check: bool = True, timeout: float | None = None,
            hint: str = "") -> Result: ...

    def read_bytes(self, path: str) -> bytes: ...

    def read_text(self, path: str) -> str | None: ...

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root:root") -> None: ...

    def close(self) -> None: ...


def as_command(command: str | Sequence[str]) -> str:
    """The command line a runner sends: a list is quoted for the remote shell."""
    return command if isinstance(command, str) else shlex.join(command)


@dataclass(frozen=True)
class Sent:
    """One thing a FakeRunner was asked to do: ``run``, ``read`` or ``write`` (with a digest, never bytes)."""

    kind: str
    what: str
    mode: int | None = None
    owner: str | None = None
    sha256: str | None = None


Answer = Result | str | Callable[[str], "Result | str"]


@dataclass
class FakeRunner:
    """A scripted host for unit tests: command -> answer, a dict of files, and a log of what was sent.

    ``script`` maps a regular expression (searched in the command line) to a Result, a
    stdout string, or a callable of the command line; the first match answers. Unmatched
    commands answer ``default`` (exit 0, no output) unless ``strict``, where they fail the test.
    Writes land in ``files``; ``fail_on`` makes matching commands (or ``write <path>``) fail.
    """

    name: str
    script: list[tuple[str, Answer]] = field(default_factory=list)
    # After the script: a fake host where no other run holds the cluster lock (hakit.lock), so the
    # lock is taken at once; a test that wants it held answers that command itself.
    defaults: list[tuple[str, Answer]] = field(default_factory=lambda: [
        (r"^mkdir -p -m 0755 /run/hakit && .*set -C", "TAKEN"), (r"^grep -qF .* /run/hakit/lock", "")])
    files: dict[str, bytes] = field(default_factory=dict)
    strict: bool = False
    fail_on: list[str] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def answer(self, pattern: str, reply: Answer) -> "FakeRunner":
        self.script.append((pattern, reply))
        return self

    def _failing(self, what: str) -> bool:
        return any(re.search(p, what) for p in self.fail_on)

    def run(self, command: str | Sequence[str], *, check: bool = True, timeout: float | None = None,
            hint: str = "") -> Result:
        cmd = as_command(command)
        self.sent.append(Sent("run", cmd))
        res: Result | None = None
        if self._failing(cmd):
            res = Result("", "injected failure", 1)
        else:
            for pattern, reply in [*self.script, *self.defaults]:
                if re.search(pattern, cmd):
                    got = reply(cmd) if callable(reply) else reply
                    res = Result(got, "", 0) if isinstance(got, str) else got
                    break
        if res is None:
            if self.strict:
                raise AssertionError(f"{self.name}: unexpected command {cmd!r}")
            res = Result("", "", 0)
        if check and not res.ok:
            raise RemoteError(self.name, cmd, res.exit_code, res.stderr or res.stdout, hint)
        return res

    def read_bytes(self, path: str) -> bytes:
        self.sent.append(Sent("read", path))
        if path not in self.files:
            raise RemoteError(self.name, f"sftp get {path}", None, "[Errno 2] No such file")
        return self.files[path]

    def read_text(self, path: str) -> str | None:
        try:
            return self.read_bytes(path).decode()
        except RemoteError:
            return None

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        self.sent.append(Sent("write", path, mode, owner, hashlib.sha256(data).hexdigest()))
        if self._failing(f"write {path}"):
            raise RemoteError(self.name, f"sftp put {path}", None, "injected failure")
        self.files[path] = bytes(data)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ what tests read back

    @property
    def commands(self) -> list[str]:
        return [s.what for s in self.sent if s.kind == "run"]

    @property
    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "write"]

    def changing(self, read_only: Iterable[str] = ()) -> list[Sent]:
        """What was sent that could change the host: writes, and commands not matching a read-only pattern."""
        patterns = list(read_only)
        return [s for s in self.sent
                if s.kind == "write" or (s.kind == "run" and not any(re.search(p, s.what) for p in patterns))]
