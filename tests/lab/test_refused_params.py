"""A params file refused at validation (a key given twice, an empty value) means no login on any node:
sshd's own journal shows no accepted session for the run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hakit import notebook
from hakit.lab import Lab
from hakit.params import ParamsError
from hakit.run import run

pytestmark = pytest.mark.lab

# OpenSSH 9.2 (Debian 12) logs accepted logins as `sshd`, OpenSSH 10.0 (Debian 13) as `sshd-session`.
COUNT = ("journalctl --since @{since} -o cat _COMM=sshd _COMM=sshd-session "
         "| grep -c 'Accepted publickey' || true")


def logins(lab: Lab, since: int) -> dict[str, int]:
    """Accepted public-key logins per node since `since` (this query's own login included)."""
    return {n.name: int(lab.ssh(n.name, ["sh", "-c", COUNT.format(since=since)], check=True).stdout.strip())
            for n in lab.params.nodes}


@pytest.mark.parametrize("bad", [
    ("\nvip:\n  address: {vip}\n", "is given twice in one section"),
    ("", "name is empty"),
], ids=["duplicate-key", "empty-value"])
def test_a_refused_params_file_logs_into_no_node(lab2: Lab, lab2_params: Path, tmp_path: Path, bad) -> None:
    extra, expected = bad
    text = lab2_params.read_text()
    if extra:
        text += extra.format(vip=lab2.params.vip.address)
    else:
        text = text.replace(f"  name: {lab2.params.cluster.name}", '  name: ""', 1)
    f = tmp_path / "refused.yaml"
    f.write_text(text)
    since = int(time.time()) - 1
    before = logins(lab2, since)
    with pytest.raises(ParamsError, match=expected):
        run(str(f), stages="all", out_root=tmp_path / "runs", html=False)
    after = logins(lab2, since)
    assert after == {n: c + 1 for n, c in before.items()}, (before, after)  # only the counting queries' own
    assert not (tmp_path / "runs").exists()
    # The control: the product's own connect is seen by the same count.
    for h in notebook.connect_nodes(lab2.params).values():
        h.run("true")
        h.close()
    assert logins(lab2, since) == {n: c + 2 for n, c in after.items()}
