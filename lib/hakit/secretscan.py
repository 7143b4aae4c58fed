"""Scan a run folder for secret material: the corosync authkey in any common encoding, and params secrets.

The key is read from the nodes over SFTP into memory only when a scan starts
(`authkey_secrets`), turned into search patterns, and dropped. Nothing here
prints, logs or writes a secret: findings name the file, the secret's label
and the encoding, never the matched bytes.

A long secret is cut into fixed-size pieces per encoding and each piece is
searched for, so a leaked fragment is caught too: any run of at least
2 x PIECE - 1 consecutive characters of an encoded form contains a whole piece.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, SecretBytes, SecretStr

from .paths import AUTHKEY

PIECE = 16  # characters (or bytes) per searched piece of a long encoded secret
MIN_SECRET = 4  # shorter params secrets cannot be searched for without false alarms
SECRET_FILE_RE = re.compile(r"(password|secret|token)_file$")


@dataclass(frozen=True)
class Finding:
    """Secret material found in a file: where and which form, never the material itself."""

    file: str
    secret: str
    form: str

    def __str__(self) -> str:
        return f"{self.file}: contains {self.secret} ({self.form})"


@dataclass(frozen=True, repr=False)
class Secret:
    """One secret value and its label. Its repr never shows the value."""

    label: str
    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Secret({self.label!r}, <{len(self.value)} bytes hidden>)"


def _pieces(form: bytes, size: int) -> Iterator[bytes]:
    """Consecutive non-overlapping pieces; a short form is searched for whole."""
    if len(form) < 2 * size:
        yield form
        return
    for i in range(0, len(form) - size + 1, size):
        yield form[i : i + size]


def encodings(value: bytes) -> dict[str, bytes]:
    """The forms a secret may take in a file: raw, hex (both cases), base64 (standard and URL-safe).

    base64 depends on where the secret starts in the encoded stream, so the three
    alignments are covered (their outer characters, which mix in neighbours, are dropped).
    """
    forms = {"raw bytes": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode()}
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + value)
        # Keep only the characters made of the secret's bits alone (6 bits each).
        inner = enc[-(-8 * shift // 6) : 8 * (shift + len(value)) // 6]
        forms[f"base64 (offset {shift})"] = inner
        forms[f"base64url (offset {shift})"] = inner.replace(b"+", b"-").replace(b"/", b"_")
    return forms


@dataclass(frozen=True, repr=False)
class Patterns:
    """Everything to search for, built once per scan: (secret label, form, piece)."""

    items: tuple[tuple[str, str, bytes], ...]

    def __repr__(self) -> str:
        return f"Patterns(<{len(self.items)} pieces hidden>)"

    @classmethod
    def build(cls, secrets: Iterable[Secret]) -> "Patterns":
        items: list[tuple[str, str, bytes]] = []
        for s in secrets:
            if len(s.value) < MIN_SECRET:
                continue
            if len(s.value) >= PIECE:
                forms = encodings(s.value)
            else:  # a password: searched for whole, as is and in base64
                forms = {"raw bytes": s.value, "base64": base64.b64encode(s.value).rstrip(b"=")}
            seen: set[bytes] = set()  # a piece found in two forms (base64 without + or /) is searched once
            for form, text in forms.items():
                for piece in _pieces(text, PIECE):
                    if piece not in seen:
                        seen.add(piece)
                        items.append((s.label, form, piece))
        return cls(tuple(items))


def scan_bytes(name: str, data: bytes, patterns: Patterns) -> list[Finding]:
    """Findings in one blob, at most one per (secret, form)."""
    found: dict[tuple[str, str], Finding] = {}
    for label, form, piece in patterns.items:
        if (label, form) not in found and piece in data:
            found[(label, form)] = Finding(name, label, form)
    return list(found.values())


@dataclass
class ScanReport:
    """What was scanned and what was found (JSON-ready through `to_dict`)."""

    files: int = 0
    bytes: int = 0
    secrets: list[str] = field(default_factory=list)  # labels only
    sources: list[str] = field(default_factory=list)  # where the secrets came from, or why none
    findings: list[Finding] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # secrets that could not be obtained, and why

    @property
    def clean(self) -> bool:
        return not self.findings and not self.incomplete

    def to_dict(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "files": self.files,
            "bytes": self.bytes,
            "secrets": self.secrets,
            "sources": self.sources,
            "findings": [str(f) for f in self.findings],
            "incomplete": self.incomplete,
        }


def scan_folder(
    folder: Path, secrets: Iterable[Secret], report: ScanReport | None = None, only: Iterable[Path] | None = None
) -> ScanReport:
    """Scan every file under `folder` (or just `only`), binary and whole, for every form of every secret."""
    secrets = list(secrets)
    report = report or ScanReport()
    report.secrets = sorted({s.label for s in secrets} | set(report.secrets))
    for s in secrets:
        note = f"{s.label}: shorter than {MIN_SECRET} bytes, cannot be searched for"
        if len(s.value) < MIN_SECRET and note not in report.sources:
            report.sources.append(note)
    patterns = Patterns.build(secrets)
    files = list(only) if only is not None else folder.rglob("*")
    for path in sorted(p for p in files if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        report.files += 1
        report.bytes += len(data)
        report.findings += scan_bytes(str(path.relative_to(folder)), data, patterns)
    return report


def params_secrets(model: BaseModel, prefix: str = "params") -> list[Secret]:
    """Every SecretStr / SecretBytes value in a params model (nested models, lists and dicts included).

    A Path field named like ``password_file`` or ``secret_file`` names a local file whose
    first line is a secret (as the fencing password file is): that line is searched for too.
    """
    out: list[Secret] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, SecretStr):
            out.append(Secret(where, value.get_secret_value().encode()))
        elif isinstance(value, SecretBytes):
            out.append(Secret(where, value.get_secret_value()))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                field_value = getattr(value, name)
                if isinstance(field_value, Path) and SECRET_FILE_RE.search(name):
                    _secret_file(field_value, f"{where}.{name}")
                else:
                    walk(field_value, f"{where}.{name}")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")

    def _secret_file(path: Path, where: str) -> None:
        try:
            first = path.expanduser().read_bytes().splitlines()[:1]
        except OSError:
            return  # the stage that uses it reports a missing file; nothing to search for
        if first and first[0].strip():
            out.append(Secret(f"{where} (its content)", first[0].strip()))

    walk(model, prefix)
    return out


def fencing_secrets(params: object, report: ScanReport) -> list[Secret]:
    """Every fence device's password, as the stage installs it: from the params, a password
    file, or (in the lab) the lab's own BMC password file. One Secret per distinct value."""
    from .fencing import FencingError, devices, read_password

    seen: dict[bytes, list[str]] = {}
    for dev in devices(params):  # type: ignore[arg-type]
        try:
            seen.setdefault(read_password(dev), []).append(dev.node)
        except FencingError as e:
            report.incomplete.append(f"BMC password of {dev.node}: {e}")
    for nodes in seen.values():
        report.sources.append(f"BMC password of {', '.join(nodes)}: read on this machine, kept in memory only")
    return [Secret(f"the BMC password of {', '.join(nodes)}", pw) for pw, nodes in seen.items()]


