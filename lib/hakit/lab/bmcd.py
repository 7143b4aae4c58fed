"""One lab node's virtual BMC, as a daemon: `python -m hakit.lab.bmcd --lab-dir DIR --node NAME`.

Started and stopped by the lab (`hakit.lab.bmc`); see there for what it is. Its
chassis power commands act on the node through the lab's own primitives.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..params import parse_params
from . import daemon
from .bmc import CIPHER_SUITE, MODULE, USERNAME, bmc_dir, endpoints, password_file


def serve(lab_dir: Path, node_name: str, ready_fd: int | None) -> None:
    """Run one node's BMC until SIGTERM."""
    import pyghmi.ipmi.bmc as pyghmi_bmc  # imported here: only the daemon needs pyghmi

    from .lab import Lab  # imported here: the daemon needs the lab, the lab only starts the daemon

    params = parse_params(json.loads((bmc_dir(lab_dir) / "params.json").read_text()), "lab BMC params")
    lab = Lab(params, progress=lambda m: print(m, flush=True))
    ep = next(e for e in endpoints(params) if e.node == node_name)
    password = password_file(lab_dir).read_text().strip()

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} bmc {ep}: {msg}", flush=True)

    class LabBmc(pyghmi_bmc.Bmc):  # type: ignore[misc]
        """Chassis power of one lab node."""

        def get_power_state(self) -> str:
            return "on" if lab._node_running(node_name) else "off"

        def power_off(self) -> None:
            log("chassis power off: cutting power")
            lab.power_cut(node_name)

        def power_on(self) -> None:
            # A real BMC returns at once and the machine boots meanwhile; status says "on"
            # as soon as the node's init runs.
            log("chassis power on: booting")
            lab.power_on(node_name, wait=False)

        def power_reset(self) -> None:
            log("chassis power reset")
            lab.power_cut(node_name)
            lab.power_on(node_name, wait=False)

        def power_cycle(self) -> None:
            self.power_reset()

        def get_system_guid(self):  # noqa: ANN201 - pyghmi wants a uuid.UUID
            return self.uuid

    server = LabBmc({USERNAME: password}, port=ep.port, address=ep.address)
    del password

    def on_term(_sig: int, _frame: object) -> None:
        # pyghmi's event loop may sleep in a lock for minutes when idle, so a flag would
        # not be seen; nothing here needs flushing, so leave at once.
        log("stopped")
        server.serversocket.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log(f"listening (user {USERNAME}, cipher suite {CIPHER_SUITE})")
    daemon.ready(ready_fd)
    while True:
        pyghmi_bmc.ipmisession.Session.wait_for_rsp(timeout=1)
        _reap_children()


def _reap_children() -> None:
    """Collect nodes this daemon booted that have since been powered off (no zombies; until
    then the lab counts a zombie as off). Safe here: between requests the daemon waits for no
    other child of its own."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="one lab node's virtual BMC (IPMI over LAN)")
    ap.add_argument("--lab-dir", type=Path, required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--ready-fd", type=int, default=None)
    a = ap.parse_args(argv)
    serve(a.lab_dir, a.node, a.ready_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
