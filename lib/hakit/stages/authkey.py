"""Stage 2: the corosync authkey. One key, made on the first node, the same on every node, root-only.

On this machine the key exists only in memory, while it is copied over SFTP
(`Host.read_bytes` / `Host.write_bytes`): never on a command line, in a log or in a
local file. Facts carry only its sha256, computed on the node.
"""

from __future__ import annotations

import html
import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..errors import HakitError
from ..ops import ApplyContext, Barrier, Command, CopySecretFile, Op, remote_sha256, short
from ..params import Params
from ..paths import AUTHKEY
from ..runner import RemoteError, Runner
from .base import Plan, Verification
from .driver import per_node

STAGE = "02 authkey"
OWNER = "root:root"
MODE = 0o400
# knet (corosync 3) accepts keys of 128..4096 bytes; corosync-keygen makes 256 by default.
MIN_SIZE, MAX_SIZE = 128, 4096

GENERATE = "generate key"
COPY = "copy key"
FIX = "fix owner/mode"

# One read-only probe per node; prints `key value` lines and never the key itself.
PROBE = (
    f"f={AUTHKEY}; "
    "if command -v corosync-keygen >/dev/null 2>&1; then echo keygen yes; else echo keygen no; fi; "
    "if [ \"$(systemctl is-active corosync 2>/dev/null)\" = active ]; then echo corosync active; else echo corosync inactive; fi; "
    "if [ -L \"$f\" ]; then echo kind symlink; "
    "elif [ -f \"$f\" ]; then echo kind file; stat -c 'meta %U:%G %a %s' \"$f\"; sha256sum \"$f\" | sed 's/^/sha256 /'; "
    "elif [ -e \"$f\" ]; then echo kind other; "
    "else echo kind none; fi"
)


class AuthkeyError(HakitError, RuntimeError):
    """The key could not be made or copied as planned; the message says what to do next."""


@dataclass(frozen=True)
class NodeKey:
    """What one node has at /etc/corosync/authkey: metadata and digest only, never the bytes."""

    node: str
    keygen: bool  # corosync-keygen is installed (so is corosync)
    corosync_active: bool
    kind: str  # file | none | symlink | other
    sha256: str | None = None
    owner: str | None = None
    mode: int | None = None
    size: int | None = None

    @property
    def exists(self) -> bool:
        return self.kind == "file"

    @property
    def root_only(self) -> bool:
        return self.owner == OWNER and self.mode == MODE

    def describe_perms(self) -> str:
        return f"{self.owner} {self.mode:04o}" if self.mode is not None else "-"


@dataclass(frozen=True, repr=False)
class AuthkeyFacts:
    """The authkey on every node, in params order (shown with short digests)."""

    nodes: dict[str, NodeKey]

    def __getitem__(self, node: str) -> NodeKey:
        return self.nodes[node]

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "node": k.node,
                "key": {"file": "present", "none": "missing"}.get(k.kind, f"not a file ({k.kind})"),
                "sha256": short(k.sha256),
                "owner mode": k.describe_perms(),
                "bytes": k.size if k.size is not None else "-",
                "corosync": "active" if k.corosync_active else "inactive",
                "corosync-keygen": "installed" if k.keygen else "MISSING",
            }
            for k in self.nodes.values()
        ]
        return pd.DataFrame(rows, columns=["node", "key", "sha256", "owner mode", "bytes", "corosync", "corosync-keygen"])

    def _repr_html_(self) -> str:
        return f"<h4>Current state: {html.escape(AUTHKEY)}</h4>" + self.to_frame().to_html(index=False, escape=True)

    def __repr__(self) -> str:
        return self.to_frame().to_string(index=False)


def parse_probe(node: str, output: str) -> NodeKey:
    """Pure: the PROBE output of one node -> NodeKey."""
    seen: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            seen[key] = value.strip()
    if "kind" not in seen or "keygen" not in seen:
        raise AuthkeyError(
            f"{node}: the authkey probe gave an unexpected answer; log in and check `ls -l {AUTHKEY}` by hand"
        )
    kind = seen["kind"]
    if kind != "file":
        return NodeKey(node, seen["keygen"] == "yes", seen.get("corosync") == "active", kind)
    try:
        owner, mode, size = seen["meta"].split()
        digest = seen["sha256"].split()[0].lower()
        int(digest, 16)
        return NodeKey(
            node, seen["keygen"] == "yes", seen.get("corosync") == "active", kind,
            sha256=digest, owner=owner, mode=int(mode, 8), size=int(size),
        )
    except (KeyError, ValueError, IndexError):
        raise AuthkeyError(
            f"{node}: could not read owner, mode, size or sha256 of {AUTHKEY}; "
            f"check it with `stat {AUTHKEY}; sha256sum {AUTHKEY}` on the node"
        ) from None


