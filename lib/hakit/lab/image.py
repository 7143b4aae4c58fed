"""The lab's node image: one Debian release (bookworm or trixie) built once with debootstrap, cached by release and package list.

Two phases, because debootstrap's own resolver cannot pick providers of virtual
packages (python3-cffi-backend-api-*, for one): a minimal debootstrap with
systemd, then a real `apt-get install` inside the new root.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..localcmd import LocalCommandError
from ..packages import lab_packages
from . import repo
from .node import own_cgroup, remove_cgroup_tree

SUITE = "bookworm"
RELEASES = ("bookworm", "trixie")
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus")
# What every lab node carries. Changing this list (or RECIPE) rebuilds the image.
PACKAGES = (
    "openssh-server",
    "corosync",
    "pacemaker",
    "crmsh",
    "resource-agents",
    "apache2",
    "curl",
    "iproute2",
    "iputils-ping",
    "ifupdown",
    "ifenslave",
    "nftables",
    "procps",
    "kmod",
    "less",
    # Fencing: fence_ipmilan and the ipmitool it drives, against the lab's virtual BMCs
    # (or a real site's BMCs). Debian ships every agent in this one package.
    "fence-agents",
    "ipmitool",
    # A quorum device: the daemon on every cluster node, and the qnetd server on the lab's qnetd host.
    "corosync-qdevice",
    "corosync-qnetd",
)
# Debian 13 made `fence-agents` a metapackage of all ~80 fence-agents-* packages (and their
# cloud SDKs: a 2.2 GB image instead of 0.5 GB); the lab needs only fence_ipmilan's package.
RELEASE_PACKAGES: dict[str, tuple[str, ...]] = {
    "bookworm": PACKAGES,
    "trixie": tuple("fence-agents-ipmilan" if p == "fence-agents" else p for p in PACKAGES),
}
# Bump when the customisation steps below change.
RECIPE = 2
# A bare node: what a freshly installed Debian server has (debootstrap's default variant: the
# required and important packages, as the installer's base system) plus the SSH server.
BARE_BASE = BASE_PACKAGES + ("openssh-server",)
FLAVOURS = ("ready", "bare")


def packages_for(release: str) -> tuple[str, ...]:
    """The lab node's package list on one Debian release."""
    try:
        return RELEASE_PACKAGES[release]
    except KeyError:
        raise ValueError(f"no lab image for Debian release {release!r}; use one of {', '.join(RELEASES)}") from None

Progress = Callable[[str], None]


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ImageSpec:
    suite: str = SUITE
    base: tuple[str, ...] = BASE_PACKAGES
    packages: tuple[str, ...] = PACKAGES
    recipe: int = RECIPE
    # ready: the cluster packages installed; bare: none installed, served to the nodes by the
    # lab's package mirror (`lab.repo`), so stage 00 installs them
    flavour: str = "ready"

    @classmethod
    def for_release(cls, release: str, flavour: str = "ready") -> "ImageSpec":
        """The container image of one Debian release (bookworm or trixie), ready or bare."""
        if flavour not in FLAVOURS:
            raise ValueError(f"no lab image flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
        if flavour == "bare":
            return cls(suite=release, base=BARE_BASE, packages=lab_packages(release), flavour="bare")
        return cls(suite=release, packages=packages_for(release))

    @property
    def bare(self) -> bool:
        return self.flavour == "bare"

    @property
    def key(self) -> str:
        fields: dict[str, object] = {"suite": self.suite, "base": self.base, "packages": sorted(self.packages),
                                     "recipe": self.recipe}
        if self.bare:  # ready images keep the keys (and caches) they had before bare ones existed
            fields["flavour"] = self.flavour
        blob = json.dumps(fields, sort_keys=True)
        name = f"{self.suite}-bare" if self.bare else self.suite
        return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian mirror this machine's own apt uses (deb822 or one-line format)."""
    candidates: list[str] = []
    for f in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        candidates += _deb822_uris(f.read_text())
    one_line = sources_dir / "sources.list"
    if one_line.exists():
        for line in one_line.read_text().splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(2):
                candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri
    return candidates[0] if candidates else None


def _deb822_uris(text: str) -> list[str]:
    uris: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, v in (ln.split(":", 1) for ln in stanza.splitlines() if ":" in ln and not ln.startswith("#"))
        )
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        if "main" not in fields.get("components", "").split():
            continue
        suites = fields.get("suites", "").split()
        if any(s.endswith("-security") for s in suites) and not any(s in RELEASES for s in suites):
            continue
        uris += fields.get("uris", "").split()
    return uris


