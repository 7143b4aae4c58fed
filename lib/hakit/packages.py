"""The cluster's Debian packages per release, and pure parsers of what apt and dpkg print.

One list serves stage 00 (what it installs on a node) and the lab (what its bare
image's package mirror carries), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Debian releases the runbooks support: VERSION_ID -> codename (from /etc/os-release).
SUPPORTED = {"12": "bookworm", "13": "trixie"}
CODENAMES = {v: k for k, v in SUPPORTED.items()}

# What every node needs, whatever its release. `curl`: the apache agent's status check needs an
# HTTP client (curl or wget) and neither is in a base install; `ifenslave`: bonds in
# /etc/network/interfaces (stage 1).
COMMON = ("corosync", "pacemaker", "crmsh", "resource-agents", "apache2", "ifenslave", "curl")

# Every fence agent the params accept is fence_ipmilan or one of its aliases. Debian 12 ships all
# agents in one package; Debian 13 splits them, and fence-agents became a metapackage of ~80.
_FENCE_PACKAGE = {"bookworm": "fence-agents", "trixie": "fence-agents-ipmilan"}

# Units that must not start when their package is installed: corosync's packaged corosync.conf
# is a one-node cluster `debian` (node1 on 127.0.0.1, no crypto), and pacemaker would run on it.
HELD_UNITS = {"corosync": "corosync.service", "pacemaker": "pacemaker.service",
              # enabled on install, it would start before its certificates exist (stage 03q starts it)
              "corosync-qdevice": "corosync-qdevice.service"}

# A quorum device (params quorum_device): the daemon every node runs, and the server its host runs.
QDEVICE_PACKAGE = "corosync-qdevice"
QNETD_PACKAGE = "corosync-qnetd"


def cluster_packages(release: str, fence_agent: str | None, qdevice: bool = False) -> tuple[str, ...]:
    """The packages a node of this release needs (the fence agent's package only when fencing,
    corosync-qdevice only with a quorum device)."""
    if release not in _FENCE_PACKAGE:
        raise ValueError(f"Debian release {release!r} is not supported; use one of {', '.join(_FENCE_PACKAGE)}")
    return COMMON + ((_FENCE_PACKAGE[release],) if fence_agent else ()) + ((QDEVICE_PACKAGE,) if qdevice else ())


def lab_packages(release: str) -> tuple[str, ...]:
    """Everything a lab node may be asked to install (the lab's BMCs speak IPMI: fence_ipmilan), and
    corosync-qnetd for the lab's quorum-device host."""
    return cluster_packages(release, "fence_ipmilan", qdevice=True) + (QNETD_PACKAGE,)


@dataclass(frozen=True)
class Installed:
    """One package as dpkg knows it."""

    name: str
    version: str
    status: str  # dpkg's abbreviated status, e.g. "ii " (installed) or "rc " (config files only)

    @property
    def ok(self) -> bool:
        return self.status.startswith("ii")


def parse_dpkg_query(text: str) -> dict[str, Installed]:
    """Lines of `dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'` -> name -> Installed."""
    out: dict[str, Installed] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)  # single spaces: a package dpkg only knows of has an empty version
        if len(parts) == 3 and parts[0]:
            out[parts[0]] = Installed(parts[0], parts[1], parts[2])
    return out


@dataclass(frozen=True)
class AptStep:
    """One package apt would install or upgrade, from `apt-get -s install`."""

    name: str
    version: str
    old: str | None  # the version it replaces, or None for a new package
    origin: str


_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*?)\)")


@dataclass(frozen=True)
class AptPlan:
    """What `apt-get -s install ...` says it would do: its steps, or the error it stopped with."""

    steps: tuple[AptStep, ...]
    error: str | None = None  # apt's own E: lines (a missing package, a held one, a broken dependency)

    @property
    def new(self) -> list[AptStep]:
        return [s for s in self.steps if s.old is None]


def parse_apt_simulation(text: str, exit_code: int) -> AptPlan:
    """`apt-get -s install` output and exit status -> AptPlan (pure)."""
    steps = []
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            steps.append(AptStep(m.group(1), m.group(3), m.group(2), m.group(4).split(" [")[0]))
    errors = [ln[3:].strip() for ln in text.splitlines() if ln.startswith("E: ")]
    if exit_code != 0 and not errors:
        errors = [f"apt-get -s exited with {exit_code}"]
    return AptPlan(tuple(steps), "; ".join(errors) or None)
