"""The VM node image: the container image's recipe plus a kernel, as an ext4 disk for qemu.

Built by the same code as the container image (debootstrap, then `apt-get
install` inside the root), with its own package list and recipe number, so it
has its own cache key (`<release>-vm-<hash>`: bookworm or trixie) and never changes the container
image. After the shared customisation it adds what a booting VM needs (fstab,
a small initramfs, the unit that takes the node's identity from QEMU fw_cfg),
copies the kernel and initrd out, and packs the root into a sparse ext4 file
with `mke2fs -d` (no loop mounts). Nodes boot from a qcow2 overlay of it.
"""

from __future__ import annotations

import json
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..localcmd import run
from .image import PACKAGES, ImageCache, ImageSpec, Progress, _nspawn_run, _stream, disk_usage, packages_for

# On top of the container image's packages: a kernel that has the bonding driver.
VM_EXTRA_PACKAGES = ("linux-image-amd64", "initramfs-tools", "ifenslave")
# Bump when the VM-only steps below (or the guest unit) change.
VM_RECIPE = 1

GUEST_SCRIPT = "/usr/local/sbin/hakit-lab-node"
GUEST_UNIT = "hakit-lab-node.service"
FW_CFG_NAME = "opt/hakit/identity"  # the per-node tar the guest unit unpacks at every boot
NET_FILE = "etc/hakit-lab/net"  # inside that tar: the node's first addresses

# Runs early at every boot: unpack identity (hostname, hosts, host key, authorized key, first
# addresses) handed over by the lab through fw_cfg, then give addresses only to NICs that
# ifupdown does not own, so once stage 1 installs bonds the lab stays out of their way.
_GUEST_SCRIPT_TEXT = f"""#!/bin/sh
# hakit lab (VM node): this node's identity and first addresses, from QEMU fw_cfg.
set -u
FW=/sys/firmware/qemu_fw_cfg/by_name/{FW_CFG_NAME}/raw
modprobe qemu_fw_cfg 2>/dev/null || true
i=0
while [ ! -r "$FW" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ -r "$FW" ]; then
    tar -x --numeric-owner -C / -f "$FW" && hostname -F /etc/hostname
else
    echo "hakit-lab-node: no fw_cfg entry {FW_CFG_NAME}; identity unchanged" >&2
fi
[ -r /{NET_FILE} ] || exit 0
while read -r what dev arg; do
    i=0
    while [ ! -e "/sys/class/net/$dev" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    if ifquery "$dev" >/dev/null 2>&1; then
        echo "hakit-lab-node: $dev is configured by ifupdown; left to it"
        continue
    fi
    case "$what" in
        up) ip link set "$dev" up ;;
        addr) ip link set "$dev" up && ip addr replace "$arg" dev "$dev" ;;
        route) ip route replace default via "$arg" dev "$dev" ;;
    esac
done < /{NET_FILE}
exit 0
"""

_GUEST_UNIT_TEXT = f"""[Unit]
Description=hakit lab: this VM node's identity and first addresses (QEMU fw_cfg)
DefaultDependencies=no
After=local-fs.target systemd-udev-trigger.service
Wants=network-pre.target
Before=network-pre.target networking.service ssh.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={GUEST_SCRIPT}

[Install]
WantedBy=sysinit.target
"""


@dataclass(frozen=True)
class VmImageSpec(ImageSpec):
    """The container image's spec with the VM's extra packages and its own recipe and key."""

    packages: tuple[str, ...] = PACKAGES + VM_EXTRA_PACKAGES
    vm_recipe: int = VM_RECIPE

    @property
    def key(self) -> str:
        blob = json.dumps(
            {
                "suite": self.suite,
                "base": self.base,
                "packages": sorted(set(self.packages)),
                "recipe": self.recipe,
                "vm_recipe": self.vm_recipe,
            },
            sort_keys=True,
        )
        return f"{self.suite}-vm-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class VmImage:
    """The built artefacts qemu boots: a read-only base disk, a kernel and an initrd."""

    disk: Path
    kernel: Path
    initrd: Path


class VmImageCache(ImageCache):
    """Builds and finds the VM image in the same cache directory as the container image."""

    def __init__(self, root: Path, mirror: str | None = None, suite: str = VmImageSpec.suite):
        super().__init__(root, VmImageSpec(suite=suite, packages=packages_for(suite) + VM_EXTRA_PACKAGES), mirror)

    @property
    def artefacts(self) -> VmImage:
        d = self.root / self.spec.key
        return VmImage(disk=d / "disk.ext4", kernel=d / "vmlinuz", initrd=d / "initrd.img")

    def ensure_vm(self, progress: Progress) -> VmImage:
        """Return the cached VM image, building it first if needed."""
        for tool in ("mke2fs", "qemu-system-x86_64", "qemu-img"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed; run `make setup VM=1` (apt-get install --no-install-recommends qemu-system-x86 qemu-utils e2fsprogs)")
        self.ensure(progress)
        return self.artefacts

    def _customise(self, rootfs: Path, log: Path, progress: Progress, t0: float) -> None:
        super()._customise(rootfs, log, progress, t0)
        (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
        # A small initramfs (virtio disk and ext4 only) boots much faster under TCG than MODULES=most.
        (rootfs / "etc/initramfs-tools/conf.d/hakit-vm").write_text("MODULES=list\n")
        with open(rootfs / "etc/initramfs-tools/modules", "a") as f:
            f.write("virtio_pci\nvirtio_blk\next4\n")
        script = rootfs / GUEST_SCRIPT.lstrip("/")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(_GUEST_SCRIPT_TEXT)
        script.chmod(0o755)
        (rootfs / "etc/systemd/system" / GUEST_UNIT).write_text(_GUEST_UNIT_TEXT)
        # No console logins: the lab reaches VMs over SSH only, like the containers.
        _stream(
            _nspawn_run(
                rootfs,
                [
                    "sh",
                    "-c",
                    f"set -e; systemctl enable {GUEST_UNIT}; systemctl mask getty@tty1.service "
                    "serial-getty@ttyS0.service; update-initramfs -u -k all",
                ],
            ),
            log,
            progress,
            "customise (vm)",
            t0,
        )
        work = rootfs.parent
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise RuntimeError(f"the VM image has no kernel or initrd in {rootfs / 'boot'}; see {log}")
        shutil.copy2(kernels[-1], work / "vmlinuz")
        shutil.copy2(initrds[-1], work / "initrd.img")
        size_mib = disk_usage(rootfs) // 2**20 * 13 // 10 + 512  # room for logs, state and later stages
        progress(f"  [packing] ext4 disk of {size_mib} MiB (sparse) from the root tree")
        run(
            ["mke2fs", "-q", "-t", "ext4", "-L", "hakit-root", "-d", str(rootfs), str(work / "disk.ext4"), f"{size_mib}M"],
            timeout=600,
        )
        (work / "disk.ext4").chmod(0o444)
        shutil.rmtree(rootfs)  # the disk holds it; the tree is not used by VM nodes
