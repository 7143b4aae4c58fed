"""The local lab: real Debian nodes in systemd-nspawn containers on host bridges.

`Lab(params).up()` builds (or reuses) the image, lays the networks, boots every
node and waits until each answers SSH with a pinned host key. Every object the
lab creates is recorded in a state file as it is created, so `down()` can
remove exactly those objects, also after a crash or a half-finished `up()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from ..localcmd import run
from ..params import Params
from . import net, node, vm
from . import bmc as labbmc
from . import inventory, repo
from .image import ImageCache, ImageSpec, Progress, stderr_progress
from .vmimage import VmImageCache
from ..errors import HakitError


class LabError(HakitError, RuntimeError):
    """The lab cannot do what was asked; the message says what to do next."""


@dataclass
class NodeStatus:
    name: str
    state: str  # running | off
    machine: str
    private_ip: str
    public_ip: str
    ssh_address: str
    leader_pid: int | None
    nspawn_pid: int | None
    interfaces: list[str]
    system_state: str | None = None
    failed_units: list[str] = field(default_factory=list)
    memory_mib: float | None = None  # PSS: containers all their processes, VMs the qemu process
    kind: str = "container"
    memory_rss_mib: float | None = None  # VMs only: the qemu process's resident set


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class Lab:
    def __init__(self, params: Params, progress: Progress = stderr_progress):
        if params.lab is None:
            raise LabError("these params have no `lab:` section; they describe real hosts, not the local lab")
        self.params = params
        self.cfg = params.lab
        self.progress = progress
        self.dir = self.cfg.dir
        self.state_file = self.dir / "state.json"
        self.key_file = self.cfg.key_file
        self.known_hosts = self.cfg.known_hosts
        self.image = ImageCache(self.cfg.image_cache, ImageSpec.for_release(self.cfg.release, self.cfg.image),
                                mirror=self.cfg.mirror)
        self.vm_image = VmImageCache(self.cfg.image_cache, mirror=self.cfg.mirror, suite=self.cfg.release)
        # What this kernel can do is reported (`lab status`), and checked where the params ask for
        # slaves; the layout is what the params say, the same on every kernel.
        self.bonding, self.bonding_reason = net.bonding_available()
        self.net = net.plan_network(params, self.cfg.links)

    # ------------------------------------------------------------- state

    def _state(self) -> dict[str, Any]:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {}

    @contextlib.contextmanager
    def _lock(self, what: str) -> Iterator[None]:
        """An exclusive lock on one of the lab's files. The state file and a node's power are
        changed by more than one process: this one and the virtual BMCs (fencing)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{what}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _record(self, **updates: Any) -> None:
        with self._lock("state"):
            st = self._state()
            for k, v in updates.items():
                if isinstance(v, dict) and isinstance(st.get(k), dict):
                    st[k].update(v)
                elif isinstance(v, list) and isinstance(st.get(k), list):
                    st[k] = sorted(set(st[k]) | set(v))
                else:
                    st[k] = v
            _write_json(self.state_file, st)

    def _record_node(self, name: str, **fields: Any) -> None:
        with self._lock("state"):
            st = self._state()
            nodes = st.setdefault("nodes", {})
            nodes.setdefault(name, {}).update(fields)
            _write_json(self.state_file, st)

    def machine(self, name: str) -> str:
        return f"{self.cfg.id}-{name}"

    def paths(self, name: str) -> node.NodePaths:
        return node.NodePaths(self.dir / "nodes" / name)

    def vm_paths(self, name: str) -> vm.VmPaths:
        return vm.VmPaths(self.dir / "nodes" / name)

    def is_vm(self, name: str) -> bool:
        return self.cfg.kind(name) == "vm"

    @property
    def qnetd(self) -> str | None:
        """The lab's quorum-device host (a container running corosync-qnetd), when the params have one."""
        qd = self.params.quorum_device
        return qd.host if qd is not None else None

    @property
    def machines(self) -> list[str]:
        """Every host the lab runs: the cluster nodes, then the qnetd host (if any)."""
        return [n.name for n in self.params.nodes] + ([self.qnetd] if self.qnetd else [])

    def _known(self, name: str) -> None:
        """A cluster node or the qnetd host; anything else raises a KeyError naming both."""
        if name != self.qnetd:
            try:
                self.params.node(name)
            except KeyError:
                extra = f"; the qnetd host is {self.qnetd}" if self.qnetd else ""
                raise KeyError(f"no node named {name!r}; nodes are: "
                               f"{', '.join(n.name for n in self.params.nodes)}{extra}") from None

    def address(self, name: str) -> str:
        """Where SSH reaches a lab host (a node's ssh address, the qnetd host's own address)."""
        if name == self.qnetd:
            assert self.params.quorum_device is not None
            return self.params.quorum_device.address
        return str(self.params.ssh_address(self.params.node(name)))

    @property
    def vm_nodes(self) -> list[str]:
        return [n.name for n in self.params.nodes if self.is_vm(n.name)]

    # ------------------------------------------------------------- up

    def preflight(self) -> None:
        """Refuse to start where the lab cannot run or would collide with this machine's networks."""
        if self.cfg.links == "slaves" and not self.bonding and len(self.vm_nodes) < len(self.params.nodes):
            raise LabError(
                f"lab.links: slaves gives container nodes four NICs to bond, but they share this machine's "
                f"kernel and {self.bonding_reason}; use lab.links: bond-names (the default) or make the nodes "
                "VMs (lab.kinds: <node>: vm), which have their own kernel")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, bridges, mounts, containers)")
        tools = ["systemd-nspawn", "debootstrap", "ip", "nft", "ssh", "ssh-keygen"]
        if self.vm_nodes:
            tools += [vm.QEMU, "qemu-img", "mke2fs"]
            if self.image.spec.bare:
                raise LabError(f"lab.image: bare is for container nodes; {', '.join(self.vm_nodes)} "
                               "run as VMs (lab.kinds): use lab.image: ready with VM nodes")
        if self.image.spec.bare:
            tools.append("curl")  # fetches the compressed indices for the package mirror
        missing = [t for t in tools if not shutil.which(t)]
        if missing:
            vm_hint = " (with PARAMS=<this params file> or VM=1: qemu comes only for VM labs)" if self.vm_nodes else ""
            raise LabError(f"missing tools: {', '.join(missing)}; run `make setup`{vm_hint} to install them")
        own = set(self.net.bridges.values())
        subnets = [self.params.networks.private.subnet, self.params.networks.public.subnet]
        bad = net.conflicting_routes(subnets, own)
        if bad:
            raise LabError(
                "the lab's subnets overlap networks this machine already uses: "
                + "; ".join(bad)
                + ". Pick other subnets in the params file (networks.*.subnet and every address in them)."
            )

    def up(self) -> list[NodeStatus]:
        """Bring the lab up; a second call on a running lab changes nothing and says so."""
        self.preflight()
        running_image = self._state().get("image")
        if running_image and running_image != self.image.spec.key and any(
                self._node_running(n.name) for n in self.params.nodes):
            raise LabError(
                f"lab {self.cfg.id} runs image {running_image}, but the params ask for {self.image.spec.key} "
                f"(lab.release {self.cfg.release}); take it down first (`python -m hakit lab down --params ...`), "
                "then bring it up again: its nodes start fresh")
        if all(self._node_running(n) for n in self.machines) and self._state().get("ready"):
            restarted = [f"virtual BMC of {n}" for n in self._ensure_bmcs()] + self._ensure_repo()
            if restarted:
                self.progress(f"lab {self.cfg.id}: up; started again: {', '.join(restarted)}")
            else:
                self.progress(f"lab {self.cfg.id}: already up, nothing changed")
            return self.status(probe=False)
        t0 = time.monotonic()
        rootfs = self.image.ensure(self.progress)
        vm_image = self.vm_image.ensure_vm(self.progress) if self.vm_nodes else None
        self._record(lab_id=self.cfg.id, cluster=self.params.cluster.name, image=self.image.spec.key, ready=False)
        self._ensure_key()
        self._ensure_network()
        self._ensure_repo()
        hosts = [(str(n.private_ip), n.name) for n in self.params.nodes]
        if self.qnetd:
            hosts.append((self.address(self.qnetd), self.qnetd))
        if self.image.spec.bare:
            hosts.append((str(self.cfg.host_private_ip), repo.HOST))
        pub = self.key_file.with_suffix(".pub").read_text()
        known: list[str] = []
        for n in self.params.nodes:
            p = self.paths(n.name)
            nn = self.net.node(n.name)
            self._record_node(n.name, machine=self.machine(n.name), base=str(p.base), netns=nn.netns, kind=nn.kind)
            if vm_image is not None and self.is_vm(n.name):
                vp = self.vm_paths(n.name)
                vm.make_disk(vm_image, vp)
                hostkey = vm.write_identity(vp, n.name, hosts, pub, vm.guest_net_lines(nn.links, nn.gateway))
            else:
                node.mount_overlay(rootfs, p)
                hostkey = node.personalise(p, n.name, hosts, pub)
            names = ",".join([n.name, str(n.public_ip), str(n.private_ip)])
            known.append(f"{names} {hostkey}")
        if self.qnetd:  # the quorum-device host: a container from the same image, corosync-qnetd installed
            p, nn = self.paths(self.qnetd), self.net.node(self.qnetd)
            self._record_node(self.qnetd, machine=self.machine(self.qnetd), base=str(p.base), netns=nn.netns,
                              kind="qnetd")
            node.mount_overlay(rootfs, p)
            hostkey = node.personalise(p, self.qnetd, hosts, pub)
            known.append(f"{self.qnetd},{self.address(self.qnetd)} {hostkey}")
        self.known_hosts.write_text("\n".join(known) + "\n")
        started = []
        for name in self.machines:
            if not self._node_running(name):
                self._boot(name)
                started.append(name)
        self.progress(f"lab {self.cfg.id}: booting {', '.join(started) or 'nothing'}; waiting for SSH ...")
        with ThreadPoolExecutor(max_workers=len(self.machines) + 1) as ex:
            bmcs = ex.submit(self._ensure_bmcs)  # the virtual BMCs start while the nodes boot
            list(ex.map(self._wait_ready, self.machines))
            bmcs.result()
        self._record(ready=True)
        inv = inventory.write(self.params)  # what the runbooks read, as from any site (no secret in it)
        self.progress(f"lab {self.cfg.id}: up in {time.monotonic() - t0:.1f} s; inventory {inv}")
        return self.status()

    def _ensure_key(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.key_file.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hakit-lab-{self.cfg.id}", "-f", str(self.key_file)])

    def _ensure_network(self) -> None:
        L = self.net
        self._record(bridges=list(L.bridges.values()), nft_table=L.nft_table, gw_netns=L.gw_netns)
        for br in L.bridges.values():
            net.ensure_bridge(br, L.host_addresses[br])
        net.ensure_nft_guard(L.nft_table, list(L.bridges.values()))
        self._record(netns=[L.gw_netns], host_links=[L.gw_host_end])
        net.ensure_netns(L.gw_netns)
        net.ensure_veth(L.gw_host_end, "eth0", L.gw_netns, L.bridges["public"], L.gw_address)
        for nn in L.nodes:
            if nn.kind == "vm":  # taps on the bridges; the guest sets its own addresses
                self._record(host_links=[ln.host_end for ln in nn.links])
                for ln in nn.links:
                    vm.ensure_tap(ln.host_end, ln.bridge)
                continue
            self._record(netns=[nn.netns], host_links=[ln.host_end for ln in nn.links])
            net.ensure_netns(nn.netns)
            for ln in nn.links:
                net.ensure_veth(ln.host_end, ln.node_end, nn.netns, ln.bridge, ln.address)
            if nn.gateway and nn.public_dev:
                net.ensure_default_route(nn.netns, nn.gateway, nn.public_dev)

    def _boot(self, name: str) -> None:
        machine = self.machine(name)
        p = self.paths(name)
        if self.is_vm(name):
            self._boot_vm(name)
            return
        if not node.is_mounted(p.root):
            raise LabError(f"node {name}: its disk is not mounted; run `hakit lab up` to prepare the lab")
        self._record(cgroups=[str(d) for d in node.cgroup_dirs(machine)])
        nn = self.net.node(name)
        net.power_on_links(nn.netns, [(ln.node_end, ln.address) for ln in nn.links], nn.gateway, nn.public_dev)
        pid = node.start(machine, name, p, nn.netns)
        self._record_node(name, nspawn_pid=pid, leader_pid=None)
        leader = node.wait_leader(pid, machine)
        self._record_node(name, leader_pid=leader, booted_at=time.time())

    def _boot_vm(self, name: str) -> None:
        vp = self.vm_paths(name)
        if not vp.disk.exists() or not vp.identity.exists():
            raise LabError(f"node {name}: its VM disk is missing; run `hakit lab up` to prepare the lab")
        argv = vm.qemu_argv(
            self.machine(name), self.vm_image.artefacts, vp, self.net.node(name).links,
            self.cfg.id, name, self.cfg.vm_memory_mib,
        )  # fmt: skip
        pid = vm.start(argv, vp)
        self._record_node(name, qemu_pid=pid, qmp=str(vp.qmp), links_down=[])
        try:
            vm.wait_monitor(pid, vp)
        except RuntimeError as e:
            raise LabError(f"node {name}: {e}") from None
        self._record_node(name, booted_at=time.time())

    def _wait_ready(self, name: str) -> None:
        """Wait for SSH, then for systemd to finish booting; explain failed units."""
        deadline = time.monotonic() + self.cfg.boot_timeout
        addr = self.address(name)
        while True:
            if not self._node_running(name):
                raise LabError(f"node {name} stopped while booting; see {self.paths(name).console}")
            try:
                with socket.create_connection((addr, self.params.ssh.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"node {name}: no SSH on {addr}:{self.params.ssh.port} after {self.cfg.boot_timeout:.0f} s; "
                        f"see {self.paths(name).console}"
                    ) from None
                time.sleep(0.1)
        left = max(5.0, deadline - time.monotonic())
        r = self.ssh(name, ["timeout", str(int(left)), "systemctl", "is-system-running", "--wait"], timeout=left + 5)
        state = r.stdout.strip()
        if state not in ("running", "degraded"):
            raise LabError(f"node {name}: systemd reports {state!r} after boot; see {self.paths(name).console}")
        if state == "degraded":
            failed = self._failed_units(name)
            self.progress(f"  {name}: degraded; failed units: {', '.join(failed) or '(none listed)'}")
        self.progress(f"  {name}: ready ({state})")

    def _failed_units(self, name: str) -> list[str]:
        r = self.ssh(name, ["systemctl", "--failed", "--plain", "--no-legend"], timeout=15)
        return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]

    # ------------------------------------------------------------- access

    def ssh_argv(self, name: str, tty: bool = False) -> list[str]:
        self._known(name)
        argv = [
            "ssh",
            "-i",
            str(self.key_file),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ForwardAgent=no",
            "-p",
            str(self.params.ssh.port),
        ]
        if tty:
            argv.append("-t")
        return argv + [f"{self.params.ssh.user}@{self.address(name)}"]

    def ssh(self, name: str, command: list[str], timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command on a node over SSH, as the runbooks would reach it."""
        argv = self.ssh_argv(name) + ["--", shlex.join(command)]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise LabError(f"on {name}: `{shlex.join(command)}` exited {p.returncode}: {p.stderr.strip()[-500:]}")
        return p

    # ------------------------------------------------------------- status

    def _node_state(self, name: str) -> dict[str, Any]:
        return self._state().get("nodes", {}).get(name, {})

    def _node_running(self, name: str) -> bool:
        st = self._node_state(name)
        if self.is_vm(name):
            return vm.is_our_qemu(st.get("qemu_pid"), self.machine(name))
        leader = st.get("leader_pid")
        return node.is_our_nspawn(st.get("nspawn_pid"), self.machine(name)) and node.pid_alive(leader)

    def status(self, probe: bool = True) -> list[NodeStatus]:
        out = []
        for n in self.params.nodes:
            st = self._node_state(n.name)
            running = self._node_running(n.name)
            nn = self.net.node(n.name)
            s = NodeStatus(
                name=n.name,
                state="running" if running else "off",
                machine=self.machine(n.name),
                private_ip=str(n.private_ip),
                public_ip=str(n.public_ip),
                ssh_address=str(self.params.ssh_address(n)),
                leader_pid=st.get("leader_pid") if running else None,
                nspawn_pid=st.get("nspawn_pid") if running else None,
                interfaces=[f"{ln.node_end} ({ln.network}{', cable pulled' if self._cable_pulled(n.name, ln) else ''})" for ln in nn.links],
                kind=nn.kind,
            )
            if running and nn.kind == "vm":
                pss, rss = vm.memory_kib(st["qemu_pid"])
                s.memory_mib, s.memory_rss_mib = round(pss / 1024, 1), round(rss / 1024, 1)
            elif running:
                s.memory_mib = round(node.memory_kib(nn.netns) / 1024, 1)
            if running:
                if probe:
                    try:
                        r = self.ssh(n.name, ["systemctl", "is-system-running"], timeout=15)
                        s.system_state = r.stdout.strip() or f"ssh failed: {r.stderr.strip()[-200:]}"
                        if s.system_state == "degraded":
                            s.failed_units = self._failed_units(n.name)
                    except subprocess.TimeoutExpired:
                        s.system_state = "ssh timed out"
            out.append(s)
        return out

    def _cable_pulled(self, name: str, ln: net.Link) -> bool:
        if self.is_vm(name):  # pulled through the VM's monitor, as recorded
            return ln.node_end in self._node_state(name).get("links_down", [])
        return net.link_exists(ln.host_end) and not net.link_is_up(ln.host_end)

    def status_dict(self, probe: bool = True) -> dict[str, Any]:
        nodes = self.status(probe)
        return {
            "lab_id": self.cfg.id,
            "cluster": self.params.cluster.name,
            "up": bool(nodes) and all(s.state == "running" for s in nodes),
            "image": self.image.spec.key,
            "image_built": self.image.is_built(),
            "vm_image": self.vm_image.spec.key if self.vm_nodes else None,
            "vm_image_built": self.vm_image.is_built() if self.vm_nodes else None,
            "bonding": {"available": self.bonding, "reason": self.bonding_reason, "links": self.net.links_mode},
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "host_addresses": self.net.host_addresses,
            "bridges": self.net.bridges,
            "gateway": {"address": self.net.gw_address, "netns": self.net.gw_netns, "blocked_sources": net.blocked_addresses(self.net.gw_netns) if net.netns_exists(self.net.gw_netns) else []},
            "vip": str(self.params.vip.address),
            "bmc": self.bmc_status(),
            "package_mirror": self.repo_status(),
            "quorum_device": self.qnetd_status(probe),
            "nodes": [s.__dict__ for s in nodes],
        }

    def qnetd_status(self, probe: bool = True) -> dict[str, Any] | None:
        """The lab's quorum-device host: where it is, whether it runs, and (probed) qnetd's own state."""
        qd = self.params.quorum_device
        if qd is None:
            return None
        running = self._node_running(qd.host)
        out: dict[str, Any] = {"host": qd.host, "address": qd.address, "port": qd.port, "algorithm": qd.algorithm,
                               "machine": self.machine(qd.host), "state": "running" if running else "off",
                               "qnetd": None}
        if running and probe:
            try:
                r = self.ssh(qd.host, ["systemctl", "is-active", "corosync-qnetd"], timeout=15)
                out["qnetd"] = r.stdout.strip() or r.stderr.strip()[-200:]
            except subprocess.TimeoutExpired:
                out["qnetd"] = "ssh timed out"
        return out

    # ------------------------------------------------------------- faults

    def _require_running(self, name: str) -> dict[str, Any]:
        self.params.node(name)  # raises a clear KeyError for unknown names
        if not self._node_running(name):
            raise LabError(f"node {name} is not running; `hakit lab power-on {name}` or `hakit lab up`")
        return self._node_state(name)

    def power_cut(self, name: str) -> None:
        """Pull the plug: the node's processes die at once, its disk stays as it was (also the qnetd host's)."""
        self._known(name)
        with self._lock(f"power-{name}"):
            self._power_cut(name)

    def _power_cut(self, name: str) -> None:
        st = self._node_state(name)
        if self.is_vm(name):
            vm.power_cut(st.get("qemu_pid"), self.machine(name))
            self._record_node(name, qemu_pid=None, links_down=[], cut_at=time.time())
            self.progress(f"{name}: power cut")
            return
        nn = self.net.node(name)
        node.power_cut(st.get("leader_pid"), st.get("nspawn_pid"), self.machine(name), nn.netns)
        net.power_off_links(nn.netns, [ln.node_end for ln in nn.links])
        self._record_node(name, leader_pid=None, nspawn_pid=None, cut_at=time.time())
        self.progress(f"{name}: power cut")

    def drop(self, name: str) -> list[str]:
        """Take one node out of a running lab (after `hakit node remove` took it out of the cluster): its
        BMC, its processes, its disk, its network namespace and links; the other nodes run on. The lab
        grows again with `lab up` and params that list it (it then boots fresh)."""
        self.params.node(name)
        removed: list[str] = []
        ns = self._node_state(name)
        if labbmc.stop(ns.get("bmc_pid"), self.dir, name):
            removed.append(f"virtual BMC of {name}")
        with self._lock(f"power-{name}"):
            if self._node_running(name):
                self._power_cut(name)
                removed.append(f"node {name} stopped")
        root = self.paths(name).root
        if node.is_mounted(root):
            node.unmount(root)
            removed.append(f"unmounted {root}")
        nn = self.net.node(name)
        if net.netns_exists(nn.netns):
            node.kill_all_in_netns(nn.netns)
            net.delete_netns(nn.netns)
            removed.append(f"netns {nn.netns}")
        for ln in nn.links:
            if net.link_exists(ln.host_end):
                net.delete_link(ln.host_end)
                removed.append(f"link {ln.host_end}")
        for d in node.cgroup_dirs(self.machine(name)):
            if d.exists():
                node.remove_cgroup_tree(d)
        shutil.rmtree(self.dir / "nodes" / name, ignore_errors=True)
        # The others forget its MACs: a node booted again at these addresses gets new ones, and a stale
        # neighbour entry would drop the first packets to it for seconds (a real new server has a MAC
        # nobody has seen; the lab re-uses the addresses).
        n = self.params.node(name)
        addrs = [str(n.private_ip), str(n.public_ip)]
        spaces = [o.netns for o in self.net.nodes if o.name != name and o.kind != "vm"] + [self.net.gw_netns]
        for space in spaces:
            if net.netns_exists(space):
                for ip in addrs:
                    run(["ip", "-n", space, "neigh", "flush", "to", ip], check=False)
        for ip in addrs:
            run(["ip", "neigh", "flush", "to", ip], check=False)
        with self._lock("state"):
            st = self._state()
            st.get("nodes", {}).pop(name, None)
            _write_json(self.state_file, st)
        if self.known_hosts.exists():
            keep = [ln for ln in self.known_hosts.read_text().splitlines() if ln.split(",", 1)[0] != name]
            self.known_hosts.write_text("\n".join(keep) + "\n")
        self.progress(f"lab {self.cfg.id}: dropped {name} ({'; '.join(removed) or 'nothing was running'})")
        return removed

    def power_on(self, name: str, wait: bool = True) -> None:
        """Boot a node that is off. A node already on (e.g. its BMC just booted it) is left alone."""
        self._known(name)
        with self._lock(f"power-{name}"):
            if self._node_running(name):
                self.progress(f"{name}: already running, nothing changed")
                return
            self._boot(name)
        if wait:
            self._wait_ready(name)

    def link(self, name: str, link: str, up: bool) -> None:
        """Pull (or plug back) cables of a node: the node sees carrier loss. `link` is a role (ring0 or
        private, ring1 or public: every cable of that network), a bond name of the params (the same), or
        one interface of the node; the same roles work in every layout (see `net.NodeNet.cables`)."""
        self.params.node(name)
        cables = self.net.node(name).cables(link)
        ends = [ln.node_end for ln in cables]
        if self.is_vm(name):
            self._require_running(name)
            for ln in cables:
                vm.set_link(self.vm_paths(name), ln.node_end, up)
            down = set(self._node_state(name).get("links_down", []))
            self._record_node(name, links_down=sorted(down - set(ends) if up else down | set(ends)))
        else:
            for ln in cables:
                net.set_link(ln.host_end, up)
        what = link if ends == [link] else f"{link} ({', '.join(ends)})"
        self.progress(f"{name}: {what} cable{'s' if len(ends) > 1 else ''} {'plugged in' if up else 'pulled'}")

    def gateway(self, name: str, reachable: bool) -> None:
        """Cut (or restore) one node's path to the gateway; other nodes keep theirs."""
        n = self.params.node(name)
        net.block_address(self.net.gw_netns, str(n.public_ip), blocked=not reachable)
        self.progress(f"{name}: gateway {'restored' if reachable else 'cut'}")

    def partition(self, name: str, cut: bool) -> None:
        """Cut (or restore) all traffic between one node and its peers, on both networks: both
        corosync rings break, while clients, the gateway and the BMCs still reach every node.
        The node's namespace drops the peers' addresses (it outlives a power cut)."""
        self.params.node(name)
        if self.is_vm(name):
            raise LabError(f"{name} is a VM node; a partition is made in a container node's namespace")
        netns = self.net.node(name).netns
        peers = [n for n in self.params.nodes if n.name != name]
        for p in peers:
            for addr in (p.private_ip, p.public_ip):
                net.block_address(netns, str(addr), blocked=cut)
        self.progress(f"{name}: {'cut off from' if cut else 'reconnected to'} {', '.join(p.name for p in peers)} (both networks)")

    def kill_process(self, name: str, process: str, sig: int = 9) -> list[int]:
        """Send a signal to every process on the node whose command name is exactly `process`."""
        self._require_running(name)
        if self.is_vm(name):
            return self._kill_in_vm(name, process, sig)
        pids = node.processes_named(self.net.node(name).netns, process)
        if not pids:
            raise LabError(f"no process named {process!r} is running on {name}")
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        self.progress(f"{name}: sent signal {sig} to {len(pids)} {process} process(es)")
        return pids

    def _kill_in_vm(self, name: str, process: str, sig: int) -> list[int]:
        """A VM's processes live in its own kernel: signal them there (exact name), report the guest PIDs."""
        r = self.ssh(name, ["sh", "-c", 'p=$(pgrep -x -- "$1") || exit 3; kill -s "$2" $p; echo $p', "-", process, str(sig)])
        if r.returncode == 3:
            raise LabError(f"no process named {process!r} is running on {name}")
        if r.returncode != 0:
            raise LabError(f"on {name}: signalling {process!r} failed: {r.stderr.strip()[-300:]}")
        pids = [int(x) for x in r.stdout.split()]
        self.progress(f"{name}: sent signal {sig} to {len(pids)} {process} process(es)")
        return pids

    # ------------------------------------------------------------- virtual BMCs

    @property
    def has_bmcs(self) -> bool:
        """The lab runs one virtual BMC per node when the params configure fencing."""
        return self.params.pacemaker.fencing is not None

    def _bmc_running(self, name: str) -> bool:
        return labbmc.is_our_bmc(self._node_state(name).get("bmc_pid"), self.dir, name)

    def _ensure_bmcs(self) -> list[str]:
        """Start every node's virtual BMC that is not running; returns the nodes it started."""
        if not self.has_bmcs:
            return []
        labbmc.ensure_password(self.dir)
        started = [n.name for n in self.params.nodes if not self._bmc_running(n.name)]
        if started:  # in parallel (each takes a Python start-up); recorded one by one
            with ThreadPoolExecutor(max_workers=len(started)) as ex:
                pids = list(ex.map(lambda name: labbmc.start(self.dir, self.params, name), started))
            for name, pid in zip(started, pids):
                self._record_node(name, bmc_pid=pid)
        return started

    def _start_bmc(self, name: str) -> None:
        pid = labbmc.start(self.dir, self.params, name)
        self._record_node(name, bmc_pid=pid)

    def bmc_status(self) -> list[dict[str, Any]]:
        """Each node's virtual BMC: where it listens and whether it answers."""
        if not self.has_bmcs:
            return []
        return [
            {"node": ep.node, "address": str(ep), "state": "up" if self._bmc_running(ep.node) else "down",
             "pid": self._node_state(ep.node).get("bmc_pid") if self._bmc_running(ep.node) else None}
            for ep in labbmc.endpoints(self.params)
        ]

    def bmc(self, name: str, available: bool) -> None:
        """Make a node's power controller unavailable (its daemon stops: nothing answers on its
        port) or available again. The node itself is not touched."""
        self.params.node(name)
        if not self.has_bmcs:
            raise LabError("these params configure no fencing (pacemaker.fencing), so the lab runs no virtual BMCs")
        if available:
            if self._bmc_running(name):
                self.progress(f"{name}: virtual BMC already up, nothing changed")
                return
            labbmc.ensure_password(self.dir)
            self._start_bmc(name)
            self.progress(f"{name}: virtual BMC up on {self._bmc_endpoint(name)}")
        else:
            labbmc.stop(self._node_state(name).get("bmc_pid"), self.dir, name)
            self._record_node(name, bmc_pid=None)
            self.progress(f"{name}: virtual BMC down (nothing answers on {self._bmc_endpoint(name)})")

    # ------------------------------------------------------------- package mirror (bare images)

    def _ensure_repo(self) -> list[str]:
        """A bare lab's package mirror on the private host address; returns ["package mirror"] if started."""
        root = self.image.repo
        if root is None or repo.is_ours(self._state().get("repo_pid"), self.dir):
            return []
        self._record(repo_pid=repo.start(self.dir, root, str(self.cfg.host_private_ip)))
        return ["package mirror"]

    def repo_status(self) -> dict[str, Any] | None:
        if self.image.repo is None:
            return None
        pid = self._state().get("repo_pid")
        up = repo.is_ours(pid, self.dir)
        return {"url": f"http://{self.cfg.host_private_ip}:{repo.PORT}/debian", "name_on_nodes": repo.HOST,
                "state": "up" if up else "down", "pid": pid if up else None}

    def _stop_repo(self, st: dict[str, Any]) -> list[str]:
        removed = []
        if repo.stop(st.get("repo_pid"), self.dir):
            removed.append("package mirror")
        for pid in repo.find(self.dir):
            if repo.stop(pid, self.dir):
                removed.append(f"package mirror (pid {pid}, not recorded)")
        return removed

    def _bmc_endpoint(self, name: str) -> labbmc.Endpoint:
        return next(e for e in labbmc.endpoints(self.params) if e.node == name)

    def _stop_bmcs(self, st: dict[str, Any]) -> list[str]:
        """Stop this lab's BMC daemons: the recorded PIDs (checked), then any found by exact command line."""
        removed = []
        for name, ns in st.get("nodes", {}).items():
            if labbmc.stop(ns.get("bmc_pid"), self.dir, name):
                removed.append(f"virtual BMC of {name}")
        for pid, name in labbmc.find_daemons(self.dir).items():
            if labbmc.stop(pid, self.dir, name):
                removed.append(f"virtual BMC of {name} (pid {pid}, not recorded)")
        d = labbmc.bmc_dir(self.dir)
        if d.exists():
            shutil.rmtree(d)
        return removed

    # ------------------------------------------------------------- down

    def down(self) -> list[str]:
        """Remove every process, mount, namespace, link, rule and cgroup the lab made."""
        st = self._state()
        removed: list[str] = self._stop_bmcs(st) + self._stop_repo(st)
        L = self.net
        nodes = dict(st.get("nodes", {}))
        for name in self.machines:
            nodes.setdefault(name, {"machine": self.machine(name), "netns": L.node(name).netns, "base": str(self.paths(name).base)})
        for name, ns in nodes.items():
            machine = ns.get("machine", self.machine(name))
            netns = ns.get("netns", f"{self.cfg.id}-{name}")
            if vm.is_our_qemu(ns.get("qemu_pid"), machine) or vm.find_qemus(machine):
                vm.power_cut(ns.get("qemu_pid"), machine)
                removed.append(f"vm {name} stopped")
            if net.netns_pids(netns) or node.is_our_nspawn(ns.get("nspawn_pid"), machine):
                node.power_cut(ns.get("leader_pid"), ns.get("nspawn_pid"), machine, netns)
                removed.append(f"node {name} stopped")
            base = Path(ns.get("base", self.paths(name).base))
            root = base / "root"
            if node.is_mounted(root):
                node.unmount(root)
                removed.append(f"unmounted {root}")
            leftover = Path("/run/systemd/nspawn/propagate") / machine
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
            for d in node.cgroup_dirs(machine):
                if d.exists():
                    node.remove_cgroup_tree(d)
                    removed.append(f"cgroup {d}")
        for ns_name in sorted(set(st.get("netns", [])) | {L.gw_netns} | {nn.netns for nn in L.nodes}):
            if net.netns_exists(ns_name):
                node.kill_all_in_netns(ns_name)
                net.delete_netns(ns_name)
                removed.append(f"netns {ns_name}")
        host_links = set(st.get("host_links", [])) | {L.gw_host_end} | {ln.host_end for nn in L.nodes for ln in nn.links}
        for ln in sorted(host_links):
            if net.link_exists(ln):
                net.delete_link(ln)
                removed.append(f"link {ln}")
        for br in sorted(set(st.get("bridges", [])) | set(L.bridges.values())):
            if net.link_exists(br):
                net.delete_link(br)
                removed.append(f"bridge {br}")
        for table in {st.get("nft_table"), L.nft_table} - {None}:
            net.delete_nft_table(table)  # type: ignore[arg-type]
        nodes_dir = self.dir / "nodes"
        if nodes_dir.exists():
            shutil.rmtree(nodes_dir)
            removed.append(f"node disks in {nodes_dir}")
        if self.state_file.exists():
            self.state_file.unlink()
        if self.known_hosts.exists():
            self.known_hosts.unlink()
        (self.dir / inventory.INVENTORY_FILE).unlink(missing_ok=True)
        leftovers = self.leftovers()
        deadline = time.monotonic() + 5
        while leftovers and time.monotonic() < deadline:  # veth ends vanish asynchronously
            time.sleep(0.1)
            for ln in host_links:
                if net.link_exists(ln):
                    net.delete_link(ln)
            leftovers = self.leftovers()
        if leftovers:
            raise LabError("lab down left these behind: " + "; ".join(leftovers))
        return removed

    def leftovers(self) -> list[str]:
        """Anything of this lab still present on the machine (empty after a clean down)."""
        found = []
        L = self.net
        for nn in L.nodes:
            if net.netns_exists(nn.netns):
                found.append(f"netns {nn.netns}")
            for ln in nn.links:
                if net.link_exists(ln.host_end):
                    found.append(f"link {ln.host_end}")
            p = self.paths(nn.name)
            if node.is_mounted(p.root):
                found.append(f"mount {p.root}")
            for d in node.cgroup_dirs(self.machine(nn.name)):
                if d.exists():
                    found.append(f"cgroup {d}")
        if net.netns_exists(L.gw_netns):
            found.append(f"netns {L.gw_netns}")
        for name in self.vm_nodes:
            found += [f"qemu process {q} of {name}" for q in vm.find_qemus(self.machine(name))]
            if self.vm_paths(name).qmp.exists():
                found.append(f"monitor socket {self.vm_paths(name).qmp}")
        for br in L.bridges.values():
            if net.link_exists(br):
                found.append(f"bridge {br}")
        if run(["nft", "list", "table", "inet", L.nft_table], check=False).returncode == 0:
            found.append(f"nft table {L.nft_table}")
        for pid_dir in Path("/proc").iterdir():
            if pid_dir.name.isdigit():
                argv = node.cmdline(int(pid_dir.name))
                if argv and argv[0].endswith("systemd-nspawn") and any(
                    a == f"--machine={self.machine(n)}" for n in self.machines for a in argv
                ):
                    if node.pid_alive(int(pid_dir.name)):
                        found.append(f"process {pid_dir.name} ({' '.join(argv[:3])} ...)")
        found += [f"virtual BMC process {pid} of {name}" for pid, name in labbmc.find_daemons(self.dir).items()]
        found += [f"package mirror process {pid}" for pid in repo.find(self.dir)]
        return found
