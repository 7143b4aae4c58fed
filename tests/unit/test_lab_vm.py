"""The VM lab node's pure parts: params, network plan, qemu command line, image key, guest address file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hakit.lab.image import ImageSpec
from hakit.lab.net import plan_network
from hakit.lab.vm import VmPaths, guest_net_lines, mac_address, qemu_argv
from hakit.lab.vmimage import VM_EXTRA_PACKAGES, VmImage, VmImageSpec
from hakit.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]
BONDING = ROOT / "params/lab-bonding.yaml"


def test_lab_bonding_has_one_vm_node_and_one_container() -> None:
    p = load_params(BONDING)
    assert [p.lab.kind(n.name) for n in p.nodes] == ["vm", "container"]
    assert load_params(ROOT / "params/lab.yaml").lab.kinds == {}


def test_a_vm_node_always_gets_the_four_nics_on_taps_a_container_follows_links_mode() -> None:
    L = plan_network(load_params(BONDING), "bond-names")
    vm, ct = L.node("vm-node1"), L.node("vm-node2")
    assert vm.kind == "vm" and ct.kind == "container"
    assert [(ln.node_end, ln.host_end, ln.bridge, ln.address) for ln in vm.links] == [
        ("eth0", "hkb1pri0", "hkbpriv", "10.81.0.11/24"),
        ("eth1", "hkb1pri1", "hkbpriv", None),
        ("eth2", "hkb1pub0", "hkbpub", "10.81.1.11/24"),
        ("eth3", "hkb1pub1", "hkbpub", None),
    ]
    assert [ln.node_end for ln in ct.links] == ["bond0", "bond1"]


def _data() -> dict:
    return yaml.safe_load(BONDING.read_text())


def test_unknown_node_in_kinds_is_refused_with_the_valid_names() -> None:
    d = _data()
    d["lab"]["kinds"] = {"vm-nod1": "vm"}
    with pytest.raises(ParamsError) as e:
        parse_params(d, "x.yaml")
    assert "lab.kinds names 'vm-nod1', which is not a node; use node names: vm-node1, vm-node2" in str(e.value)


def test_unknown_kind_is_refused_naming_field_value_and_choices() -> None:
    d = _data()
    d["lab"]["kinds"] = {"vm-node1": "kvm"}
    with pytest.raises(ParamsError) as e:
        parse_params(d, "x.yaml")
    msg = str(e.value)
    assert "lab.kinds.vm-node1" in msg and "'container' or 'vm'" in msg and "'kvm'" in msg


def test_vm_memory_bounds() -> None:
    d = _data()
    d["lab"]["vm_memory_mib"] = 128
    with pytest.raises(ParamsError) as e:
        parse_params(d, "x.yaml")
    assert "lab.vm_memory_mib" in str(e.value) and "512" in str(e.value)


def test_vm_image_has_its_own_key_and_the_container_packages_plus_a_kernel() -> None:
    vm, ct = VmImageSpec(), ImageSpec()
    assert vm.key.startswith("bookworm-vm-") and vm.key != ct.key
    assert set(vm.packages) == set(ct.packages) | set(VM_EXTRA_PACKAGES)
    assert "linux-image-amd64" in vm.packages and "ifenslave" in vm.packages
    assert VmImageSpec(vm_recipe=vm.vm_recipe + 1).key != vm.key


def test_qemu_command_line_is_tcg_one_cpu_taps_only_no_user_networking(tmp_path: Path) -> None:
    p = load_params(BONDING)
    links = plan_network(p, "bond-names").node("vm-node1").links
    img = VmImage(tmp_path / "disk.ext4", tmp_path / "vmlinuz", tmp_path / "initrd.img")
    argv = qemu_argv("hkb-vm-node1", img, VmPaths(tmp_path / "n"), links, "hkb", "vm-node1", 896)
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg,tb-size=256"
    assert argv[argv.index("-smp") + 1] == "1" and argv[argv.index("-m") + 1] == "896"
    assert argv[argv.index("-name") + 1] == "guest=hkb-vm-node1"
    assert "-nodefaults" in argv and "net.ifnames=0" in joined
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == [
        f"tap,id=eth{k},ifname=hkb1{n}{j},script=no,downscript=no"
        for k, (n, j) in enumerate((("pri", 0), ("pri", 1), ("pub", 0), ("pub", 1)))
    ]
    assert "user" not in joined.split(",") and "-nic" not in argv and "hostfwd" not in joined
    assert f"unix:{tmp_path / 'n' / 'qmp.sock'},server=on,wait=off" in argv


def test_macs_are_stable_distinct_and_locally_administered() -> None:
    macs = {mac_address("hkb", "vm-node1", f"eth{k}") for k in range(4)}
    assert len(macs) == 4 and all(m.startswith("52:54:00:") for m in macs)
    assert mac_address("hkb", "vm-node1", "eth0") == mac_address("hkb", "vm-node1", "eth0")
    assert mac_address("hkb", "vm-node1", "eth0") != mac_address("hv", "vm-node1", "eth0")


def test_guest_gets_address_on_first_slave_of_each_pair_and_route_on_public() -> None:
    links = plan_network(load_params(BONDING), "bond-names").node("vm-node1").links
    assert guest_net_lines(links, "10.81.1.1") == (
        "addr eth0 10.81.0.11/24\nup eth1\naddr eth2 10.81.1.11/24\nup eth3\nroute eth2 10.81.1.1\n"
    )
