"""Corosync's own token default, read from a running corosync, against what the texts teach.

Notebook 03 and lib/hakit/profiles.py say which token and consensus corosync uses when corosync.conf
names none, and that the `seed` profile keeps exactly those. Here one lab node runs corosync alone
on a minimal corosync.conf without any timing line; its runtime values (`corosync-cmapctl`) must be
the figures both texts state (parsed from the prose), and the seed profile's. The test has a lab
of its own (fresh nodes, nothing running); the node's own corosync.conf is put back and corosync
stopped afterwards.
"""

from __future__ import annotations

import shlex

import pytest

import evidence
import statements

from hakit.profiles import SEED

pytestmark = pytest.mark.lab

NODE = "vm-node1"
CONF = "/etc/corosync/corosync.conf"
SAVED = "/etc/corosync/corosync.conf.hakit-test-saved"


def _minimal_conf(cluster: str, nodeid: int, address: str) -> str:
    # One node, knet, no crypto (so no authkey is read), and no token, consensus or coefficient line.
    return (f"totem {{\n  version: 2\n  cluster_name: {cluster}\n  transport: knet\n"
            "  crypto_cipher: none\n  crypto_hash: none\n}\n"
            f"nodelist {{\n  node {{\n    name: {NODE}\n    nodeid: {nodeid}\n    ring0_addr: {address}\n  }}\n}}\n"
            "quorum {\n  provider: corosync_votequorum\n}\n"
            "logging {\n  to_syslog: yes\n}\n")


def _runtime(lab, key: str) -> int:
    out = lab.ssh(NODE, ["corosync-cmapctl", "-g", f"runtime.config.totem.{key}"], check=True).stdout
    return int(out.rsplit("=", 1)[-1])


@pytest.fixture(scope="module")
def fresh_lab(labk_params, start_lab):
    """A lab of its own, fresh: no cluster runs on its nodes (the shared test labs may run one)."""
    lab = start_lab(labk_params)
    yield lab
    lab.down()


@pytest.fixture
def lone_corosync(fresh_lab):
    lab2 = fresh_lab
    node = lab2.params.node(NODE)
    conf = _minimal_conf("hakit-token-default", node.nodeid, str(node.private_ip))
    assert not [ln for ln in conf.splitlines() if ln.strip().startswith(("token", "consensus"))]
    lab2.ssh(NODE, ["sh", "-c", "systemctl is-active -q corosync && exit 1; exit 0"], check=True)  # not in use
    lab2.ssh(NODE, ["sh", "-c", f"test ! -e {SAVED} && {{ test ! -e {CONF} || cp -p {CONF} {SAVED}; }}"], check=True)
    try:
        lab2.ssh(NODE, ["sh", "-c", f"printf %s {shlex.quote(conf)} > {CONF}"], check=True)
        lab2.ssh(NODE, ["corosync", "-t"], check=True)
        lab2.ssh(NODE, ["systemctl", "start", "corosync"], check=True)
        evidence.wait_until("corosync answers corosync-cmapctl",
                            lambda: lab2.ssh(NODE, ["corosync-cmapctl", "-g", "runtime.config.totem.token"])
                            .returncode == 0, timeout=30)
        yield lab2
    finally:
        lab2.ssh(NODE, ["systemctl", "stop", "corosync"])
        lab2.ssh(NODE, ["sh", "-c", f"if test -e {SAVED}; then mv {SAVED} {CONF}; else rm -f {CONF}; fi"])
        lab2.ssh(NODE, ["systemctl", "reset-failed", "corosync"])


def test_corosync_runs_the_token_the_texts_call_its_default(lone_corosync):
    lab = lone_corosync
    version = lab.ssh(NODE, ["corosync", "-v"], check=True).stdout.splitlines()[0]
    seen = (_runtime(lab, "token"), _runtime(lab, "consensus"))
    print(f"\n{version.strip()}: runtime.config.totem.token={seen[0]}, consensus={seen[1]} (no timing in corosync.conf)")
    in_notebook = statements.stated_corosync_defaults(statements.notebook_text("03"))
    in_profiles = statements.stated_corosync_defaults(statements.profiles_text())
    assert in_notebook == {seen}, f"notebook 03 states {in_notebook}, corosync runs {seen}"
    assert in_profiles == {seen}, f"lib/hakit/profiles.py states {in_profiles}, corosync runs {seen}"
    assert (SEED.token, SEED.consensus) == seen, "the seed profile is taught as corosync's own default"
