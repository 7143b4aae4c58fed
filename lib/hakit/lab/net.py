"""Host-side lab networking: bridges, per-node network namespaces, veth links, nftables.

Everything here is named from the lab id, so teardown can find exactly what the
lab made. Nothing is routed: an nftables table drops any forwarding that enters
or leaves a lab bridge, and the gateway lives in its own namespace with no uplink.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..localcmd import run
from ..params import Params

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Link:
    """One cable between a node and a lab bridge."""

    host_end: str  # veth end on the host, enslaved to the bridge
    node_end: str  # interface name inside the node
    bridge: str
    network: str  # "private" or "public"
    address: str | None  # CIDR on the node end, if the lab configures one


# A link's role -> the network that carries it: corosync ring0 runs on the private network, ring1 on the public one.
ROLES = {"ring0": "private", "private": "private", "ring1": "public", "public": "public"}


@dataclass(frozen=True)
class NodeNet:
    name: str
    netns: str
    links: tuple[Link, ...]
    gateway: str | None
    kind: str = "container"  # or "vm": a qemu VM whose NICs are taps, its addresses set by the guest
    bonds: tuple[tuple[str, str], ...] = ()  # (network, bond name from the params), e.g. ("private", "bond0")

    @property
    def public_dev(self) -> str | None:
        """The interface that carries the node's public address (and its default route)."""
        return next((ln.node_end for ln in self.links if ln.network == "public" and ln.address), None)

    def cables(self, name: str) -> tuple[Link, ...]:
        """The cables one name stands for, the same names in every layout: a role (ring0 or private,
        ring1 or public) or a bond name of the params (bond0, bond1) gives every cable of that
        network (one plain link, or both NICs of the pair); an interface of the node gives its own
        cable (eth2 alone, in the four-NIC layout)."""
        network = ROLES.get(name) or dict((b, n) for n, b in self.bonds).get(name)
        if network is None:
            for ln in self.links:
                if ln.node_end == name:
                    return (ln,)
            raise KeyError(f"node {self.name} has no link {name!r}; {self.link_names()}")
        return tuple(ln for ln in self.links if ln.network == network)

    def link_names(self) -> str:
        """What `cables` accepts on this node, in words."""
        by_net = {n: b for n, b in self.bonds}
        roles = ", ".join(
            f"{role} or {net}" + (f" ({by_net[net]})" if net in by_net else "")
            for role, net in (("ring0", "private"), ("ring1", "public"))
        )
        ifaces = ", ".join(ln.node_end for ln in self.links)
        return f"name a role: {roles}; or an interface: {ifaces}"


@dataclass(frozen=True)
class LabNet:
    """The whole planned network of one lab (pure data, computed from params)."""

    lab_id: str
    bridges: dict[str, str]  # network -> bridge name
    host_addresses: dict[str, str]  # bridge -> CIDR of this machine on it
    gw_netns: str
    gw_host_end: str
    gw_address: str
    nft_table: str
    nodes: tuple[NodeNet, ...] = field(default_factory=tuple)
    links_mode: str = "bond-names"

    def node(self, name: str) -> NodeNet:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no lab node named {name!r}; nodes are: {', '.join(n.name for n in self.nodes)}")


def bonding_available() -> tuple[bool, str]:
    """Whether this kernel can make bonds: shown in `lab status`, and required by `lab.links: slaves`
    (the layout itself never depends on it)."""
    if Path("/sys/module/bonding").exists():
        return True, "bonding driver loaded"
    release = os.uname().release
    moddir = Path("/lib/modules") / release
    if any(moddir.glob("kernel/drivers/net/bonding/bonding.ko*")):
        return True, f"bonding module available for kernel {release}"
    return False, f"kernel {release} has no bonding driver (no /sys/module/bonding, no bonding.ko)"


