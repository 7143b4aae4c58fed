"""Parameter sets: YAML validated into typed models before any host is touched.

Every error names the field, the value and what would be valid. Models forbid
unknown keys so a typo (``nodse:``) fails loudly instead of being ignored.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ParamsError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
IFACE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")
LAB_ID_RE = re.compile(r"^[a-z][a-z0-9]{0,3}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_blank_strings(cls, data: object) -> object:
        """A key given with an empty or blank value is a mistake, never "use the default": say which."""
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and not value.strip():
                    raise ValueError(f"{key} is {'empty' if not value else 'only white space'}; give a value "
                                     "or leave the key out for its default (if it has one)")
        return data


def _check_iface(value: str) -> str:
    if not IFACE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid Linux interface name "
            "(1-15 characters: letters, digits, '_', '.', '-', starting with a letter)"
        )
    return value


IfaceName = Annotated[str, Field(description="Linux interface name")]


class Network(Strict):
    """One cluster network: the article's bond with two slave NICs."""

    subnet: ipaddress.IPv4Network
    bond: IfaceName
    slaves: tuple[IfaceName, IfaceName]

    @field_validator("bond")
    @classmethod
    def _bond_name(cls, v: str) -> str:
        return _check_iface(v)

    @field_validator("slaves")
    @classmethod
    def _slave_names(cls, v: tuple[str, str]) -> tuple[str, str]:
        for s in v:
            _check_iface(s)
        if v[0] == v[1]:
            raise ValueError(f"the two slaves must differ, got {v[0]!r} twice")
        return v

    @field_validator("subnet", mode="before")
    @classmethod
    def _prefix_in_range(cls, v: object) -> object:
        # Without this, "/40" only gets pydantic's "not a valid IPv4 network", which does not say what is valid.
        if isinstance(v, str) and "/" in v:
            prefix = v.rsplit("/", 1)[1].strip()
            if prefix.isdigit() and not 8 <= int(prefix) <= 30:
                raise ValueError(f"prefix length /{prefix} is out of range; use /8 to /30")
        return v

    @field_validator("subnet")
    @classmethod
    def _subnet_size(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if v.prefixlen > 30 or v.prefixlen < 8:
            raise ValueError(f"prefix length /{v.prefixlen} is out of range; use /8 to /30")
        return v


class PublicNetwork(Network):
    gateway: ipaddress.IPv4Address

    @model_validator(mode="after")
    def _gateway_inside(self) -> "PublicNetwork":
        _require_host_in(self.gateway, self.subnet, "networks.public.gateway")
        return self


class Networks(Strict):
    private: Network = Field(description="ring0: corosync traffic only")
    public: PublicNetwork = Field(description="ring1 backup, VIP, gateway, clients")

    @model_validator(mode="after")
    def _distinct(self) -> "Networks":
        if self.private.subnet.overlaps(self.public.subnet):
            raise ValueError(
                f"networks.private.subnet {self.private.subnet} overlaps "
                f"networks.public.subnet {self.public.subnet}; the rings need separate networks"
            )
        names = [self.private.bond, *self.private.slaves, self.public.bond, *self.public.slaves]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"interface names are used twice across networks: {', '.join(dup)}")
        return self


class Node(Strict):
    name: str
    nodeid: int = Field(ge=1, le=65535)
    private_ip: ipaddress.IPv4Address
    public_ip: ipaddress.IPv4Address

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a usable host name (2-32 characters: lower-case letters, "
                "digits and '-', starting with a letter)"
            )
        return v


class Cluster(Strict):
    name: str = Field(description="corosync cluster_name")
    profile: str = Field(default="fast", description="timing profile name")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a usable cluster name (lower-case letters, digits, '-')")
        return v


class Vip(Strict):
    address: ipaddress.IPv4Address


# fence_ipmilan and the names Debian's fence-agents installs for it (same script, other defaults).
FENCE_AGENTS = ("fence_ipmilan", "fence_ipmilanplus", "fence_idrac", "fence_ilo3", "fence_ilo4", "fence_ilo5", "fence_imm")
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
IPMI_PASSWORD_MAX = 20  # IPMI v2 passwords are at most 20 bytes


