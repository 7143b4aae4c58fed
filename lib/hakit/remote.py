"""SSH to cluster nodes: the only module that imports Fabric.

Fabric trusts any host key by default (its Connection installs paramiko's
AutoAddPolicy and loads no known_hosts). Here every connection loads the
known_hosts file from the params, rejects unknown or changed keys before
anything is sent, never forwards the agent, and times out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import shlex
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paramiko
from fabric import Connection

from .site import inventory as resolve
from .params import Node, Params
from .runner import RemoteError, Result

__all__ = ["Host", "HostKeyError", "RemoteError", "Result", "connect", "connect_all", "connect_qnetd", "fingerprint", "ssh_files"]


class HostKeyError(RemoteError):
    """The node's host key is unknown or differs from the pinned one; nothing was sent."""


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def ssh_files(params: Params) -> tuple[Path, Path]:
    """The private key and known_hosts file the site's inventory names."""
    inv = resolve(params)
    return inv.key_file, inv.known_hosts


def check_ssh_files(params: Params) -> tuple[Path, Path]:
    """Fail before connecting when the key or known_hosts file is missing or unreadable."""
    inv = resolve(params)
    key, kh = inv.key_file, inv.known_hosts
    for what, path in (("ssh.key_file", key), ("ssh.known_hosts", kh)):
        try:
            path.read_bytes()
        except FileNotFoundError:
            extra = f" ({inv.missing_hint})" if inv.missing_hint else ""
            raise RemoteError("localhost", f"read {path}", None, f"{what} {path} does not exist{extra}") from None
        except OSError as e:
            raise RemoteError("localhost", f"read {path}", None, f"{what} {path} cannot be read: {e.strerror}") from None
    return key, kh


class Host:
    """One node over SSH, host key pinned. Use `connect()` to make one."""

    def __init__(self, params: Params, node: Node | None, *, name: str = "", address: str = ""):
        self.params = params
        self.node = node  # None for a host that is not a cluster node (the quorum device's qnetd host)
        self.name = node.name if node is not None else name
        self.address = str(params.ssh_address(node)) if node is not None else address
        key, kh = check_ssh_files(params)
        self._kh = kh
        self.conn = Connection(
            host=self.address,
            user=params.ssh.user,
            port=params.ssh.port,
            connect_timeout=int(params.ssh.connect_timeout),
            forward_agent=False,
            connect_kwargs={
                "key_filename": str(key),
                "allow_agent": False,
                "look_for_keys": False,
                "banner_timeout": params.ssh.connect_timeout,
                "auth_timeout": params.ssh.connect_timeout,
            },
        )
        client = self.conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.load_host_keys(str(kh))

    def open(self) -> None:
        if self.conn.is_connected:
            return
        try:
            self.conn.open()
        except paramiko.BadHostKeyException as e:
            raise HostKeyError(
                self.name,
                "ssh connect",
                None,
                f"host key of {self.name} ({self.address}) does not match the pinned key: "
                f"pinned {fingerprint(e.expected_key)}, offered {fingerprint(e.key)}. Nothing was sent.",
                f"If the node was reinstalled on purpose, update {self._kh}; otherwise treat it as an attack.",
            ) from None
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise HostKeyError(
                    self.name, "ssh connect", None,
                    f"{self.name} ({self.address}) has no pinned host key in {self._kh}. Nothing was sent.",
                    "Add its key to that file after checking its fingerprint on the node's console.",
                ) from None
            raise RemoteError(self.name, "ssh connect", None, str(e)) from None
        except OSError as e:
            raise RemoteError(self.name, "ssh connect", None, f"cannot reach {self.address}:{self.params.ssh.port}: {e}") from None

    def run(
        self, command: str | Sequence[str], *, check: bool = True, timeout: float | None = None, hint: str = ""
    ) -> Result:
        """Run a command; `command` as a list is quoted for the remote shell. Output is captured, not echoed."""
        cmd = command if isinstance(command, str) else shlex.join(command)
        self.open()
        try:
            r = self.conn.run(
                cmd, hide=True, warn=True, in_stream=False, timeout=timeout or self.params.ssh.command_timeout
            )
        except Exception as e:  # invoke's CommandTimedOut and transport errors
            raise RemoteError(self.name, cmd, None, f"{type(e).__name__}: {e}", hint) from None
        res = Result(r.stdout, r.stderr, r.exited)
        if check and not res.ok:
            raise RemoteError(self.name, cmd, res.exit_code, res.stderr or res.stdout, hint)
        return res

    def read_bytes(self, path: str) -> bytes:
        """Read a remote file over SFTP into memory (never through a command line or log)."""
        self.open()
        buf = io.BytesIO()
        try:
            self.conn.sftp().getfo(path, buf)
        except OSError as e:
            raise RemoteError(self.name, f"sftp get {path}", None, str(e)) from None
        return buf.getvalue()

    def read_text(self, path: str) -> str | None:
        """A remote text file, or None when it does not exist."""
        try:
            return self.read_bytes(path).decode()
        except RemoteError as e:
            if "No such file" in e.stderr:
                return None
            raise

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        """Write a file atomically: upload beside it with the final mode, then rename over it.

        If any step fails, the upload is removed again: a failed write leaves no stray copy (for the
        authkey, a second copy of the secret) beside the file, so "nothing was changed" holds.
        """
        self.open()
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.hakit-{uuid.uuid4().hex[:8]}")
        sftp = self.conn.sftp()
        try:
            try:
                with sftp.open(tmp, "wb") as f:
                    f.chmod(mode)  # before any byte is written, so a secret is never world-readable
                    f.write(data)
            except OSError as e:
                raise RemoteError(self.name, f"sftp put {tmp}", None, str(e)) from None
            self.run(["chown", owner, tmp])
            self.run(["mv", "-f", tmp, path])
        except BaseException:
            try:
                self.run(["rm", "-f", "--", tmp], check=False)
            except Exception:  # noqa: BLE001 - the node may be gone; the original error is what matters
                pass
            raise

    def close(self) -> None:
        self.conn.close()


def connect(params: Params, node: Node | str) -> Host:
    n = params.node(node) if isinstance(node, str) else node
    h = Host(params, n)
    h.open()
    return h


def connect_qnetd(params: Params) -> Host:
    """The quorum device's qnetd host (params ``quorum_device``), host key pinned like a node's."""
    qd = params.quorum_device
    if qd is None:
        raise ValueError("these params have no quorum_device, so there is no qnetd host to connect to")
    h = Host(params, None, name=qd.host, address=qd.address)
    h.open()
    return h


@contextmanager
def connect_all(params: Params) -> Iterator[dict[str, Host]]:
    """Open every node (in params order); all are closed on exit."""
    hosts: dict[str, Host] = {}
    try:
        for n in params.nodes:
            hosts[n.name] = connect(params, n)
        yield hosts
    finally:
        for h in hosts.values():
            h.close()