def gather(hosts: Mapping[str, Runner], params: Params) -> AuthkeyFacts:
    """Read-only: presence, sha256 (computed on the node), owner, mode and size of the key on every node."""
    return AuthkeyFacts(per_node(hosts, [n.name for n in params.nodes], lambda h: parse_probe(h.name, h.run(PROBE).stdout)))


@dataclass(frozen=True, kw_only=True)
class GenerateKey(Op):
    """corosync-keygen beside the old key, then an atomic rename, so the path never holds half a key."""

    path: str = AUTHKEY

    @property
    def action(self) -> str:
        return GENERATE

    def describe(self) -> str:
        return f"generate {self.path} with corosync-keygen (256 random bytes, made on {self.node}) {OWNER} {MODE:04o}"

    def execute(self, ctx: ApplyContext) -> str:
        h = ctx.host(self.node)
        tmp = posixpath.join(posixpath.dirname(self.path), f".authkey.hakit-{uuid.uuid4().hex[:8]}")
        try:
            h.run(["corosync-keygen", "-k", tmp], hint=f"is corosync installed on {h.name}? (apt-get install corosync)")
            h.run(["chmod", f"{MODE:04o}", tmp])
            h.run(["chown", OWNER, tmp])
            h.run(["mv", "-f", tmp, self.path])
        except RemoteError:
            h.run(["rm", "-f", tmp], check=False)
            raise
        return f"generated new key (sha256 {short(remote_sha256(h, self.path))})"


def _copy(node: str, first: str, digest: str | None, reason: str) -> CopySecretFile:
    return CopySecretFile(node=node, src_node=first, path=AUTHKEY, mode=MODE, owner=OWNER, expect_sha256=digest,
                          size_range=(MIN_SIZE, MAX_SIZE), label=COPY, reason=reason)


def _fix(node: str, reason: str) -> Command:
    return Command(node=node, argv=f"chmod {MODE:04o} {AUTHKEY} && chown {OWNER} {AUTHKEY}", label=FIX, reason=reason)


def plan(params: Params, facts: AuthkeyFacts, rotate_key: bool = False) -> Plan:
    """Pure: the first node is the source of the key; every other node gets an identical, root-only copy.

    If the first node has no key, a new one is generated there even when another node has one:
    a key of unknown origin (maybe from another cluster, maybe exposed) is never promoted to
    be the cluster key. The plan says so in a note, so a dry run shows it before anything happens.
    """
    names = [n.name for n in params.nodes]
    missing = [n for n in names if n not in facts.nodes]
    if missing:
        raise AuthkeyError(f"no facts for {', '.join(missing)}; run gather() with the same params first")
    p = Plan(STAGE, order=names)
    first, others = names[0], names[1:]
    src = facts[first]

    src_blocker = _blocker(src, is_source=True)
    if src_blocker:
        p.not_applicable[first] = src_blocker
        for n in others:
            p.not_applicable[n] = f"waits for {first}, the source of the key: {src_blocker}"
        p.notes.append(f"nothing can be done until {first} is fixed; the key is always made on the first node")
        return p

    new_key = rotate_key or not src.exists
    if rotate_key:
        p.ops.append(GenerateKey(node=first, reason="rotate_key=True: a new key replaces the current one"))
        p.notes.append(
            "rotate_key=True: every node gets a new key. corosync reads the key only when it starts, and nodes "
            "with different keys cannot talk, so afterwards restart corosync cluster-wide: stop it on ALL nodes, "
            "then start it on all nodes (this stops pacemaker and its resources too: plan a maintenance window)."
        )
    elif not src.exists:
        p.ops.append(GenerateKey(node=first, reason="no key here: generate one with corosync-keygen (256 bytes from /dev/urandom)"))
        holders = [n for n in others if facts[n].exists]
        if holders:
            p.notes.append(
                f"{first} has no key but {', '.join(holders)} has one: the first node is always the source, so a "
                f"new key is made on {first} and replaces theirs. To keep an existing key instead, copy it to "
                f"{first}:{AUTHKEY} yourself (root:root 0400) and run this stage again."
            )
    elif not src.root_only:
        p.ops.append(_fix(first, _perm_reason(src)))
    else:
        p.no_change[first] = f"source key (sha256 {short(src.sha256)}) in place, {OWNER} {MODE:04o}"

    if new_key:
        p.ops.append(Barrier(text=f"the new key exists on {first} before any node copies it"))
    for n in others:
        k = facts[n]
        blocker = _blocker(k, is_source=False)
        if blocker:
            p.not_applicable[n] = blocker
        elif new_key:
            what = "replace its key with" if k.exists else "install"
            p.ops.append(_copy(n, first, None, f"{what} the new key from {first}"))
        elif not k.exists:
            p.ops.append(_copy(n, first, src.sha256, f"no key here: copy the key (sha256 {short(src.sha256)}) from {first}"))
        elif k.sha256 != src.sha256:
            p.ops.append(_copy(
                n, first, src.sha256, f"different key (sha256 {short(k.sha256)}): replace with {first}'s (sha256 {short(src.sha256)})"))
        elif not k.root_only:
            p.ops.append(_fix(n, _perm_reason(k)))
        else:
            p.no_change[n] = f"same key (sha256 {short(k.sha256)}) already installed, {OWNER} {MODE:04o}"

    rekeyed = [c.node for c in p.changes if c.action in (GENERATE, COPY) and facts[c.node].corosync_active]
    if rekeyed and not rotate_key:
        p.notes.append(
            f"corosync is running on {', '.join(rekeyed)}, whose key changes: it keeps the old key until it "
            "restarts. Restart corosync on all nodes at once afterwards."
        )
    return p