def _read_on_nodes(params: object, path: str, what: str, report: ScanReport) -> tuple[dict[bytes, list[str]], list[str]]:
    """``path`` read over SFTP from every node that has it, in memory: content -> the nodes that hold it,
    and the nodes without it. A node that cannot be reached or read makes the scan incomplete."""
    from .remote import RemoteError, connect  # SSH only when a real scan runs

    found: dict[bytes, list[str]] = {}
    absent: list[str] = []
    for node in params.nodes:  # type: ignore[attr-defined]
        try:
            host = connect(params, node)  # type: ignore[arg-type]
        except RemoteError as e:
            report.incomplete.append(f"{what} on {node.name}: cannot connect ({e.command}, exit {e.exit_code})")
            continue
        try:
            if host.run(["test", "-e", path], check=False).ok:
                found.setdefault(host.read_bytes(path), []).append(node.name)
            else:
                absent.append(node.name)
        except RemoteError as e:
            report.incomplete.append(f"{what} on {node.name}: cannot read it ({e.command})")
        finally:
            host.close()
    return found, absent


def authkey_secrets(params: object, report: ScanReport) -> list[Secret]:
    """Read the authkey from every node over SFTP, in memory; one Secret per distinct key.

    A node without the key adds nothing (stage 2 has not run there). A node that cannot
    be read makes the scan incomplete, so a run is never called clean without checking.
    """
    keys, absent = _read_on_nodes(params, AUTHKEY, "authkey", report)
    for i, nodes in enumerate(keys.values()):
        report.sources.append(f"authkey #{i + 1}: read from {', '.join(nodes)} over SFTP, kept in memory only")
    if absent:
        report.sources.append(f"no authkey on {', '.join(absent)} (nothing to look for there)")
    label = "the corosync authkey"
    return [Secret(label if len(keys) == 1 else f"{label} #{i + 1}", k) for i, k in enumerate(keys)]


def qdevice_secrets(params: object, report: ScanReport) -> list[Secret]:
    """With a quorum device: the cluster's qdevice PKCS#12 file (certificate and private key; stage 03q
    copies it between nodes), read over SFTP from every node that has it, in memory; one Secret per
    distinct file. Without a quorum device, nothing. The qnetd CA's key never leaves its host, so
    nothing of it can be in a record."""
    if getattr(params, "quorum_device", None) is None:
        return []
    from .stages.qdevice import P12

    files, _ = _read_on_nodes(params, P12, "qdevice PKCS#12", report)
    for nodes in files.values():
        report.sources.append(f"qdevice PKCS#12: read from {', '.join(nodes)} over SFTP, kept in memory only")
    return [Secret(f"the qdevice PKCS#12 file of {', '.join(nodes)}", data) for data, nodes in files.items()]
