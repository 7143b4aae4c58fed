"""`Host.write_bytes` (SFTP upload beside the file, chown, rename) leaves no upload behind when a
step fails. Seen on a lab node: a refused `mv` left `/etc/corosync/.authkey.hakit-*`, a second copy
of the authkey, while the stage said "nothing was changed" (tests/lab/test_stage_failures.py)."""

from __future__ import annotations

import shlex

import pytest

from hakit.remote import Host
from hakit.runner import RemoteError, Result


class Upload:
    def __init__(self, store: dict[str, bytes], path: str) -> None:
        self.store, self.path = store, path

    def __enter__(self) -> "Upload":
        self.store[self.path] = b""
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def chmod(self, mode: int) -> None:
        self.mode = mode

    def write(self, data: bytes) -> None:
        self.store[self.path] += data


class Sftp:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def open(self, path: str, mode: str) -> Upload:
        return Upload(self.files, path)


class Conn:
    is_connected = True

    def __init__(self) -> None:
        self.fs = Sftp()

    def sftp(self) -> Sftp:
        return self.fs


def host(fail_on: str | None) -> tuple[Host, list[str]]:
    """A Host whose SSH is a dict of files; the command named ``fail_on`` fails."""
    h = object.__new__(Host)
    h.name, h.conn = "vm-node2", Conn()
    sent: list[str] = []

    def run(command, *, check=True, timeout=None, hint=""):  # noqa: ANN001, ANN202
        argv = list(command) if not isinstance(command, str) else shlex.split(command)
        sent.append(shlex.join(argv))
        files = h.conn.fs.files
        if argv[0] == fail_on:
            if check:
                raise RemoteError(h.name, shlex.join(argv), 1, "refused")
            return Result("", "refused", 1)
        if argv[0] == "mv":
            files[argv[-1]] = files.pop(argv[-2])
        if argv[0] == "rm":
            files.pop(argv[-1], None)
        return Result("", "", 0)

    h.run = run  # type: ignore[method-assign]
    return h, sent


@pytest.mark.parametrize("step", ["chown", "mv"])
def test_a_failed_step_removes_the_upload(step: str) -> None:
    h, sent = host(fail_on=step)
    with pytest.raises(RemoteError, match="refused"):
        h.write_bytes("/etc/corosync/authkey", b"k" * 256, mode=0o400)
    assert h.conn.fs.files == {}, "the upload stayed beside the file"
    assert sent[-1].startswith("rm -f -- /etc/corosync/.authkey.hakit-")


def test_a_write_that_works_leaves_only_the_file() -> None:
    h, sent = host(fail_on=None)
    h.write_bytes("/etc/corosync/authkey", b"k" * 256, mode=0o400)
    assert h.conn.fs.files == {"/etc/corosync/authkey": b"k" * 256}
    assert [s.split()[0] for s in sent] == ["chown", "mv"]