def _blocker(k: NodeKey, is_source: bool) -> str | None:
    """Why a node cannot take part, or None."""
    if k.kind not in ("file", "none"):
        return f"{AUTHKEY} is a {k.kind}, not a regular file; look at it, remove it, and run this stage again"
    if is_source and not k.keygen:
        return "corosync-keygen is missing: install corosync (apt-get install corosync) and run this stage again"
    if not k.keygen:
        return "corosync is not installed (no corosync-keygen): install it (apt-get install corosync) and run again"
    return None


def _perm_reason(k: NodeKey) -> str:
    why = f"same key, but {k.describe_perms()}: set {OWNER} {MODE:04o}"
    if k.mode is not None and k.mode & 0o077:
        why += " (others could read it; consider rotate_key=True)"
    return why


class AuthkeyStage:
    """Stage 2 with its params bound (see `stages.driver.Stage`)."""

    name = STAGE

    def __init__(self, params: Params, rotate_key: bool = False):
        self.params = params
        self.rotate_key = rotate_key

    def gather(self, hosts: Mapping[str, Runner]) -> AuthkeyFacts:
        return gather(hosts, self.params)

    def plan(self, facts: AuthkeyFacts) -> Plan:
        return plan(self.params, facts, rotate_key=self.rotate_key)

    def verify(self, hosts: Mapping[str, Runner], wait: bool = True) -> Verification:
        return verify(hosts, self.params)


def verify(hosts: Mapping[str, Runner], params: Params) -> Verification:
    """Read-only: every node has the first node's key, root:root 0400, of a size corosync accepts."""
    facts = gather(hosts, params)
    v = Verification(STAGE)
    first = params.nodes[0].name
    ref = facts[first].sha256
    fix = "run this stage with dry_run=False"
    for n in params.nodes:
        k = facts[n.name]
        if not k.exists:
            v.add(n.name, "key present", False, f"{AUTHKEY}: {k.kind}; {fix}")
            continue
        size_ok = k.size is not None and MIN_SIZE <= k.size <= MAX_SIZE
        v.add(n.name, "key present", size_ok, f"{k.size} bytes" + ("" if size_ok else f"; corosync needs {MIN_SIZE}..{MAX_SIZE}"))
        v.add(
            n.name, f"same key as {first}", ref is not None and k.sha256 == ref,
            f"sha256 {short(k.sha256)}" + ("" if k.sha256 == ref else f", {first} has {short(ref)}; {fix}"),
        )
        v.add(n.name, f"owner {OWNER}", k.owner == OWNER, str(k.owner))
        v.add(n.name, f"mode {MODE:04o}", k.mode == MODE, f"{k.mode:04o}" if k.mode is not None else "-")
    return v