def ip_or_host_name(v: str) -> str:
    """An IP address or a DNS name, as given; anything else raises naming the value."""
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if not HOST_RE.match(v):
        raise ValueError(f"{v!r} is neither an IP address nor a DNS name")
    return v


def _check_bmc_password(v: SecretStr | None) -> SecretStr | None:
    if v is not None:
        n = len(v.get_secret_value().encode())
        if not 1 <= n <= IPMI_PASSWORD_MAX:
            raise ValueError(f"the password has {n} bytes; IPMI v2 accepts 1 to {IPMI_PASSWORD_MAX}")
    return v


class FenceDevice(Strict):
    """One node's power controller (its BMC), as the fence agent reaches it."""

    address: str = Field(description="BMC IP address or DNS name")
    port: int = Field(default=623, ge=1, le=65535, description="IPMI UDP port (ipport)")
    username: str | None = Field(default=None, description="overrides pacemaker.fencing.username")
    password: SecretStr | None = Field(default=None, description="overrides pacemaker.fencing.password")
    password_file: Path | None = Field(default=None, description="overrides pacemaker.fencing.password_file")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return ip_or_host_name(v)

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_bmc_password(v)


class Fencing(Strict):
    """How the cluster powers off a node it has lost: one fence device (BMC) per node.

    Secrets never go into the CIB: the password is copied root-only to each node
    (stage 4 plans one ``WriteSecret`` per BMC) and ipmitool reads it from there. In
    the lab, leave devices and credentials out: the lab runs one virtual BMC per
    node on ``lab.host_private_ip`` and provides them.
    """

    agent: Literal[FENCE_AGENTS] = Field(  # type: ignore[valid-type]
        default="fence_ipmilan", description="fence agent (Debian package fence-agents)"
    )
    username: str | None = Field(default=None, description="BMC user, for every device unless overridden")
    password: SecretStr | None = Field(
        default=None, description="BMC password in the params file (prefer password_file)"
    )
    password_file: Path | None = Field(
        default=None, description="file on this machine holding the BMC password (first line)"
    )
    lanplus: bool = Field(default=True, description="IPMI v2 RMCP+ (lanplus); v1.5 'lan' sends weak auth")
    cipher: int | None = Field(default=None, ge=0, le=17, description="RMCP+ cipher suite; default: ipmitool's choice")
    devices: dict[str, FenceDevice] = Field(default_factory=dict, description="node name -> its BMC")
    delay_s: int = Field(
        default=5, ge=0, le=60,
        description="two nodes only: seconds the device that fences the preferred node waits first "
        "(pcmk_delay_base), so the preferred node wins a fence race; paid on every real loss of that node",
    )
    power_wait_s: int | None = Field(
        default=None, ge=0, le=60,
        description="fence_ipmilan power_wait: seconds the agent sleeps after each power command before it "
        "asks the BMC for the power state (null: the agent's default, 2 s; fence_ilo3 4 s), for BMCs that report "
        "a state before it holds. The agent polls the state after that anyway, every second up to power_timeout (20 s)",
    )
    action: Literal["off", "reboot"] = Field(
        default="off",
        description="pacemaker property stonith-action: 'off' leaves a fenced node off until an admin looks "
        "at it; 'reboot' powers it back on, and it rejoins (and takes the service back) by itself",
    )

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_bmc_password(v)


# The score of `location preferred-node vip 100: <node>` (stage 6).
PREFERRED_SCORE = 100


