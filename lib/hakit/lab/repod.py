"""The bare lab's package mirror as a daemon: `python -m hakit.lab.repod --lab-dir DIR --root R --address A`.

A read-only HTTP server for one directory, bound to the lab's private host
address only (never a wildcard), started and stopped by the lab (`hakit.lab.repo`).
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import time
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import daemon


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        print(f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {format % args}", flush=True)

    def do_POST(self) -> None:  # noqa: N802
        self.send_error(405)

    do_PUT = do_DELETE = do_POST


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lab-dir", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--ready-fd", type=int, default=None)
    a = ap.parse_args(argv)
    handler = functools.partial(_Handler, directory=str(a.root))
    server = ThreadingHTTPServer((a.address, a.port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _exit)
    print(f"{time.strftime('%H:%M:%S')} serving {a.root} on {a.address}:{a.port}", flush=True)
    daemon.ready(a.ready_fd)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
