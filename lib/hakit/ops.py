"""Typed operations: what a stage's plan says it will do, and exactly what `apply` does.

A plan is an ordered list of these. A dry run shows each one's `describe()`;
`stages.driver.execute` runs them in order and nothing else, so the record of a
dry run is the program of the real run. Every operation names its node and the
reason it exists. Secret payloads travel by reference (`SecretRef`): a plan and
its record hold where a secret comes from, never its bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import HakitError
from .runner import Runner, as_command

CLUSTER = "cluster"  # the row of work that belongs to no single node (a barrier, the CIB)


class OperationError(HakitError, RuntimeError):
    """An operation found the host not as its plan assumed; the message says what to do next."""


@dataclass
class ApplyContext:
    """What operations share while one plan runs: the hosts (a step may reconnect one), where
    records go, and secrets held in memory for the length of the apply only."""

    hosts: MutableMapping[str, Runner]
    record_dir: Path | None = None
    memory: dict[str, bytes] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _m: None
    memory_lock: threading.Lock = field(default_factory=threading.Lock)  # nodes of a phase run on threads

    def host(self, node: str) -> Runner:
        try:
            return self.hosts[node]
        except KeyError:
            raise OperationError(f"no connection to {node}; connect every node in the params first") from None


@dataclass(frozen=True, kw_only=True)
class Op:
    """One step on one node. Subclasses say what (`describe`) and do it (`execute`)."""

    node: str
    reason: str = ""
    mutates: ClassVar[bool] = True  # False: reads or checks only (still run in a real apply, never in a dry run)

    @property
    def action(self) -> str:
        """The short name of the step, as plans show it per node."""
        return self.describe()

    def describe(self) -> str:
        raise NotImplementedError

    def execute(self, ctx: ApplyContext) -> str:
        """Do it; return a one-line detail of what was done. Raise on failure."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"op": type(self).__name__, "node": self.node, "describe": self.describe(), "reason": self.reason,
                "mutates": self.mutates}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def short(digest: str | None) -> str:
    """The first 12 hex characters of a sha256, enough to compare by eye."""
    return f"{digest[:12]}…" if digest else "-"