class FailurePolicy(Strict):
    """What the cluster does when the service fails (stage 5: meta attributes of ``vip`` and ``httpd``).

    A site's decision about behaviour, not about speed, so it lives in the params and not in the
    timing profile: switching profiles (``hakit bench failover --profiles seed,fast``) must not change
    whether an Apache crash moves the service. The defaults meet the article's rule "if the Apache
    service crashes on the primary server, it switches to the secondary server".
    """

    migration_threshold: int | None = Field(
        default=1, ge=1, le=1000000,
        description="failures of vip or httpd on a node before it is banned there and the service moves; "
        "1 moves at the first crash (the article); null leaves pacemaker's INFINITY: restart in place for ever",
    )
    failure_timeout: int | None = Field(
        default=60, ge=1, le=31536000,
        description="s after its last failure that a node's failcount expires and the node may run the service "
        "again (then the service fails back unless stickiness keeps it); null: never, until `crm resource cleanup`",
    )
    resource_stickiness: int | None = Field(
        default=None, ge=0, le=1000000,
        description="how strongly vip and httpd stay where they run; above the preferred node's score "
        f"({PREFERRED_SCORE}) the service stays on the survivor instead of failing back; null: pacemaker's 0",
    )

    @model_validator(mode="after")
    def _no_tie(self) -> "FailurePolicy":
        if self.resource_stickiness is not None and 2 * self.resource_stickiness == PREFERRED_SCORE:
            raise ValueError(
                f"resource_stickiness {self.resource_stickiness}: vip and httpd together ({2 * self.resource_stickiness}) "
                f"tie with the preferred node's score {PREFERRED_SCORE}, so whether the service fails back is "
                f"left to chance; use below {PREFERRED_SCORE // 2} (fail back) or above it (stay on the survivor)"
            )
        return self

    def meta(self) -> tuple[tuple[str, str], ...]:
        """The meta attributes stage 5 sets on vip and httpd, in crm order (unset ones left out)."""
        out = []
        if self.migration_threshold is not None:
            out.append(("migration-threshold", str(self.migration_threshold)))
        if self.failure_timeout is not None:
            out.append(("failure-timeout", f"{self.failure_timeout}s"))
        if self.resource_stickiness is not None:
            out.append(("resource-stickiness", str(self.resource_stickiness)))
        return tuple(out)

    @property
    def moves_on_failure(self) -> bool:
        """Does a failure of httpd on its node move the service (True) or restart it in place for ever?"""
        return self.migration_threshold is not None

    @property
    def fails_back(self) -> bool:
        """After the fault is gone, does the service return to the preferred node? Stickiness counts
        once per colocated resource (vip and httpd), against the preferred node's score."""
        return 2 * (self.resource_stickiness or 0) < PREFERRED_SCORE


class Pacemaker(Strict):
    """Cluster-wide pacemaker choices (stage 4) and where the service prefers to run (stage 6).

    The defaults are the article's (no fencing, quorum loss ignored), so a params
    file that says nothing gets the article's cluster; the shipped labs set
    ``stonith_enabled: true`` with ``fencing``, and notebook 04 explains why
    production must fence.
    """

    stonith_enabled: bool = Field(default=False, description="pacemaker property stonith-enabled")
    no_quorum_policy: Literal["ignore", "stop", "freeze", "demote"] = Field(
        default="ignore", description="pacemaker property no-quorum-policy"
    )
    preferred_node: str | None = Field(
        default=None, description="node the VIP prefers (score 100); default: the first node"
    )
    fencing: Fencing | None = Field(default=None, description="fence devices; required when stonith_enabled")
    resources: FailurePolicy = Field(
        default=FailurePolicy(), description="failure policy of the service: migration threshold, failure "
        "timeout, stickiness (stage 5)",
    )
    layout: Literal["article", "cloned-apache"] = Field(
        default="article", description="how stages 5-6 place Apache: 'article' runs one httpd beside the VIP "
        "(colocation httpd-with-vip); 'cloned-apache' runs httpd on every node as httpd-clone and only the VIP "
        "moves (colocation vip-with-httpd)",
    )
    op_timeout: int | None = Field(
        default=None, ge=20, le=3600, description="the least timeout, in seconds, of every resource and fence "
        "device operation: rendered as op_defaults timeout=<N>s (stage 4), and the explicit operation timeouts of "
        "stage 5 below it are raised to it. For slow nodes (the all-VM lab under TCG); None keeps pacemaker's 20 s "
        "default and the article's timeouts",
    )

    @model_validator(mode="after")
    def _layout_policy(self) -> "Pacemaker":
        if self.layout == "cloned-apache" and self.resources.resource_stickiness is not None:
            raise ValueError(
                f"pacemaker.layout cloned-apache with pacemaker.resources.resource_stickiness "
                f"{self.resources.resource_stickiness}: whether the VIP fails back under stickiness was measured "
                "for the article layout only; leave resource_stickiness out or use layout article"
            )
        return self

    @property
    def cloned_apache(self) -> bool:
        """Apache runs on every node (httpd-clone) and only the VIP moves."""
        return self.layout == "cloned-apache"


