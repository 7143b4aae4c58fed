"""Stage 2 authkey, pure parts: probe output in -> facts, facts in -> plan out."""

from __future__ import annotations

import pytest

from hakit.params import Params
from hakit.stages import authkey
from hakit.stages.authkey import COPY, FIX, GENERATE, AuthkeyError, AuthkeyFacts, NodeKey

A = "a" * 64
B = "b" * 64


def key(node: str, digest: str | None = A, owner: str = "root:root", mode: int = 0o400, **kw) -> NodeKey:
    """A node's facts; digest None means no key file."""
    base = dict(keygen=True, corosync_active=False)
    base.update(kw)
    if digest is None:
        return NodeKey(node, kind=base.pop("kind", "none"), **base)
    return NodeKey(node, kind="file", sha256=digest, owner=owner, mode=mode, size=256, **base)


def facts(*keys: NodeKey) -> AuthkeyFacts:
    return AuthkeyFacts({k.node: k for k in keys})


def actions(plan) -> dict[str, str]:
    return {c.node: c.action for c in plan.changes}


def test_no_key_anywhere_generates_on_the_first_node_and_copies_to_the_others(lab3: Params):
    p = authkey.plan(lab3, facts(*(key(n.name, None) for n in lab3.nodes)))
    first, *others = [n.name for n in lab3.nodes]
    assert actions(p) == {first: GENERATE, **{n: COPY for n in others}}
    assert not p.no_change and not p.not_applicable and not p.notes


def test_same_key_everywhere_root_only_changes_nothing_and_says_why(lab: Params):
    p = authkey.plan(lab, facts(key("vm-node1"), key("vm-node2")))
    assert p.empty
    assert p.no_change["vm-node2"] == "same key (sha256 aaaaaaaaaaaa…) already installed, root:root 0400"
    assert "vm-node1" in p.no_change


@pytest.mark.parametrize("other", [key("vm-node2", None), key("vm-node2", B)])
def test_a_missing_or_different_key_on_another_node_is_replaced_by_a_copy(lab: Params, other: NodeKey):
    p = authkey.plan(lab, facts(key("vm-node1"), other))
    assert actions(p) == {"vm-node2": COPY}
    assert "vm-node1" in p.no_change


@pytest.mark.parametrize("owner,mode", [("root:root", 0o644), ("hacluster:haclient", 0o400), ("root:root", 0o600)])
def test_wrong_owner_or_mode_with_the_same_key_only_fixes_the_mode(lab: Params, owner: str, mode: int):
    p = authkey.plan(lab, facts(key("vm-node1"), key("vm-node2", owner=owner, mode=mode)))
    assert actions(p) == {"vm-node2": FIX}
    readable = "others could read it" in p.for_node("vm-node2")[0].reason
    assert readable == bool(mode & 0o077)


def test_wrong_mode_on_the_first_node_is_fixed_there_and_others_stay(lab: Params):
    p = authkey.plan(lab, facts(key("vm-node1", mode=0o644), key("vm-node2")))
    assert actions(p) == {"vm-node1": FIX}
    assert "vm-node2" in p.no_change


def test_first_node_without_key_generates_a_new_one_and_warns_about_replacing_others(lab3: Params):
    n1, n2, n3 = [n.name for n in lab3.nodes]
    p = authkey.plan(lab3, facts(key(n1, None), key(n2, A), key(n3, None)))
    assert actions(p) == {n1: GENERATE, n2: COPY, n3: COPY}
    assert len(p.notes) == 1 and n2 in p.notes[0] and "replaces" in p.notes[0]
    assert n3 not in p.notes[0]


def test_rotate_replaces_the_key_everywhere_and_warns_to_restart_all_nodes(lab3: Params):
    p = authkey.plan(lab3, facts(*(key(n.name) for n in lab3.nodes)), rotate_key=True)
    first, *others = [n.name for n in lab3.nodes]
    assert actions(p) == {first: GENERATE, **{n: COPY for n in others}}
    assert not p.no_change
    assert any("restart corosync cluster-wide" in n and "ALL nodes" in n for n in p.notes)


def test_key_changing_under_a_running_corosync_is_pointed_out(lab: Params):
    p = authkey.plan(lab, facts(key("vm-node1"), key("vm-node2", B, corosync_active=True)))
    assert actions(p) == {"vm-node2": COPY}
    assert any("vm-node2" in n and "restart" in n.lower() for n in p.notes)


def test_a_non_file_at_the_key_path_is_not_touched(lab: Params):
    p = authkey.plan(lab, facts(key("vm-node1"), key("vm-node2", None, kind="symlink")))
    assert p.empty
    assert "symlink" in p.not_applicable["vm-node2"]


def test_without_corosync_on_the_first_node_nothing_is_planned(lab: Params):
    p = authkey.plan(lab, facts(key("vm-node1", None, keygen=False), key("vm-node2", None)))
    assert p.empty
    assert "apt-get install corosync" in p.not_applicable["vm-node1"]
    assert "vm-node1" in p.not_applicable["vm-node2"]


def test_plan_refuses_facts_for_other_nodes(lab: Params):
    with pytest.raises(AuthkeyError, match="vm-node2.*gather"):
        authkey.plan(lab, facts(key("vm-node1")))


def test_plan_is_pure_and_repeatable(lab: Params):
    f = facts(key("vm-node1", None), key("vm-node2", B))
    assert authkey.plan(lab, f).to_frame().equals(authkey.plan(lab, f).to_frame())


# ---------------------------------------------------------------- probe parser

PROBE_FILE = (
    "keygen yes\ncorosync inactive\nkind file\nmeta root:root 400 256\n"
    f"sha256 {'C' * 64}  /etc/corosync/authkey\n"
)


def test_probe_of_a_present_key_gives_digest_owner_mode_and_size():
    k = authkey.parse_probe("n1", PROBE_FILE)
    assert (k.exists, k.sha256, k.owner, k.mode, k.size, k.root_only) == (True, "c" * 64, "root:root", 0o400, 256, True)


def test_probe_of_a_missing_key():
    k = authkey.parse_probe("n1", "keygen no\ncorosync active\nkind none\n")
    assert (k.exists, k.keygen, k.corosync_active, k.sha256) == (False, False, True, None)


@pytest.mark.parametrize("text", ["", "keygen yes\nkind file\nmeta root:root 400\n", "keygen yes\nkind file\nmeta root:root 400 256\nsha256 xyz  f\n"])
def test_probe_garbage_is_an_error_that_says_what_to_check(text: str):
    with pytest.raises(AuthkeyError, match="/etc/corosync/authkey"):
        authkey.parse_probe("n1", text)


def test_facts_show_short_digests_only():
    f = facts(authkey.parse_probe("n1", PROBE_FILE), key("n2", None))
    shown = f.to_frame().to_string() + f._repr_html_()
    assert "c" * 12 + "…" in shown and "c" * 13 not in shown
