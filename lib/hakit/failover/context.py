"""What a fault scenario gets to work with during one trial (kept apart so scenarios need not import the runner).

Besides the lab and the nodes, a scenario may keep evidence here for its judge: ``marks`` (when each
step of a repeated fault was made, on this machine's monotonic clock) and ``notes`` (what it read on
the nodes). The runner copies both into the trial's observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..lab import Lab
from ..params import Params
from ..remote import Host, connect
from ..stages import cibstage
from ..stages.constraints import http_get


def failcount(host: Host, rsc: str, node: str) -> int:
    """``rsc``'s failcount on ``node``, read through ``host`` (INFINITY counts as a million)."""
    r = host.run(f"crm_failcount --query --resource {rsc} --node {node}", check=False, timeout=30)
    return parse_failcount(r.stdout)


def parse_failcount(text: str) -> int:
    # "scope=status  name=fail-count-httpd value=1" (value=0 when none)
    for part in text.split():
        if part.startswith("value="):
            v = part.split("=", 1)[1]
            return 0 if v in ("", "0") else (10**6 if v == "INFINITY" else int(v))
    return 0


DAEMONS_COMMAND = "ps -e -o pid=,comm=; echo restarts=$(systemctl show pacemaker.service -p NRestarts --value)"


def parse_daemons(text: str) -> dict[str, Any]:
    """The output of DAEMONS_COMMAND -> {"pids": {name: pid} of pacemakerd and its subdaemons (names as
    ps shows them, cut at 15 characters), "restarts": systemd's restart counter of pacemaker.service}."""
    pids: dict[str, int] = {}
    restarts = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("restarts="):
            v = line.split("=", 1)[1]
            restarts = int(v) if v.isdigit() else None
            continue
        pid, _, comm = line.partition(" ")
        if pid.isdigit() and comm.strip().startswith("pacemaker"):
            pids[comm.strip()] = int(pid)
    return {"pids": pids, "restarts": restarts}


@dataclass
class TrialContext:
    lab: Lab
    params: Params
    hosts: dict[str, Host]
    active: str
    other: str
    marks: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def crm(self, command: str) -> str:
        return self.hosts[self.other].run(command, timeout=60).stdout

    def _run(self, node: str, command: str) -> str:
        """A read on ``node``, over a new session if the old one died with the node (power cut, fenced)."""
        try:
            return self.hosts[node].run(command, timeout=30).stdout
        except Exception:  # noqa: BLE001 - a stale session: open a new one and try once more
            self.hosts[node].close()
            self.hosts[node] = connect(self.params, self.params.node(node))
            return self.hosts[node].run(command, timeout=30).stdout

    def read(self, node: str, command: str) -> str:
        """Run a read-only ``command`` on ``node`` (a fresh session if the node's old one died); its stdout."""
        return self._run(node, command)

    def cluster_back(self) -> bool:
        """crm_mon through the peer shows every node online and the service started on one node."""
        try:
            st = cibstage.status(self.hosts[self.other], timeout=10)
        except Exception:  # noqa: BLE001 - one failed read: not back yet
            return False
        return (all(st.nodes.get(n.name) is not None and st.nodes[n.name].state == "online" for n in self.params.nodes)
                and st.service_node(self.params.pacemaker.cloned_apache) is not None)

    def daemons(self, node: str, until: Callable[[dict[str, Any]], bool] | None = None,
                timeout_s: float = 30.0) -> dict[str, Any] | None:
        """Pacemaker's processes on ``node`` and systemd's restart count (parse_daemons); with ``until``,
        read again until it holds or ``timeout_s`` passed. None when the node cannot be read."""
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            try:
                last = parse_daemons(self._run(node, DAEMONS_COMMAND))
            except Exception:  # noqa: BLE001 - a node still booting; the judge names a missing reading
                last = None
            if until is None or (last is not None and until(last)) or time.monotonic() > deadline:
                return last
            time.sleep(0.3)

    def recovered(self, rsc: str, failures: int, timeout_s: float = 60.0) -> str | None:
        """Wait until the cluster has counted ``failures`` of ``rsc`` on the active node and runs it again on
        one node (cloned Apache: serves from one node, beside the VIP), not failed; when that is the active node, also until a client is served by it again.
        The node it runs on, or None if that did not happen within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.params.vip.address}/"
        while time.monotonic() < deadline:
            try:
                st = cibstage.status(self.hosts[self.other], timeout=10)
                counted = failcount(self.hosts[self.other], rsc, self.active) >= failures
            except Exception:  # noqa: BLE001 - one failed read: read again
                time.sleep(0.2)
                continue
            if self.params.pacemaker.cloned_apache and rsc == "httpd":  # instances everywhere: where it serves
                svc = st.service_node(True)
                on = [svc] if svc else []
            else:
                on = st.running_on(rsc)
            if counted and len(on) == 1 and not any(r.failed for r in st.instances(rsc)):
                if on[0] != self.active or http_get(url, 0.5).node == self.active:
                    return on[0]
            time.sleep(0.2)
        return None