QDEVICE_PORT = 5403  # corosync-qnetd's default TCP port


class QuorumDevice(Strict):
    """A third vote from outside the cluster: corosync-qdevice on every node asks corosync-qnetd on
    another host which partition keeps quorum (votequorum's ``quorum.device``, model ``net``).

    Real sites point it at a host that is not a node (a small VM elsewhere, one qnetd can serve
    many clusters); the lab provides one container running corosync-qnetd on the public network.
    The runbooks reach that host over SSH at ``address`` (its host key pinned in ``ssh.known_hosts``),
    and the nodes' qdevice connects to the same address.
    """

    host: str = Field(description="name of the qnetd host in plans and records (and, in the lab, its container)")
    address: str = Field(description="IP address or DNS name of the qnetd host: where qdevice connects and SSH goes")
    algorithm: Literal["ffsplit", "lms"] = Field(
        default="ffsplit",
        description="ffsplit: on a 50:50 split qnetd gives its vote to one half (clusters of even size); "
        "lms: last man standing, qnetd's vote keeps the largest partition it can reach, even one node",
    )
    tls: Literal["on", "required"] = Field(
        default="on", description="TLS between qdevice and qnetd: on (used, qnetd offers it) or required; "
        "off is not offered: the runbooks set up the certificates either way",
    )
    port: int = Field(default=QDEVICE_PORT, ge=1, le=65535, description="qnetd's TCP port")

    @field_validator("tls", mode="before")
    @classmethod
    def _yaml_on(cls, v: object) -> object:
        # YAML 1.1 reads a bare `on` as true and `off` as false: take them as the words they were.
        if v is True:
            return "on"
        if v is False:
            return "off"
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a usable host name (2-32 characters: lower-case letters, "
                             "digits and '-', starting with a letter)")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return ip_or_host_name(v)


class Ssh(Strict):
    """How the runbooks reach nodes. In the lab, key and known_hosts come from the lab."""

    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    network: Literal["public", "private"] = "public"
    key_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    command_timeout: float = Field(default=120.0, gt=0, le=3600)


