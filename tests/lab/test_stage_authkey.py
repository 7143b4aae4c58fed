"""Stage 2 authkey on real lab nodes: one key everywhere, root-only, idempotent, never shown.

The tests run in file order on one freshly created lab: the first finds no key
anywhere, later ones build on the key the earlier ones installed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import papermill
import pytest

from hakit import notebook
from hakit.lab import Lab
from hakit.params import Params, load_params
from hakit.remote import Host
from hakit.stages import authkey as stage
from hakit.stages import driver
from hakit.stages.authkey import AUTHKEY, COPY, FIX, GENERATE

pytestmark = pytest.mark.lab

FIRST, SECOND = "vm-node1", "vm-node2"


@pytest.fixture(scope="module")
def fresh(_lab2_session: Lab) -> Lab:
    """The two-node lab, recreated from its image so no node has a key yet."""
    _lab2_session.down()
    _lab2_session.up()
    return _lab2_session


@pytest.fixture(scope="module")
def params(fresh: Lab) -> Params:
    return fresh.params


@pytest.fixture(scope="module")
def hosts(fresh: Lab, params: Params) -> Iterator[dict[str, Host]]:
    hs = notebook.connect_nodes(params)
    yield hs
    for h in hs.values():
        h.close()


def sh(lab: Lab, node: str, cmd: str) -> str:
    r = lab.ssh(node, ["sh", "-c", cmd], timeout=30)
    assert r.returncode == 0, f"{node}: {cmd}: {r.stderr}"
    return r.stdout.strip()


def key_digest(lab: Lab, node: str) -> str:
    """sha256 of the key bytes as read over SSH here (so asserts never print the key itself)."""
    return hashlib.sha256(base64.b64decode(sh(lab, node, f"base64 -w0 {AUTHKEY}"))).hexdigest()


def perms(lab: Lab, node: str) -> str:
    return sh(lab, node, f"stat -c '%U:%G %a' {AUTHKEY}")


def converge(hosts: dict[str, Host], params: Params, rotate_key: bool = False):
    p = stage.plan(params, stage.gather(hosts, params), rotate_key=rotate_key)
    return p, driver.apply(p, hosts, dry_run=False)


def test_dry_run_on_a_fresh_lab_plans_a_key_and_touches_nothing(fresh, params, hosts):
    facts = stage.gather(hosts, params)
    assert [k.exists for k in facts.nodes.values()] == [False, False]
    p = stage.plan(params, facts)
    assert {c.node: c.action for c in p.changes} == {FIRST: GENERATE, SECOND: COPY}
    result = driver.apply(p, hosts, dry_run=True)
    assert [(o.outcome, "dry run" in o.detail) for o in result.outcomes] == [("not applied", True)] * 2
    assert not any(k.exists for k in stage.gather(hosts, params).nodes.values())
    assert not stage.verify(hosts, params).ok


def test_apply_installs_one_key_root_only_on_every_node(fresh, params, hosts):
    _, result = converge(hosts, params)
    assert [o.outcome for o in result.outcomes] == ["changed", "changed"]
    assert key_digest(fresh, FIRST) == key_digest(fresh, SECOND)
    assert perms(fresh, FIRST) == perms(fresh, SECOND) == "root:root 400"
    assert sh(fresh, FIRST, f"stat -c %s {AUTHKEY}") == "256"
    for node in (FIRST, SECOND):
        assert sh(fresh, node, "ls -A /etc/corosync | grep -c hakit || true") == "0", "temporary file left behind"
    v = stage.verify(hosts, params)
    assert v.ok, str(v)


def test_second_run_changes_nothing_and_says_why(fresh, params, hosts):
    before = key_digest(fresh, FIRST)
    p, result = converge(hosts, params)
    assert p.empty
    assert [o.outcome for o in result.outcomes] == ["unchanged", "unchanged"]
    assert p.no_change[SECOND] == f"same key (sha256 {before[:12]}…) already installed, root:root 0400"
    assert key_digest(fresh, FIRST) == key_digest(fresh, SECOND) == before


def test_a_loosened_mode_is_fixed_on_that_node_only(fresh, params, hosts):
    before = key_digest(fresh, FIRST)
    sh(fresh, SECOND, f"chmod 644 {AUTHKEY}")
    p, result = converge(hosts, params)
    assert {c.node: c.action for c in p.changes} == {SECOND: FIX}
    assert (result.outcome(FIRST).outcome, result.outcome(SECOND).outcome) == ("unchanged", "changed")
    assert perms(fresh, SECOND) == "root:root 400"
    assert key_digest(fresh, SECOND) == before
    assert stage.verify(hosts, params).ok


def test_a_foreign_key_on_one_node_is_replaced_by_the_first_nodes(fresh, params, hosts):
    before = key_digest(fresh, FIRST)
    sh(fresh, SECOND, f"corosync-keygen -k {AUTHKEY} >/dev/null 2>&1")
    assert key_digest(fresh, SECOND) != before
    assert not stage.verify(hosts, params).ok
    p, _ = converge(hosts, params)
    assert {c.node: c.action for c in p.changes} == {SECOND: COPY}
    assert key_digest(fresh, SECOND) == key_digest(fresh, FIRST) == before


def test_rotate_replaces_the_key_on_every_node(fresh, params, hosts):
    before = key_digest(fresh, FIRST)
    p, result = converge(hosts, params, rotate_key=True)
    assert any("cluster-wide" in n for n in p.notes)
    assert [o.outcome for o in result.outcomes] == ["changed", "changed"]
    after = key_digest(fresh, FIRST)
    assert after != before and key_digest(fresh, SECOND) == after
    assert perms(fresh, FIRST) == perms(fresh, SECOND) == "root:root 400"
    assert stage.verify(hosts, params).ok


def test_the_notebook_makes_and_copies_the_key_without_ever_showing_it(fresh, lab2_params: Path, root: Path, tmp_path):
    for node in (FIRST, SECOND):
        sh(fresh, node, f"rm -f {AUTHKEY}")
    def run(out: Path, dry_run: bool) -> None:
        papermill.execute_notebook(
            str(root / "notebooks" / "02_authkey.ipynb"),
            str(out),
            parameters=dict(params_file=str(lab2_params), dry_run=dry_run),
            cwd=str(root),
            progress_bar=False,
        )

    run(tmp_path / "dry.ipynb", dry_run=True)  # failing checks are shown, not raised, in a dry run
    assert sh(fresh, FIRST, f"test -e {AUTHKEY} && echo yes || echo no") == "no"
    out = tmp_path / "02_authkey.ipynb"
    run(out, dry_run=False)
    key = base64.b64decode(sh(fresh, FIRST, f"base64 -w0 {AUTHKEY}"))
    assert len(key) == 256 and hashlib.sha256(key).hexdigest() == key_digest(fresh, SECOND)
    blob = out.read_bytes()
    forms = {
        "raw bytes": key,
        "hex": key.hex().encode(),
        "HEX": key.hex().upper().encode(),
        "base64": base64.b64encode(key),
        "base64 (url-safe)": base64.urlsafe_b64encode(key),
        "repr of the bytes": repr(key)[2:-1].encode(),
    }
    leaked = [name for name, form in forms.items() if form in blob]
    assert leaked == [], f"the key appears in the executed notebook as: {', '.join(leaked)}"
    # the run did show the outcome, by short digest
    assert hashlib.sha256(key).hexdigest()[:12].encode() in blob
    assert b"generated new key" in blob


def test_three_nodes_all_get_the_same_key(start_lab, lab3_params: Path):
    lab3 = start_lab(lab3_params)
    hs: dict[str, Host] = {}
    try:
        p3 = load_params(lab3_params)
        assert len(p3.nodes) == 3
        hs = notebook.connect_nodes(p3)
        converge(hs, p3)
        v = stage.verify(hs, p3)
        assert v.ok, str(v)
        digests = {key_digest(lab3, n.name) for n in p3.nodes}
        assert len(digests) == 1
        assert {perms(lab3, n.name) for n in p3.nodes} == {"root:root 400"}
        again, _ = converge(hs, p3)
        assert again.empty
    finally:
        for h in hs.values():
            h.close()
        lab3.down()