class ImageCache:
    """Builds and finds images under one cache directory."""

    def __init__(self, root: Path, spec: ImageSpec = ImageSpec(), mirror: str | None = None):
        self.root = root
        self.spec = spec
        self.mirror = mirror

    @property
    def rootfs(self) -> Path:
        return self.root / self.spec.key / "rootfs"

    @property
    def repo(self) -> Path | None:
        """The document root of a bare image's package mirror (None for a ready image)."""
        return self.root / self.spec.key / "repo" if self.spec.bare else None

    def is_built(self) -> bool:
        return (self.root / self.spec.key / "READY").exists()

    def ensure(self, progress: Progress = stderr_progress) -> Path:
        """Return the cached image's rootfs, building it first if needed."""
        if self.is_built():
            return self.rootfs
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.is_built():
                return self.rootfs
            self._build(progress)
        return self.rootfs

    def _build(self, progress: Progress) -> None:
        mirror = self.mirror or host_mirror()
        if not mirror:
            raise RuntimeError(
                "no Debian mirror found in /etc/apt; set lab.mirror in the params file to a Debian mirror URL"
            )
        for tool in ("debootstrap", "systemd-nspawn"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed; run `make setup` (apt-get install debootstrap systemd-container)")
        final = self.root / self.spec.key
        work = self.root / f"{self.spec.key}.building"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        log = work / "build.log"
        rootfs = work / "rootfs"
        t0 = time.monotonic()
        progress(f"image {self.spec.key}: building (cached afterwards); log: {final / 'build.log'}")
        variant = [] if self.spec.bare else ["--variant=minbase"]
        _stream(
            ["debootstrap", *variant, f"--include={','.join(self.spec.base)}", self.spec.suite, str(rootfs), mirror],
            log,
            progress,
            "debootstrap",
            t0,
        )
        # Keep services from starting inside the build root while packages install.
        prc = rootfs / "usr/sbin/policy-rc.d"
        prc.write_text("#!/bin/sh\nexit 101\n")
        prc.chmod(0o755)
        pkgs = " ".join(self.spec.packages)
        if self.spec.bare:  # download only (debootstrap's indices), for the mirror; nothing installed
            script = f"set -e; apt-get clean; apt-get install -d -y -q --no-install-recommends {pkgs}"
        else:
            script = (f"set -e; apt-get update -q; apt-get install -y -q --no-install-recommends {pkgs}; "
                      "apt-get clean; rm -rf /var/lib/apt/lists/*")
        _stream(
            _nspawn_run(rootfs, ["sh", "-c", script], setenv={"DEBIAN_FRONTEND": "noninteractive"}, resolv="copy-host"),
            log,
            progress,
            "apt-get download" if self.spec.bare else "apt-get install",
            t0,
        )
        prc.unlink()
        if self.spec.bare:
            arch = subprocess.run(_nspawn_run(rootfs, ["dpkg", "--print-architecture"]), capture_output=True,
                                  text=True, check=True).stdout.strip().splitlines()[-1]
            counts = repo.build(rootfs, work / "repo", self.spec.suite, mirror, arch, log)
            progress(f"  [{time.monotonic() - t0:5.0f}s] package mirror: {counts['debs']} packages, "
                     f"{counts['bytes'] / 1e6:.0f} MB (Debian's signed indices kept)")
        self._customise(rootfs, log, progress, t0)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        (final / "spec.json").write_text(
            json.dumps({"suite": self.spec.suite, "base": self.spec.base, "packages": self.spec.packages,
                        "recipe": self.spec.recipe, "flavour": self.spec.flavour}, indent=1)
        )
        (final / "READY").write_text(f"{time.time():.0f}\n")
        progress(f"image {self.spec.key}: ready in {time.monotonic() - t0:.0f} s")

    def _customise(self, rootfs: Path, log: Path, progress: Progress, t0: float) -> None:
        """Node-independent settings. Per-node identity is written at node creation."""
        # Each node gets its own host keys and machine-id; none may live in the image.
        for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (rootfs / "etc/machine-id").write_text("")
        dbus_id = rootfs / "var/lib/dbus/machine-id"
        if dbus_id.exists() or dbus_id.is_symlink():
            dbus_id.unlink()
        (rootfs / "etc/ssh/sshd_config.d/hakit-lab.conf").write_text(
            "# hakit lab: key-only root login, one pinned host key per node.\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UseDNS no\n"
        )
        # A fresh host has the packages but no cluster: corosync's default config is a
        # single-node cluster on localhost, so leave both off until stage 3 enables them. The quorum
        # device's daemons stay off too: a stage enables qnetd on the qnetd host and qdevice on the nodes.
        if not self.spec.bare:
            _stream(
                _nspawn_run(rootfs, ["systemctl", "disable", "corosync.service", "pacemaker.service",
                                     "corosync-qdevice.service", "corosync-qnetd.service"]),
                log,
                progress,
                "customise",
                t0,
            )
        # corosync-qnetd's postinst made a qnetd CA (its private key) in the image: every qnetd host
        # of every lab would share it. Each makes its own instead (the quorum-device stage runs
        # `corosync-qnetd-certutil -i` where no database exists, as the postinst does).
        shutil.rmtree(rootfs / "etc/corosync/qnetd/nssdb", ignore_errors=True)
        (rootfs / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
        (rootfs / "etc/hakit-lab-image").write_text(f"{self.spec.key}\n")


def _nspawn_run(
    rootfs: Path, argv: list[str], setenv: dict[str, str] | None = None, resolv: str = "off"
) -> list[str]:
    """systemd-nspawn used as a better chroot (no boot): works without systemd as host PID 1."""
    cmd = [
        "systemd-nspawn",
        "--quiet",
        f"--directory={rootfs}",
        "--register=no",
        "--keep-unit",
        f"--resolv-conf={resolv}",
        "--timezone=off",
    ]
    for k, v in (setenv or {}).items():
        cmd.append(f"--setenv={k}={v}")
    return cmd + argv


_PHASES = (
    ("I: Retrieving", "downloading packages"),
    ("I: Extracting", "extracting"),
    ("I: Installing", "installing base"),
    ("I: Configuring", "configuring base"),
    ("Get:", "downloading packages"),
    ("Unpacking", "unpacking"),
    ("Setting up", "configuring"),
)


def _stream(argv: list[str], log: Path, progress: Progress, label: str, t0: float) -> None:
    """Run a long build command, logging everything and reporting phase changes."""
    progress(f"  [{time.monotonic() - t0:5.0f}s] {label} ...")
    with open(log, "a") as lf:
        lf.write(f"\n$ {' '.join(argv)}\n")
        lf.flush()
        cgroups, join = own_cgroup(f"build-{os.getpid()}")
        p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, preexec_fn=join
        )
        assert p.stdout is not None
        phase, count, tail, seen = "", 0, [], set()
        for line in p.stdout:
            lf.write(line)
            tail = (tail + [line.rstrip()])[-12:]
            for prefix, name in _PHASES:
                if line.startswith(prefix):
                    count += 1
                    if name != phase and name not in seen:
                        phase = name
                        seen.add(name)
                        progress(f"  [{time.monotonic() - t0:5.0f}s] {label}: {name}")
                    elif name == phase and count % 100 == 0:
                        progress(f"  [{time.monotonic() - t0:5.0f}s] {label}: {name} ({count} steps)")
                    break
        rc = p.wait()
    for d in cgroups:
        remove_cgroup_tree(d)
    if rc != 0:
        raise LocalCommandError(argv, rc, "\n".join(tail), f"full log: {log}")


def disk_usage(path: Path) -> int:
    """Bytes used under path (for status and benchmarks)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