@dataclass(frozen=True, kw_only=True)
class WriteFile(Op):
    """Write a (non-secret) file atomically with this mode and owner."""

    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    owner: str = "root:root"
    label: str = ""  # the short action name plans show; default "write <path>"

    @property
    def action(self) -> str:
        return self.label or f"write {self.path}"

    def describe(self) -> str:
        return f"write {self.path} sha256 {short(sha256(self.content))} {self.owner} {self.mode:04o}"

    def execute(self, ctx: ApplyContext) -> str:
        ctx.host(self.node).write_bytes(self.path, self.content, mode=self.mode, owner=self.owner)
        return f"wrote {self.path} ({len(self.content)} bytes, sha256 {short(sha256(self.content))})"

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"path": self.path, "sha256": sha256(self.content), "mode": f"{self.mode:04o}",
                                    "owner": self.owner}


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from (shown), and how to load it at apply time (never shown)."""

    label: str  # e.g. "BMC password for vm-node1 (from /etc/hakit/bmc-node1.pass)"
    load: Callable[[], bytes] = field(repr=False, compare=False)
    digest: str | None = None  # shown only where a digest gives nothing away (random keys, not passwords)

    def __str__(self) -> str:
        return self.label + (f", sha256 {short(self.digest)}" if self.digest else "")


@dataclass(frozen=True, kw_only=True)
class WriteSecret(Op):
    """Write a secret file, root-only from its first byte; the bytes are loaded only when it runs."""

    path: str
    secret: SecretRef
    mode: int = 0o600
    owner: str = "root:root"

    @property
    def action(self) -> str:
        return f"write {self.path}"

    def describe(self) -> str:
        return f"write {self.path} ({self.secret}) {self.owner} {self.mode:04o}"

    def execute(self, ctx: ApplyContext) -> str:
        ctx.host(self.node).write_bytes(self.path, self.secret.load(), mode=self.mode, owner=self.owner)
        return f"wrote {self.path} ({self.secret.label})"


@dataclass(frozen=True, kw_only=True)
class Command(Op):
    """Run one command. ``argv`` as a tuple is quoted for the remote shell; a str is a shell line."""

    argv: tuple[str, ...] | str
    timeout: float | None = None
    hint: str = ""
    label: str = ""
    read_only: bool = False  # a check (e.g. a validator) rather than a change

    @property
    def mutates(self) -> bool:  # type: ignore[override]
        return not self.read_only

    @property
    def command(self) -> str:
        return as_command(self.argv)

    @property
    def action(self) -> str:
        return self.label or self.command

    def describe(self) -> str:
        return self.command

    def execute(self, ctx: ApplyContext) -> str:
        ctx.host(self.node).run(self.argv, timeout=self.timeout, hint=self.hint)
        return self.label or self.command


@dataclass(frozen=True, kw_only=True)
class Systemctl(Command):
    """``systemctl <verb> <units>``, one verb over units in the order given."""

    argv: tuple[str, ...] | str = ()
    verb: str
    units: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", ("systemctl", self.verb, *self.units))


@dataclass(frozen=True, kw_only=True)
class CopySecretFile(Op):
    """Copy a secret file from one node to another through this machine's memory (SFTP both ways).

    The source's digest is checked against the one the source node computes, and the copy's
    against the source's, so a change while copying or a bad disk is caught. ``expect_sha256``
    pins the source to what the plan saw; None means "made earlier in this apply".
    """

    src_node: str
    path: str
    src_path: str = ""  # where the file is on the source node; default: the same path as on this node
    mode: int = 0o400
    owner: str = "root:root"
    expect_sha256: str | None = None
    size_range: tuple[int, int] | None = None
    label: str = ""
    made_above: str = ""  # without expect_sha256: what earlier in this apply made the source (default: the key)

    @property
    def action(self) -> str:
        return self.label or f"copy {self.path}"

    def describe(self) -> str:
        src = f"sha256 {short(self.expect_sha256)}" if self.expect_sha256 else (self.made_above or "the key made above")
        where = f"{self.src_node}:{self.src_path}" if self.src_path and self.src_path != self.path else self.src_node
        return f"copy {self.path} from {where} ({src}) to {self.node} {self.owner} {self.mode:04o}"

    def execute(self, ctx: ApplyContext) -> str:
        key = f"{self.src_node}:{self.src_path or self.path}"
        with ctx.memory_lock:  # the source is read once, by one thread, for every copy of a phase
            self._load_source(ctx, key)
        data = ctx.memory[key]
        dst = ctx.host(self.node)
        dst.write_bytes(self.path, data, mode=self.mode, owner=self.owner)
        got = remote_sha256(dst, self.path)
        if got != sha256(data):
            raise OperationError(
                f"{self.node}: after copying, {self.path} has sha256 {short(got)}, expected {short(sha256(data))}; "
                "the file there was replaced but is not the source's: check the disk on that node and run the "
                "stage again")
        return f"copied {self.path} from {self.src_node} (sha256 {short(got)})"

    def _load_source(self, ctx: ApplyContext, key: str) -> None:
        if key not in ctx.memory:
            src = ctx.host(self.src_node)
            src_path = self.src_path or self.path
            data = src.read_bytes(src_path)
            digest = sha256(data)
            if digest != remote_sha256(src, src_path):
                raise OperationError(f"{self.src_node}: {src_path} changed while it was read; run the stage again")
            if self.expect_sha256 and digest != self.expect_sha256:
                raise OperationError(
                    f"{self.src_node}: {src_path} is no longer the file the plan saw (sha256 {short(digest)}, "
                    f"planned {short(self.expect_sha256)}); nothing was copied: plan again")
            if self.size_range and not self.size_range[0] <= len(data) <= self.size_range[1]:
                lo, hi = self.size_range
                raise OperationError(
                    f"{self.src_node}: {src_path} has {len(data)} bytes; {lo}..{hi} are needed. "
                    "Make a proper one (for the authkey: rotate_key=True)")
            ctx.memory[key] = data


def remote_sha256(host: Runner, path: str) -> str:
    """The digest a node computes itself (the bytes never leave it for this)."""
    return host.run(["sha256sum", path]).stdout.split()[0]


@dataclass(frozen=True, kw_only=True)
class Barrier(Op):
    """Nothing runs past this line until every operation before it succeeded on every node."""

    node: str = CLUSTER
    text: str
    mutates: ClassVar[bool] = False

    @property
    def action(self) -> str:
        return f"--- barrier: {self.text} ---"

    def describe(self) -> str:
        return self.action

    def execute(self, ctx: ApplyContext) -> str:
        return ""


def phases(ops: Sequence[Op]) -> list[list[Op]]:
    """The ops between barriers; within one phase, each node's ops keep their order."""
    out: list[list[Op]] = [[]]
    for op in ops:
        if isinstance(op, Barrier):
            out.append([])
        else:
            out[-1].append(op)
    return [p for p in out if p]
