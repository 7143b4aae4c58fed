"""The lab fixtures: real nodes, brought up once and re-checked before each test.

The test labs are copies of the shipped params with their own lab id and
subnets, so running the tests never disturbs a lab brought up by `make demo`.
Where the lab cannot run, the tests skip with the reason; under CI they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from hakit.lab import Lab
from hakit.params import load_params

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("systemd-nspawn", "debootstrap", "ip", "nft", "ssh", "ssh-keygen")


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"missing tools: {', '.join(missing)} (run `make setup`)"
    return None


# HAKIT_TEST_RELEASE=trixie|bookworm runs the test labs derived from lab.yaml, lab-3node.yaml and
# lab-bonding.yaml on that Debian release instead of their own (lab-bookworm.yaml's lab stays bookworm).
RELEASE = os.environ.get("HAKIT_TEST_RELEASE") or None
if RELEASE not in (None, "trixie", "bookworm"):
    raise ValueError(f"HAKIT_TEST_RELEASE={RELEASE} is not a lab release; use trixie or bookworm (or leave it unset)")


# The failcount of a crashed Apache expires after this many seconds in the test labs (the shipped
# params say 60): the same failback, by the same mechanism, 40 s sooner in every trial that waits for it.
TEST_FAILURE_TIMEOUT = 20


def derived_params(tmp: Path, source: str, lab_id: str, net_from: str, net_to: str, cluster: str,
                   release: str | None = None, image: str = "ready") -> Path:
    """The shipped params file with another lab id, cluster name and subnets (and release, if given),
    and the failure timeout of the test labs (TEST_FAILURE_TIMEOUT).

    Test labs use the ready image (cluster packages installed: minutes faster) unless a test asks
    for bare nodes; `make demo` (params/lab.yaml) starts from bare ones."""
    text = (ROOT / "params" / source).read_text()
    text = text.replace(net_from, net_to)
    text = _with_failure_timeout(text, TEST_FAILURE_TIMEOUT)
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if release and s.startswith("release:"):
            continue  # given below, after the id
        if s.startswith("image:"):
            continue  # given below, after the id
        if s.startswith("id:"):
            line = line.replace(s.split("#")[0].strip(), f"id: {lab_id}")
            lines.append(line[: len(line) - len(line.lstrip())] + f"image: {image}")
            if release:
                lines += [line, line[: len(line) - len(line.lstrip())] + f"release: {release}"]
                continue
        if s.startswith("name: hakit-"):
            line = line.replace(s.split("#")[0].strip(), f"name: {cluster}")
        lines.append(line)
    out = tmp / f"test-{source}"
    out.write_text("\n".join(lines) + "\n")
    return out


def _with_failure_timeout(text: str, seconds: int) -> str:
    """``pacemaker.resources.failure_timeout`` set to ``seconds``: replaced where the file sets it, added
    (with the resources block if need be) where it relies on the default."""
    text, n = re.subn(r"(?m)^(\s+failure_timeout:)\s*[^#\n]*", rf"\g<1> {seconds}  ", text)
    if n:
        return text
    if re.search(r"(?m)^  resources:", text):
        return re.sub(r"(?m)^(  resources:.*\n)", rf"\g<1>    failure_timeout: {seconds}\n", text, count=1)
    # (a file without a pacemaker block, like lab-bonding.yaml, builds no resources: left as it is)
    return re.sub(r"(?m)^(pacemaker:.*\n)", rf"\g<1>  resources:\n    failure_timeout: {seconds}\n", text, count=1)


def _start(params_file: Path) -> Lab:
    reason = _lab_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the lab cannot start under CI: {reason}")
        pytest.skip(reason)
    lab = Lab(load_params(params_file), progress=lambda m: print(m, flush=True))
    lab.down()  # whatever an earlier, interrupted session left (maybe on another release): start fresh
    try:
        lab.up()
    except Exception as e:  # make the reason visible, then fail (never a silent skip)
        lab.down()  # a half-started lab leaves nothing behind either
        pytest.fail(f"lab up failed: {e}")
    return lab


# HAKIT_TEST_SLOT=1..9 gives a test run its own labs (ids, subnets), so several
# runs can share one machine; slot 0 (the default) is what `make test` uses.
# Under pytest-xdist (`make test` runs two workers) each worker takes the next slot: worker gw0 the
# given one, gw1 the one after it, so two workers never share a lab.
BASE_SLOT = int(os.environ.get("HAKIT_TEST_SLOT", "0"))
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SLOT = BASE_SLOT + WORKER
if not 0 <= SLOT <= 9:
    raise ValueError(f"HAKIT_TEST_SLOT={BASE_SLOT} with xdist worker {WORKER} gives slot {SLOT}; slots are 0..9")
LAB2_ID, LAB2_NET = ("ht", "10.79.") if SLOT == 0 else (f"h{SLOT}", f"10.{100 + 2 * SLOT}.")
LAB3_ID, LAB3_NET = ("ht3", "10.80.") if SLOT == 0 else (f"h{SLOT}t", f"10.{101 + 2 * SLOT}.")
# The VM lab (params/lab-bonding.yaml, one qemu VM node and one container): marker `vm`.
LABVM_ID, LABVM_NET = ("htb", "10.83.") if SLOT == 0 else (f"h{SLOT}b", f"10.{120 + SLOT}.")
VM_TOOLS = ("qemu-system-x86_64", "qemu-img", "mke2fs")
# The all-VM lab (params/lab-vm.yaml, every node a qemu VM: real bonds, fencing): marker `vm`.
LABV_ID, LABV_NET = ("htv", "10.89.") if SLOT == 0 else (f"h{SLOT}v", f"10.{160 + SLOT}.")
# The Debian 12 lab (params/lab-bookworm.yaml, tests/lab/test_bookworm.py): the other labs run Debian 13.
LABX_ID, LABX_NET = ("htx", "10.85.") if SLOT == 0 else (f"h{SLOT}x", f"10.{130 + SLOT}.")
# Bare nodes (lab.image bare, as `make demo`): stage 00 installs from the lab's package mirror.
LABE_ID, LABE_NET = ("hte", "10.87.") if SLOT == 0 else (f"h{SLOT}e", f"10.{140 + SLOT}.")
# A lab of its own for one lone corosync on a node with nothing else running (tests/lab/test_token_default.py).
LABK_ID, LABK_NET = ("htk", "10.91.") if SLOT == 0 else (f"h{SLOT}k", f"10.{180 + SLOT}.")
# The article's cluster as it was: no fencing (tests/lab/test_unfenced_split_brain.py).
LABU_ID, LABU_NET = ("htu", "10.88.") if SLOT == 0 else (f"h{SLOT}u", f"10.{150 + SLOT}.")
# Apache cloned on every node (pacemaker.layout cloned-apache, tests/lab/test_cloned_apache.py).
LABC_ID, LABC_NET = ("htc", "10.90.") if SLOT == 0 else (f"h{SLOT}c", f"10.{170 + SLOT}.")
# A quorum device on a third host running corosync-qnetd (params/lab-qdevice.yaml, tests/lab/test_qdevice.py).
LABQ_ID, LABQ_NET = ("htq", "10.92.") if SLOT == 0 else (f"h{SLOT}q", f"10.{190 + SLOT}.")
# Grow 2 -> 3 and shrink 3 -> 2 on a running cluster (tests/lab/test_grow_shrink.py); 10.93. is params/lab-qdevice.yaml's.
LABG_ID, LABG_NET = ("htg", "10.94.") if SLOT == 0 else (f"h{SLOT}g", f"10.{200 + SLOT}.")
# The failover ladder's own lab (`hakit bench failover --ladder`, tests/lab/test_ladder_run.py): rebuilt per rung.
LABL_ID, LABL_NET = ("htl", "10.95.") if SLOT == 0 else (f"h{SLOT}l", f"10.{210 + SLOT}.")


@pytest.fixture(scope="session")
def lab2_params(tmp_path_factory) -> Path:
    return derived_params(tmp_path_factory.mktemp("params"), "lab.yaml", LAB2_ID, "10.77.", LAB2_NET, "hakit-test", RELEASE)


@pytest.fixture(scope="session")
def labq_params(tmp_path_factory) -> Path:
    """params/lab-qdevice.yaml: two nodes and a quorum device (the lab's qnetd host)."""
    return derived_params(tmp_path_factory.mktemp("paramsq"), "lab-qdevice.yaml", LABQ_ID, "10.93.", LABQ_NET,
                          "hakit-testq", RELEASE)


@pytest.fixture(scope="session")
def labl_params(tmp_path_factory) -> Path:
    """params/lab-qdevice.yaml on the ladder's own lab id and subnets."""
    return derived_params(tmp_path_factory.mktemp("paramsl"), "lab-qdevice.yaml", LABL_ID, "10.93.", LABL_NET,
                          "hakit-testl", RELEASE)


@pytest.fixture(scope="session")
def lab3_params(tmp_path_factory) -> Path:
    return derived_params(tmp_path_factory.mktemp("params3"), "lab-3node.yaml", LAB3_ID, "10.78.", LAB3_NET, "hakit-test3", RELEASE)


@pytest.fixture(scope="session")
def labx_params(tmp_path_factory) -> Path:
    return derived_params(
        tmp_path_factory.mktemp("paramsx"), "lab-bookworm.yaml", LABX_ID, "10.86.", LABX_NET, "hakit-testx"
    )


@pytest.fixture(scope="session")
def labe_params(tmp_path_factory) -> Path:
    return derived_params(tmp_path_factory.mktemp("paramse"), "lab.yaml", LABE_ID, "10.77.", LABE_NET, "hakit-teste",
                          RELEASE, image="bare")


@pytest.fixture(scope="session")
def labk_params(tmp_path_factory) -> Path:
    return derived_params(tmp_path_factory.mktemp("paramsk"), "lab.yaml", LABK_ID, "10.77.", LABK_NET, "hakit-testk",
                          RELEASE)


@pytest.fixture(scope="session")
def labu_params(tmp_path_factory) -> Path:
    """params/lab.yaml as the article had it: stonith_enabled false, no fence devices (and no BMCs)."""
    f = derived_params(tmp_path_factory.mktemp("paramsu"), "lab.yaml", LABU_ID, "10.77.", LABU_NET,
                       "hakit-testu", RELEASE)
    lines = [ln.replace("stonith_enabled: true", "stonith_enabled: false") for ln in f.read_text().splitlines()
             if not ln.strip().startswith(("fencing:", "agent: fence_", "power_wait_s:"))]
    f.write_text("\n".join(lines) + "\n")
    return f


@pytest.fixture(scope="session")
def labc_params(tmp_path_factory) -> Path:
    """params/lab.yaml with Apache cloned on every node (``pacemaker.layout: cloned-apache``)."""
    f = derived_params(tmp_path_factory.mktemp("paramsc"), "lab.yaml", LABC_ID, "10.77.", LABC_NET,
                       "hakit-testc", RELEASE)
    text, n = re.subn(r"(?m)^(  layout:)\s*article\b", r"\g<1> cloned-apache", f.read_text(), count=1)
    assert n == 1, "params/lab.yaml sets no pacemaker.layout to replace"
    f.write_text(text)
    return f


def with_third_node(two_node_file: Path, out: Path) -> Path:
    """A copy of a two-node params file (params/lab.yaml's layout) with ``vm-node3`` added (nodeid 3, .13
    on both networks): the same lab, cluster and subnets, one node more."""
    text = two_node_file.read_text()
    m = re.search(r"(?m)^  - name: vm-node2\n(?:    .*\n)+", text)
    assert m, f"{two_node_file} has no vm-node2 entry to copy"
    third = m.group(0).replace("vm-node2", "vm-node3").replace("nodeid: 2", "nodeid: 3")
    third = re.sub(r"(\d+\.\d+\.\d+)\.12\b", r"\g<1>.13", third)
    out.write_text(text[: m.end()] + third + text[m.end():])
    return out


@pytest.fixture(scope="session")
def labg_params(tmp_path_factory) -> tuple[Path, Path]:
    """The grow/shrink lab: params/lab.yaml on its own lab id and subnets (two nodes), and the same
    params with a third node (vm-node3)."""
    d = tmp_path_factory.mktemp("paramsg")
    two = derived_params(d, "lab.yaml", LABG_ID, "10.77.", LABG_NET, "hakit-testg", RELEASE)
    return two, with_third_node(two, d / "test-lab-grown.yaml")


@pytest.fixture(scope="session")
def _labx_session(labx_params):
    """The bookworm test lab, started once; `lab down` at the end of the session."""
    lab = _start(labx_params)
    yield lab
    lab.down()


@pytest.fixture(scope="session")
def _lab2_session(lab2_params):
    lab = _start(lab2_params)
    yield lab
    lab.down()


@pytest.fixture
def lab2(_lab2_session: Lab) -> Lab:
    """The two-node test lab, up (a test before may have taken it down or cut a node)."""
    _lab2_session.up()
    return _lab2_session


@pytest.fixture(scope="session")
def start_lab():
    """Bring up a lab from a params file (skips or fails with the reason, as above); session-scoped, so
    module fixtures may use it too (test modules cannot import conftest: tests/unit has one too)."""
    return _start


@pytest.fixture(scope="session")
def labvm_params(tmp_path_factory) -> Path:
    return derived_params(
        tmp_path_factory.mktemp("paramsvm"), "lab-bonding.yaml", LABVM_ID, "10.81.", LABVM_NET, "hakit-testvm", RELEASE
    )


@pytest.fixture(scope="session")
def labv_params(tmp_path_factory) -> Path:
    return derived_params(
        tmp_path_factory.mktemp("paramsv"), "lab-vm.yaml", LABV_ID, "10.82.", LABV_NET, "hakit-testv", RELEASE
    )


def _require_vm_tools() -> None:
    """Skip (fail under CI) when qemu and friends are missing."""
    missing = [t for t in VM_TOOLS if not shutil.which(t)]
    if missing and not _lab_unavailable():
        reason = f"missing tools for the VM node: {', '.join(missing)} (run `make setup VM=1`; `make test` does)"
        if os.environ.get("CI"):
            pytest.fail(f"the VM lab cannot start under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def start_vm_lab():
    """Like start_lab, for params with VM nodes: checks the VM tooling first."""
    def start(params_file: Path) -> Lab:
        _require_vm_tools()
        return _start(params_file)
    return start


@pytest.fixture(scope="session")
def _labvm_session(labvm_params):
    _require_vm_tools()
    lab = _start(labvm_params)
    yield lab
    lab.down()


@pytest.fixture
def labvm(_labvm_session: Lab) -> Lab:
    """The VM test lab (one qemu VM node, one container), up; booted once per session."""
    _labvm_session.up()
    return _labvm_session


@pytest.fixture(scope="session")
def _cluster2_state(tmp_path_factory) -> dict:
    return {"folder": None, "runs": tmp_path_factory.mktemp("cluster-runs")}


@pytest.fixture
def cluster2(_lab2_session: Lab, lab2_params: Path, _cluster2_state: dict):
    """The two-node lab with runbooks 01-06 applied headless, rebuilt from a fresh lab when needed.

    Yields (lab, run folder of the build). Built once per session unless a test
    before left the cluster unhealthy (or another test took the lab down).
    """
    from hakit import notebook
    from hakit.failover.runner import NotSettled, settle
    from hakit.run import run

    lab = _lab2_session
    if _cluster2_state["folder"] is not None:
        lab.up()
        params = lab.params
        hosts = notebook.connect_nodes(params)
        try:
            settle(hosts, params, timeout_s=60)
            return lab, _cluster2_state["folder"]
        except NotSettled:
            pass
        finally:
            for h in hosts.values():
                h.close()
    lab.down()
    lab.up()
    _cluster2_state["folder"] = run(str(lab2_params), stages="1-6", out_root=_cluster2_state["runs"], html=False)
    return lab, _cluster2_state["folder"]