def plan_network(params: Params, links_mode: str) -> LabNet:
    """Name every bridge, namespace and veth of the lab; pure."""
    assert params.lab is not None
    lab = params.lab
    lid = lab.id
    nets = params.networks
    bridges = {"private": f"{lid}priv", "public": f"{lid}pub"}
    host_addresses = {
        bridges["private"]: f"{lab.host_private_ip}/{nets.private.subnet.prefixlen}",
        bridges["public"]: f"{lab.host_public_ip}/{nets.public.subnet.prefixlen}",
    }
    nodes = []
    for i, node in enumerate(params.nodes, start=1):
        kind = lab.kind(node.name)
        node_mode = "slaves" if kind == "vm" else links_mode  # a VM has its own kernel: always the four NICs
        links: list[Link] = []
        for netname, net, ip in (
            ("private", nets.private, node.private_ip),
            ("public", nets.public, node.public_ip),
        ):
            cidr = f"{ip}/{net.subnet.prefixlen}"
            if node_mode == "slaves":
                for k, slave in enumerate(net.slaves):
                    links.append(
                        Link(
                            host_end=f"{lid}{i}{netname[:3]}{k}",
                            node_end=slave,
                            bridge=bridges[netname],
                            network=netname,
                            # Before stage 1 bonds them, the address sits on the first slave.
                            address=cidr if k == 0 else None,
                        )
                    )
            else:
                links.append(
                    Link(
                        host_end=f"{lid}{i}{netname[:4]}",
                        node_end=net.bond,
                        bridge=bridges[netname],
                        network=netname,
                        address=cidr,
                    )
                )
        nodes.append(
            NodeNet(
                name=node.name,
                netns=f"{lid}-{node.name}",
                links=tuple(links),
                gateway=str(nets.public.gateway),
                kind=kind,
                bonds=(("private", nets.private.bond), ("public", nets.public.bond)),
            )
        )
    qd = params.quorum_device
    if qd is not None:  # the lab's qnetd host: one cable on the public network, where the nodes reach it
        nodes.append(
            NodeNet(
                name=qd.host,
                netns=f"{lid}-{qd.host}",
                links=(Link(host_end=f"{lid}qpub", node_end="eth0", bridge=bridges["public"], network="public",
                            address=f"{qd.address}/{nets.public.subnet.prefixlen}"),),
                gateway=str(nets.public.gateway),
            )
        )
    return LabNet(
        lab_id=lid,
        bridges=bridges,
        host_addresses=host_addresses,
        gw_netns=f"{lid}-gw",
        gw_host_end=f"{lid}gw",
        gw_address=f"{nets.public.gateway}/{nets.public.subnet.prefixlen}",
        nft_table=f"hakit_{lid}",
        nodes=tuple(nodes),
        links_mode=links_mode,
    )


# ----------------------------------------------------------------- queries


def link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(argv, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split()]


def link_is_up(name: str) -> bool:
    out = run(["ip", "-j", "link", "show", "dev", name], check=False).stdout
    if not out.strip():
        return False
    return "UP" in json.loads(out)[0].get("flags", [])


def conflicting_routes(subnets: list[ipaddress.IPv4Network], own_devices: set[str]) -> list[str]:
    """Host routes that overlap the lab's subnets and are not the lab's own bridges."""
    out = run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False).stdout or "[]"
    bad = []
    for r in json.loads(out):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") in own_devices:
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version != 4 or net.prefixlen == 0:
            continue
        if any(net.overlaps(s) for s in subnets):
            bad.append(f"{dst} dev {r.get('dev')}")
    return bad


# ----------------------------------------------------------------- changes


def ensure_bridge(name: str, cidr: str) -> None:
    if not link_exists(name):
        run(["ip", "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    addrs = run(["ip", "-j", "addr", "show", "dev", name]).stdout
    if cidr.split("/")[0] not in addrs:
        run(["ip", "addr", "add", cidr, "dev", name])
    run(["ip", "link", "set", name, "up"])


def ensure_netns(name: str) -> None:
    if not netns_exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def ensure_veth(host_end: str, node_end: str, netns: str, bridge: str, cidr: str | None) -> None:
    """A veth pair: one end on the bridge, the other inside the namespace under its node name."""
    if not link_exists(node_end, netns):
        if link_exists(host_end):
            run(["ip", "link", "del", host_end])
        run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end, "netns", netns])
    run(["ip", "link", "set", host_end, "master", bridge])
    run(["ip", "link", "set", host_end, "up"])
    ensure_node_side(netns, node_end, cidr)


