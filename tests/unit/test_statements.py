"""Three statements the course teaches, held against what the code, the shipped params and the lab
measurements say: each figure or name is parsed from the text, so the test fails when either side drifts.

- corosync's token default (notebook 03, lib/hakit/profiles.py) and the seed profile
  (tests/lab/test_token_default.py reads the same figure from a running corosync);
- `wait_for_all` under `no-quorum-policy=ignore` (notebook 04) and what tests/lab/test_lone_boot.py measured;
- what an Apache crash does (notebooks 05 and 07, exercise 05-failcount) under the shipped migration threshold.
"""

from __future__ import annotations

import re

import statements

from hakit import exercises
from hakit.params import load_params
from hakit.profiles import SEED


def _one(pattern: str, text: str, what: str) -> re.Match:
    found = list(re.finditer(pattern, text))
    assert len(found) == 1, f"{what}: expected one statement matching {pattern!r}, found {len(found)}"
    return found[0]


def test_token_default_is_stated_alike_and_is_the_seed_profile():
    in_notebook = statements.stated_corosync_defaults(statements.notebook_text("03"))
    in_profiles = statements.stated_corosync_defaults(statements.profiles_text())
    assert in_notebook and in_notebook == in_profiles, (in_notebook, in_profiles)
    assert in_notebook == {(SEED.token, SEED.consensus)}  # seed is taught as today's default
    nb = statements.notebook_text("03")
    seed = _one(r"\*\*seed\*\*: [^-]*?today's default", nb, "notebook 03's seed bullet").group(0)
    assert f"token {SEED.token} ms / consensus {SEED.consensus} ms" in seed
    assert re.search(r"\*\*fast\*\*: [^-]*tuned profile", nb), "notebook 03 must call fast a tuned profile"
    assert "tuned value" in statements.profiles_text()


def test_notebook_04_teaches_that_ignore_turns_wait_for_all_off(root):
    nb = statements.notebook_text("04")
    off = _one(r"With `no-quorum-policy=(\w+)`, `wait_for_all` protects nothing", nb, "notebook 04").group(1)
    # what the lab measured: the lone-boot test runs its fencing half under the built cluster's policy
    lone = (root / "tests" / "lab" / "test_lone_boot.py").read_text()
    measured = _one(r'assert params\.pacemaker\.no_quorum_policy == "(\w+)"', lone, "test_lone_boot").group(1)
    assert "assert _fenced(lab, t0 - 1)" in lone and "assert not _fenced(lab, t1 - 1)" in lone
    safe = _one(r'"no-quorum-policy", "--update", "(\w+)"\],\s*check=True\)\n    try:\n        t1', lone,
                "test_lone_boot's second half").group(1)
    assert off == measured != safe
    # the table's row for it, and the policies the text says the shipped files use
    row = _one(rf"\| `{off}` \(([^)]*)\) \| ([^|]*)\|", nb, "the lone-boot table").groups()
    assert "fenced" in row[1] and "served" in row[1] and "not quorate" in row[1], row
    if "this lab's params" in row[0]:
        assert load_params(root / "params" / "lab.yaml").pacemaker.no_quorum_policy == off
    advice = _one(r"`pacemaker\.no_quorum_policy: (\w+)`, as `params/example-real\.yaml` does", nb, "nb 04").group(1)
    assert advice == safe == load_params(root / "params" / "example-real.yaml").pacemaker.no_quorum_policy


def _threshold(text: str) -> int | None:
    return None if text == "null" else int(text)


def test_apache_crash_text_matches_the_shipped_failure_policy(root):
    shipped = load_params(root / "params" / "lab.yaml").pacemaker.resources
    moves = shipped.migration_threshold is not None
    nb05 = statements.notebook_text("05")
    row = _one(r"\| \*\*shipped\*\*: `migration_threshold: (\w+)`, `failure_timeout: (\w+)` \| ([^|]*)\|",
               nb05, "notebook 05's policy table")
    assert _threshold(row.group(1)) == shipped.migration_threshold
    assert _threshold(row.group(2)) == shipped.failure_timeout
    assert ("moves to" in row.group(3)) == moves, row.group(0)
    # pacemaker's own default restarts in place for ever, which both notebooks teach
    assert "`migration_threshold: null` (restart in place)" in nb05
    nb07 = statements.notebook_text("07")
    assert "With `migration_threshold: null` pacemaker restarts Apache in place for ever" in nb07
    said = _one(r"Shipped, `migration_threshold: (\w+)`: ([^;]*);", nb07, "notebook 07 on apache-crash")
    assert _threshold(said.group(1)) == shipped.migration_threshold
    assert ("is the other node" in said.group(2)) == moves, said.group(0)
    predict = exercises.get("05-failcount").predict
    assert _threshold(_one(r"\(migration_threshold (\w+)\)", predict, "05-failcount").group(1)) == \
        shipped.migration_threshold
    readme = " ".join((root / "README.md").read_text().split())
    yaml = _one(r"migration_threshold: (\w+) # null: restart in place for ever", readme, "README's failure policy")
    assert _threshold(yaml.group(1)) == shipped.migration_threshold
