"""Background observers during a failover trial, all on this machine's clock.

- ``HttpProbe``: GETs the VIP on a fixed schedule (default 25 per second), each
  on a new connection with a short timeout, from the client side.
- ``ArpWatch``: asks "who has the VIP?" on the public network a few times per
  second and records every MAC that answers. Two MACs at once means two nodes
  hold the VIP: a split brain, seen the way a router would see it.
- ``ClusterWatch``: reads ``crm_mon`` through a node that stays up, a few times
  per second, to time when the cluster noticed and when it recovered.

Each is a context manager that runs a thread (or a few) and stops on exit.
"""

from __future__ import annotations

import math
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass

from ..facts.errors import FactParseError
from ..facts.pacemaker import ClusterStatus
from ..remote import Host, RemoteError
from ..stages import cibstage
from ..stages.constraints import http_get
from .timeline import ProbeSample


PROBE_TIMEOUT_S = 0.3  # how long a probe waits for the page before it counts the service as not answering
# Lab VM nodes run under TCG. Probed for 60 s with no fault, the all-VM lab's Apache answered in 6-7 ms (p50),
# 37-47 ms (p99), but the slowest answers took 239-285 ms: the edge of 0.3 s. Around a bond switch some answers
# passed it (every failure a timeout, none refused, one switch in the guest kernel's log), and slave-loss failed
# on gaps a client with a longer deadline would not have seen. Where a lab has VM nodes, a probe waits this long.
PROBE_TIMEOUT_VM_S = 1.0


class HttpProbe:
    """GET http://<vip>/ every ``interval`` s from here; enough workers that requests waiting out their
    ``timeout`` never delay the next one."""

    def __init__(self, address: str, interval: float = 0.04, timeout: float = PROBE_TIMEOUT_S, workers: int = 10,
                 clock=time.monotonic) -> None:
        self.address = address
        self.url = f"http://{address}/"
        self.interval = interval
        self.timeout = timeout
        workers = max(workers, math.ceil(timeout / interval) + 2)  # every worker may be waiting out a timeout
        self.clock = clock
        self.samples: list[ProbeSample] = []
        self._lock = threading.Lock()
        self._ticks: queue.Queue[float | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self._sched = threading.Thread(target=self._schedule, daemon=True)

    def _schedule(self) -> None:
        nxt = self.clock()
        while not self._stop.is_set():
            self._ticks.put(nxt)
            nxt += self.interval
            delay = nxt - self.clock()
            if delay > 0:
                self._stop.wait(delay)
            else:  # fell behind (a busy machine): skip ahead rather than burst
                nxt = self.clock()

    def _work(self) -> None:
        while True:
            tick = self._ticks.get()
            if tick is None:
                return
            self._one(tick)

    def _one(self, t: float) -> None:
        a = http_get(self.url, self.timeout)  # a new connection each time: a failover is seen at once
        if a.status is None:
            s = ProbeSample(t, False, None, None, a.error)
        else:
            s = ProbeSample(t, a.status == 200 and a.node is not None, a.node, self.clock() - t,
                            "" if a.status == 200 else f"HTTP {a.status}")
        with self._lock:
            self.samples.append(s)

    def snapshot(self) -> list[ProbeSample]:
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)

    def __enter__(self) -> "HttpProbe":
        for th in self._threads:
            th.start()
        self._sched.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sched.join()
        for _ in self._threads:
            self._ticks.put(None)
        for th in self._threads:
            th.join(timeout=5)


@dataclass(frozen=True)
class ArpSample:
    t: float
    macs: frozenset[str]


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def local_interface_for(address: str) -> tuple[str, str, str]:
    """(interface, its IPv4 address, its MAC) of this machine's link on the subnet of ``address``."""
    import ipaddress
    import json
    import subprocess

    target = ipaddress.ip_address(address)
    out = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout)
    for link in out:
        for a in link.get("addr_info", []):
            net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            if target in net:
                mac = open(f"/sys/class/net/{link['ifname']}/address").read().strip()
                return link["ifname"], a["local"], mac
    raise RuntimeError(f"this machine has no address on the subnet of {address}; the ARP watch needs one")


class ArpWatch:
    """Who answers ARP for the VIP, every ``interval`` s (raw socket on the local public interface; needs root)."""

    ETH_P_ARP = 0x0806

    def __init__(self, vip: str, interval: float = 0.2, listen: float = 0.15, clock=time.monotonic) -> None:
        self.vip = vip
        self.interval = interval
        self.listen = listen
        self.clock = clock
        self.iface, self.src_ip, self.src_mac = local_interface_for(vip)
        self.samples: list[ArpSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sock: socket.socket | None = None

    def _request(self) -> bytes:
        eth = b"\xff" * 6 + _mac_bytes(self.src_mac) + struct.pack("!H", self.ETH_P_ARP)
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + _mac_bytes(self.src_mac) + socket.inet_aton(self.src_ip)
        arp += b"\x00" * 6 + socket.inet_aton(self.vip)
        return eth + arp

    def _run(self) -> None:
        assert self._sock is not None
        want = socket.inet_aton(self.vip)
        while not self._stop.is_set():
            t = self.clock()
            self._sock.send(self._request())
            macs: set[str] = set()
            deadline = t + self.listen
            while (left := deadline - self.clock()) > 0:
                self._sock.settimeout(left)
                try:
                    frame = self._sock.recv(128)
                except (socket.timeout, BlockingIOError):
                    break
                if len(frame) >= 42 and frame[20:22] == b"\x00\x02" and frame[28:32] == want:
                    macs.add(_mac_str(frame[22:28]))
            self.samples.append(ArpSample(t, frozenset(macs)))
            self._stop.wait(max(0.0, self.interval - (self.clock() - t)))

    def __enter__(self) -> "ArpWatch":
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(self.ETH_P_ARP))
        self._sock.bind((self.iface, 0))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()


@dataclass(frozen=True)
class ClusterSample:
    t: float
    status: ClusterStatus | None  # None: this reading failed
    via: str


def watch_pause(took: float, interval: float, answered: bool = True) -> float:
    """How long ClusterWatch waits after a read that took ``took`` s: until ``interval`` after its start, and
    never less than an answered read took, so the watch keeps its node busy at most half the time. A container
    answers crm_mon in tens of ms (every ``interval`` s as asked); a TCG VM, where a read takes most of a
    second and its vCPU shares this machine's cores with the node under test, is read half as often. A failed
    read (a timeout, a dropped session) is no measure of the node's speed: the next comes after ``interval``."""
    return max(interval - took, took if answered else 0.0, 0.0)


class ClusterWatch:
    """crm_mon through ``host`` every ``interval`` s (a node expected to stay up during the trial), or less
    often where a read is slow (``watch_pause``)."""

    def __init__(self, host: Host, interval: float = 0.25, clock=time.monotonic) -> None:
        self.host = host
        self.interval = interval
        self.clock = clock
        self.samples: list[ClusterSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = self.clock()
            try:
                st: ClusterStatus | None = cibstage.status(self.host, timeout=10)
            except (RemoteError, FactParseError):
                st = None
            self.samples.append(ClusterSample(t, st, self.host.name))
            self._stop.wait(watch_pause(self.clock() - t, self.interval, answered=st is not None))

    def __enter__(self) -> "ClusterWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
