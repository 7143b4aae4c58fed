"""The bare lab's package mirror: reading Debian's Release and Packages indices (pure parts)."""

from __future__ import annotations

from hakit.lab import repo

RELEASE = """Origin: Debian
Suite: stable
Codename: trixie
Acquire-By-Hash: yes
MD5Sum:
 a017b6b8e684c3de8f40515cf66b7e99 34891003 main/i18n/Translation-en
SHA256:
 2efd6103f013081f8118f4c9f228739bc97bff2e4e1de496f80458c7e72a24ac 56634892 main/binary-amd64/Packages
 be3d7d96a040eda0505c1808cccc67f183bbc05dff0842c50f88e6c396557412  9679304 main/binary-amd64/Packages.xz
"""

PACKAGES = """Package: corosync
Version: 3.1.9-2
Architecture: amd64
Filename: pool/main/c/corosync/corosync_3.1.9-2_amd64.deb
Size: 1

Package: perl
Source: perl
Version: 5.40.1-6
Architecture: amd64
Filename: pool/main/p/perl/perl_5.40.1-6_amd64.deb

Package: libcfg7
Version: 3.1.9-2
Architecture: amd64
"""


def test_release_digests_reads_only_the_sha256_section() -> None:
    d = repo.release_digests(RELEASE)
    assert d == {
        "main/binary-amd64/Packages": ("2efd6103f013081f8118f4c9f228739bc97bff2e4e1de496f80458c7e72a24ac", 56634892),
        "main/binary-amd64/Packages.xz": ("be3d7d96a040eda0505c1808cccc67f183bbc05dff0842c50f88e6c396557412", 9679304),
    }


def test_pool_paths_by_package_version_and_arch() -> None:
    pool = repo.packages_filenames(PACKAGES)
    assert pool[("corosync", "3.1.9-2", "amd64")] == "pool/main/c/corosync/corosync_3.1.9-2_amd64.deb"
    assert pool[("perl", "5.40.1-6", "amd64")] == "pool/main/p/perl/perl_5.40.1-6_amd64.deb"
    assert ("libcfg7", "3.1.9-2", "amd64") not in pool  # no Filename: not placeable


def test_apt_cache_names_decode_the_epoch() -> None:
    assert repo.deb_key("iputils-ping_3%3a20240905-3_amd64.deb") == ("iputils-ping", "3:20240905-3", "amd64")
    assert repo.deb_key("crmsh_5.0.0-1_all.deb") == ("crmsh", "5.0.0-1", "all")


def test_nodes_use_the_mirror_by_name() -> None:
    assert repo.sources_line("trixie") == "deb http://hakit-repo/debian trixie main\n"
