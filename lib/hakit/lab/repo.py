"""The bare lab's package mirror: Debian's own signed indices plus only the .deb files a node needs.

A bare lab node is what a freshly installed server is (Debian's base system and
sshd), so stage 00 installs the cluster for real. The nodes never route out:
they get packages from this machine, at ``http://hakit-repo/debian`` (the name
resolves to the lab's private host address in each node's /etc/hosts).

The mirror is made when the bare image is built, from Debian's archive through
this machine's apt source: the release's InRelease file (signed by Debian),
its Packages and Translation-en indices (whose digests InRelease lists), and
the .deb files `apt-get install --download-only` chose for the cluster
packages. Nothing is re-signed: apt on the node checks Debian's signature and
every digest as against any mirror, so a tampered file is refused there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

from . import daemon

HOST = "hakit-repo"  # the mirror's name on the nodes (/etc/hosts -> lab.host_private_ip)
PORT = 80
MODULE = "hakit.lab.repod"
COMPONENT = "main"


def sources_line(suite: str) -> str:
    return f"deb http://{HOST}/debian {suite} {COMPONENT}\n"


def release_digests(release_text: str) -> dict[str, tuple[str, int]]:
    """Pure: the SHA256 section of a Release/InRelease file -> path -> (sha256, size)."""
    out: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_sha = line.strip() == "SHA256:"
            continue
        if in_sha:
            parts = line.split()
            if len(parts) == 3:
                out[parts[2]] = (parts[0], int(parts[1]))
    return out


def packages_filenames(packages_text: str) -> dict[tuple[str, str, str], str]:
    """Pure: a Packages index -> (package, version, arch) -> its pool path (``Filename:``)."""
    out: dict[tuple[str, str, str], str] = {}
    for stanza in packages_text.split("\n\n"):
        f = dict(re.findall(r"^(Package|Version|Architecture|Filename): (.+)$", stanza, re.M))
        if len(f) == 4:
            out[(f["Package"], f["Version"], f["Architecture"])] = f["Filename"]
    return out


def deb_key(filename: str) -> tuple[str, str, str]:
    """apt's cache name ``name_1%3a2.0-1_amd64.deb`` -> (name, version, arch)."""
    name, version, arch = filename[: -len(".deb")].split("_")
    return name, unquote(version), arch


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _place(src: Path, dist: Path, rel: str, digest: str) -> None:
    """An index under its name and under by-hash (apt asks for that when Acquire-By-Hash is set)."""
    dst = dist / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    by_hash = dst.parent / "by-hash" / "SHA256" / digest
    by_hash.parent.mkdir(parents=True, exist_ok=True)
    os.link(dst, by_hash)  # one file, two names


def build(rootfs: Path, repo: Path, suite: str, mirror: str, arch: str, log: Path) -> dict[str, int]:
    """Fill ``repo`` (the mirror's document root) from a bare rootfs whose apt just downloaded the
    cluster packages into /var/cache/apt/archives; then point the rootfs's apt at the mirror.
    Returns counts for the build log."""
    lists = rootfs / "var/lib/apt/lists"
    inrelease = next(lists.glob(f"*_dists_{suite}_InRelease"), None)
    if inrelease is None:
        raise RuntimeError(f"no InRelease for {suite} in {lists}: apt-get update did not run in the image")
    prefix = inrelease.name[: -len(f"dists_{suite}_InRelease")]
    dist = repo / "debian" / "dists" / suite
    dist.mkdir(parents=True, exist_ok=True)
    for name in ("InRelease", "Release", "Release.gpg"):
        f = lists / f"{prefix}dists_{suite}_{name}"
        if f.exists():
            shutil.copyfile(f, dist / name)
    digests = release_digests(inrelease.read_text(errors="replace"))
    packages_rel = f"{COMPONENT}/binary-{arch}/Packages"
    local_packages = lists / f"{prefix}dists_{suite}_{COMPONENT}_binary-{arch}_Packages"
    want = digests.get(packages_rel)
    if want is None or _sha256(local_packages) != want[0]:
        raise RuntimeError(f"{local_packages} does not match the digest InRelease gives for {packages_rel}")
    _place(local_packages, dist, packages_rel, want[0])
    # The compressed indices apt prefers, fetched once and checked against the signed InRelease.
    for rel in (f"{packages_rel}.xz", f"{COMPONENT}/i18n/Translation-en.xz"):
        if rel not in digests:
            continue
        tmp = repo / ".download"
        with open(log, "a") as lf:
            subprocess.run(["curl", "-fsS", "--retry", "3", "-o", str(tmp), f"{mirror.rstrip('/')}/dists/{suite}/{rel}"],
                           check=True, stdout=lf, stderr=lf)
        if _sha256(tmp) != digests[rel][0]:
            raise RuntimeError(f"{rel} from {mirror} does not match its digest in {suite}'s InRelease")
        _place(tmp, dist, rel, digests[rel][0])
        tmp.unlink()
    pool = packages_filenames(local_packages.read_text(errors="replace"))
    placed = 0
    for deb in sorted((rootfs / "var/cache/apt/archives").glob("*.deb")):
        rel = pool.get(deb_key(deb.name))
        if rel is None:
            raise RuntimeError(f"{deb.name} is not in {suite}'s Packages index")
        dst = repo / "debian" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(deb), dst)
        placed += 1
    # The node's apt: the mirror only, with the indices it already has (as a freshly installed server).
    (rootfs / "etc/apt/sources.list").write_text(sources_line(suite))
    for f in lists.glob(f"{prefix}*"):
        f.rename(lists / (f"{HOST}_debian_" + f.name[len(prefix):]))
    return {"debs": placed, "bytes": sum(p.stat().st_size for p in (repo / "debian").rglob("*.deb"))}


# ----------------------------------------------------------------- the server


def _argv(lab_dir: Path, root: Path, address: str) -> list[str]:
    return daemon.argv(MODULE, lab_dir, f"--root={root}", f"--address={address}", f"--port={PORT}")


def is_ours(pid: int | None, lab_dir: Path) -> bool:
    return daemon.is_ours(pid, MODULE, lab_dir)


def start(lab_dir: Path, root: Path, address: str) -> int:
    """Serve ``root`` on address:80 (the lab's private host address); the server's PID."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    return daemon.start(_argv(lab_dir, root, address), lab_dir / "repo.log", f"package mirror on {address}:{PORT}",
                        lambda pid: stop(pid, lab_dir))


def stop(pid: int | None, lab_dir: Path) -> bool:
    return daemon.stop(pid, is_ours(pid, lab_dir))


def find(lab_dir: Path) -> list[int]:
    return sorted(daemon.find(MODULE, lab_dir))