class Lab(Strict):
    """The local lab: nspawn containers on host bridges. Absent for real hosts."""

    id: str = Field(default="hk", description="short prefix (1-4 chars) for bridges, veths, netns")
    release: Literal["trixie", "bookworm"] = Field(
        default="trixie",
        description="Debian release of the lab nodes: trixie (13: pacemaker 3.0, crmsh 5.0) or bookworm (12: pacemaker 2.1, crmsh 4.4); one cached image each",
    )
    image: Literal["bare", "ready"] = Field(
        default="ready",
        description=(
            "bare: nodes as a freshly installed server (base system + sshd), stage 00 installs the cluster "
            "packages from the lab's own package mirror; ready: the cluster packages already installed (faster)"
        ),
    )
    host_private_ip: ipaddress.IPv4Address
    host_public_ip: ipaddress.IPv4Address
    links: Literal["bond-names", "slaves"] = Field(
        default="bond-names",
        description=(
            "container nodes' cables. bond-names (default, the same on every kernel): one plain link per "
            "network named like its bond (bond0, bond1), so stage 1 validates and records 'not applied'. "
            "slaves: the article's four NICs (eth0..eth3, the address on the first of each pair) for stage 1 "
            "to bond; only on a host kernel with bonding (containers share it), refused at `lab up` otherwise"
        ),
    )
    state_dir: Path = Path("/var/lib/hakit/lab")
    image_cache: Path = Path("/var/cache/hakit/images")
    mirror: str | None = Field(
        default=None, description="Debian mirror URL; default: the host's own apt source"
    )
    boot_timeout: float = Field(default=120.0, gt=0, le=1800)
    kinds: dict[str, Literal["container", "vm"]] = Field(
        default_factory=dict,
        description=(
            "per node: container (default; shares this machine's kernel) or vm (a qemu VM with its own "
            "kernel and four NICs eth0..eth3, so bonding applies for real); `links` is for containers only"
        ),
    )
    vm_memory_mib: int = Field(default=896, ge=512, le=4096, description="memory of each vm node, MiB")

    def kind(self, node: str) -> Literal["container", "vm"]:
        """How the lab runs this node: container unless `kinds` says vm."""
        return self.kinds.get(node, "container")

    def real_bonds(self, nodes: list[str]) -> bool:
        """Do these lab nodes get kernel bonds from stage 1? VM nodes do; container nodes only with
        ``links: slaves`` (the host kernel's driver)."""
        return all(self.kind(n) == "vm" or self.links == "slaves" for n in nodes)

    @property
    def dir(self) -> Path:
        """Where this lab keeps its key, known_hosts, state and node disks."""
        return self.state_dir / self.id

    @property
    def key_file(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not LAB_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a valid lab id (1-4 lower-case letters/digits, letter first)")
        return v


class Params(Strict):
    cluster: Cluster
    nodes: list[Node]
    networks: Networks
    vip: Vip
    ssh: Ssh = Ssh()
    pacemaker: Pacemaker = Pacemaker()
    quorum_device: QuorumDevice | None = None
    lab: Lab | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> "Params":
        if len(self.nodes) < 2:
            raise ValueError(
                f"nodes: {len(self.nodes)} node(s) given; an active/passive cluster needs at least 2"
            )
        for attr in ("name", "nodeid", "private_ip", "public_ip"):
            seen: dict[object, int] = {}
            for i, n in enumerate(self.nodes):
                v = getattr(n, attr)
                if v in seen:
                    raise ValueError(
                        f"nodes[{i}].{attr} {v} repeats nodes[{seen[v]}].{attr}; each node needs its own"
                    )
                seen[v] = i
        priv, pub = self.networks.private.subnet, self.networks.public.subnet
        for i, n in enumerate(self.nodes):
            _require_host_in(n.private_ip, priv, f"nodes[{i}].private_ip")
            _require_host_in(n.public_ip, pub, f"nodes[{i}].public_ip")
        _require_host_in(self.vip.address, pub, "vip.address")
        taken = {n.public_ip for n in self.nodes} | {self.networks.public.gateway}
        if self.vip.address in taken:
            raise ValueError(f"vip.address {self.vip.address} is already a node or gateway address")
        if self.networks.public.gateway in {n.public_ip for n in self.nodes}:
            raise ValueError(f"networks.public.gateway {self.networks.public.gateway} is a node address")
        from .profiles import PROFILES, profile_names  # late: profiles imports this module

        if self.cluster.profile not in PROFILES:
            raise ValueError(
                f"cluster.profile {self.cluster.profile!r} is not a timing profile; "
                f"use one of: {', '.join(profile_names())}"
            )
        PROFILES[self.cluster.profile].check_cluster_size(len(self.nodes))
        names = [n.name for n in self.nodes]
        if self.pacemaker.preferred_node is not None and self.pacemaker.preferred_node not in names:
            raise ValueError(
                f"pacemaker.preferred_node {self.pacemaker.preferred_node!r} is not a node; "
                f"use one of: {', '.join(names)}"
            )
        if self.lab is not None:
            _require_host_in(self.lab.host_private_ip, priv, "lab.host_private_ip")
            _require_host_in(self.lab.host_public_ip, pub, "lab.host_public_ip")
            used = taken | {self.vip.address}
            if self.lab.host_public_ip in used:
                raise ValueError(f"lab.host_public_ip {self.lab.host_public_ip} is already in use by the cluster")
            if self.lab.host_private_ip in {n.private_ip for n in self.nodes}:
                raise ValueError(f"lab.host_private_ip {self.lab.host_private_ip} is a node address")
            unknown = sorted(set(self.lab.kinds) - set(names))
            if unknown:
                raise ValueError(
                    f"lab.kinds names {', '.join(map(repr, unknown))}, which is not a node; "
                    f"use node names: {', '.join(names)}"
                )
        elif self.ssh.key_file is None or self.ssh.known_hosts is None:
            raise ValueError(
                "ssh.key_file and ssh.known_hosts are required for real hosts "
                "(only the lab provides its own); host keys must be pinned"
            )
        _check_fencing(self)
        _check_quorum_device(self)
        return self

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; nodes are: {', '.join(n.name for n in self.nodes)}")

    @property
    def preferred_node(self) -> str:
        """Where the VIP (and so Apache) runs when all nodes are healthy."""
        return self.pacemaker.preferred_node or self.nodes[0].name

    def ssh_address(self, node: Node) -> ipaddress.IPv4Address:
        return node.public_ip if self.ssh.network == "public" else node.private_ip


def _check_fencing(p: "Params") -> None:
    """stonith-enabled needs fence devices; devices cover exactly the nodes, each with credentials."""
    f = p.pacemaker.fencing
    if f is None:
        if p.pacemaker.stonith_enabled:
            raise ValueError(
                "pacemaker.stonith_enabled is true but pacemaker.fencing is not set; add a fencing "
                "section (agent, and for real hosts devices and credentials) or set stonith_enabled: false"
            )
        return
    names = [n.name for n in p.nodes]
    if p.lab is not None:
        given = [k for k in ("username", "password", "password_file", "devices") if getattr(f, k)]
        if given:
            raise ValueError(
                f"pacemaker.fencing.{given[0]} is set, but in the lab the fence devices and their "
                "credentials come from the lab (one virtual BMC per node on lab.host_private_ip); remove it"
            )
        if not f.lanplus:
            raise ValueError(
                "pacemaker.fencing.lanplus is false, but the lab's virtual BMCs speak IPMI v2 lanplus only; remove it"
            )
        if f.cipher not in (None, 3):
            raise ValueError(
                f"pacemaker.fencing.cipher {f.cipher} is not offered by the lab's virtual BMCs; use 3 or leave it out"
            )
        return
    unknown = sorted(set(f.devices) - set(names))
    if unknown:
        raise ValueError(
            f"pacemaker.fencing.devices names {', '.join(unknown)}, which is not a node; nodes are: {', '.join(names)}"
        )
    missing = [n for n in names if n not in f.devices]
    if missing:
        raise ValueError(
            f"pacemaker.fencing.devices has no device for {', '.join(missing)}; every node needs its own "
            "fence device (address of its BMC)"
        )
    for name in names:
        d = f.devices[name]
        where = f"pacemaker.fencing.devices.{name}"
        if not (d.username or f.username):
            raise ValueError(f"{where}: no username; set pacemaker.fencing.username or {where}.username")
        for owner, label in ((d, where), (f, "pacemaker.fencing")):
            if owner.password is not None and owner.password_file is not None:
                raise ValueError(f"{label} sets both password and password_file; keep one")
        if d.password is None and d.password_file is None and f.password is None and f.password_file is None:
            raise ValueError(
                f"{where}: no password; set pacemaker.fencing.password_file (a file on this machine) "
                f"or {where}.password_file"
            )
    if len({(d.address, d.port) for d in f.devices.values()}) < len(f.devices):
        raise ValueError("pacemaker.fencing.devices: two nodes share one BMC address and port; each node needs its own")


def _check_quorum_device(p: "Params") -> None:
    """The qnetd host is not a node, its address is no cluster address, and its algorithm fits the cluster."""
    qd = p.quorum_device
    if qd is None:
        return
    names = [n.name for n in p.nodes]
    if qd.host in names:
        raise ValueError(f"quorum_device.host {qd.host!r} is a cluster node; the quorum device must run on "
                         "another host (a node's own vote cannot settle a split it is part of)")
    taken = {str(a): what for n in p.nodes for a, what in ((n.private_ip, f"{n.name}'s private_ip"),
                                                           (n.public_ip, f"{n.name}'s public_ip"))}
    taken[str(p.vip.address)] = "vip.address"
    taken[str(p.networks.public.gateway)] = "networks.public.gateway"
    if p.lab is not None:
        taken[str(p.lab.host_private_ip)] = "lab.host_private_ip"
        taken[str(p.lab.host_public_ip)] = "lab.host_public_ip"
    if qd.address in taken:
        raise ValueError(f"quorum_device.address {qd.address} is already {taken[qd.address]}; the qnetd host "
                         "needs an address of its own")
    if p.pacemaker.no_quorum_policy == "ignore":
        raise ValueError("pacemaker.no_quorum_policy is ignore (the default) with a quorum_device: a node that lost "
                         "the device's vote would still fence its peer and run the service, so the vote would decide "
                         "nothing; set pacemaker.no_quorum_policy: stop")
    if qd.algorithm == "ffsplit" and len(p.nodes) % 2:
        raise ValueError(f"quorum_device.algorithm ffsplit is for clusters with an even number of nodes, and "
                         f"this one has {len(p.nodes)}; use algorithm lms")
    if p.lab is not None:
        try:
            addr = ipaddress.IPv4Address(qd.address)
        except ValueError:
            raise ValueError(f"quorum_device.address {qd.address!r}: in the lab the qnetd host is a container "
                             f"on the public network; give an IPv4 address in {p.networks.public.subnet}") from None
        _require_host_in(addr, p.networks.public.subnet, "quorum_device.address")


def _require_host_in(addr: ipaddress.IPv4Address, net: ipaddress.IPv4Network, field: str) -> None:
    if addr not in net:
        raise ValueError(f"{field} {addr} is outside the subnet {net}; pick an address inside it")
    if addr in (net.network_address, net.broadcast_address):
        raise ValueError(f"{field} {addr} is the network or broadcast address of {net}; pick a host address")


def _format_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {err.error_count()} problem(s) in the parameters:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if not loc:  # a cross-field check: its message names the fields itself
            lines.append(f"  - {msg}")
            continue
        if e["type"] == "extra_forbidden":
            msg = "unknown key (a typo?); remove it or check the spelling against params/lab.yaml"
            lines.append(f"  - {loc}: {msg}")
            continue
        if e["type"] == "missing":
            lines.append(f"  - {loc}: required field is missing")
            continue
        value = e.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        if any("password" in str(part) for part in e["loc"]):
            shown = " (value not shown: it is a secret)"
        lines.append(f"  - {loc}: {msg}{shown}")
    return "\n".join(lines)


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping: YAML would silently keep the later value."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error naming the key and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(
                    f"key {key!r} is given twice in one section (lines {seen[key]} and {line}); "
                    "YAML would silently keep the later one: remove or rename one of them")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_params(data: object, source: str = "params") -> Params:
    """Validate already-loaded YAML data; raise ParamsError with a readable message."""
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(_format_error(source, err)) from None


def load_params(path: str | Path) -> Params:
    """Read and validate a YAML parameter file."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ParamsError(f"params file {str(p)!r} does not exist; see params/lab.yaml for an example") from None
    except OSError as e:
        raise ParamsError(f"params file {str(p)!r} cannot be read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as e:
        raise ParamsError(f"params file {str(p)!r}: {e}") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"params file {str(p)!r} is not valid YAML: {e}") from None
    return parse_params(data, str(p))