def ensure_node_side(netns: str, dev: str, cidr: str | None) -> None:
    """The node's end of a link: its address (if the lab sets one) and the link up."""
    if cidr and f'"{cidr.split("/")[0]}"' not in run(["ip", "-n", netns, "-j", "addr", "show", "dev", dev]).stdout:
        run(["ip", "-n", netns, "addr", "add", cidr, "dev", dev])
    run(["ip", "-n", netns, "link", "set", dev, "up"])


def power_off_links(netns: str, node_ends: list[str]) -> None:
    """What a powered-off machine's NICs look like: no carrier and no addresses.

    The namespace outlives the node's processes, and its kernel would go on
    answering ARP for every address left on it (the VIP included).
    """
    for dev in node_ends:
        if link_exists(dev, netns):
            run(["ip", "-n", netns, "addr", "flush", "dev", dev])
            run(["ip", "-n", netns, "link", "set", dev, "down"])


def power_on_links(netns: str, links: list[tuple[str, str | None]], gateway: str | None, gw_dev: str | None) -> None:
    """Bring a node's NICs back as the lab set them up: its own address on each, link up, default route."""
    for dev, cidr in links:
        if link_exists(dev, netns):
            ensure_node_side(netns, dev, cidr)
    if gateway and gw_dev:
        ensure_default_route(netns, gateway, gw_dev)


def ensure_default_route(netns: str, gateway: str, dev: str) -> None:
    run(["ip", "-n", netns, "route", "replace", "default", "via", gateway, "dev", dev])


def ensure_nft_guard(table: str, bridges: list[str]) -> None:
    """Drop anything the host would forward into or out of a lab bridge."""
    names = ", ".join(f'"{b}"' for b in bridges)
    # Where br_netfilter is loaded, frames switched inside one bridge also pass this
    # hook, with the bridge as both in and out interface: those stay allowed.
    same = "".join(f'    iifname "{b}" oifname "{b}" accept\n' for b in bridges)
    rules = (
        f"table inet {table} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f"{same}"
        f"    iifname {{ {names} }} drop\n"
        f"    oifname {{ {names} }} drop\n"
        "  }\n"
        "}\n"
    )
    delete_nft_table(table)
    run(["nft", "-f", "-"], input=rules)


def delete_nft_table(table: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    if run(prefix + ["nft", "list", "table", "inet", table], check=False).returncode == 0:
        run(prefix + ["nft", "delete", "table", "inet", table])


def set_link(name: str, up: bool) -> None:
    run(["ip", "link", "set", name, "up" if up else "down"])


def block_address(netns: str, address: str, blocked: bool) -> None:
    """Make a namespace drop (or pass again) every packet from and to one address: the gateway
    ignoring a node, or a node cut off from its peers. One nft table per namespace."""
    table = "hakit_cut"
    prefix = ["ip", "netns", "exec", netns]
    if run(prefix + ["nft", "list", "table", "inet", table], check=False).returncode != 0:
        run(
            prefix + ["nft", "-f", "-"],
            input=(
                f"table inet {table} {{\n"
                "  set cut { type ipv4_addr; }\n"
                "  chain input { type filter hook input priority 0; policy accept; ip saddr @cut drop; }\n"
                "  chain output { type filter hook output priority 0; policy accept; ip daddr @cut drop; }\n"
                "}\n"
            ),
        )
    verb = "add" if blocked else "delete"
    # Restoring an address that was never cut is not an error; failing to cut one is.
    run(prefix + ["nft", verb, "element", "inet", table, "cut", f"{{ {address} }}"], check=blocked)


def blocked_addresses(netns: str) -> list[str]:
    r = run(["ip", "netns", "exec", netns, "nft", "-j", "list", "set", "inet", "hakit_cut", "cut"], check=False)
    if r.returncode != 0:
        return []
    out: list[str] = []
    for item in json.loads(r.stdout).get("nftables", []):
        for e in item.get("set", {}).get("elem", []) or []:
            out.append(str(e))
    return out


def delete_link(name: str) -> None:
    """Delete a link; one that vanished meanwhile is fine (the kernel removes a veth's
    host end by itself, asynchronously, once its namespace is gone)."""
    r = run(["ip", "link", "del", name], check=False)
    if r.returncode != 0 and link_exists(name):
        run(["ip", "link", "del", name])


def delete_netns(name: str) -> None:
    r = run(["ip", "netns", "del", name], check=False)
    if r.returncode != 0 and netns_exists(name):
        run(["ip", "netns", "del", name])
