"""The BMC password and the corosync authkey are in no file of a deployment's run folder, in no
rendered HTML page of its notebooks, nowhere in the live CIB (nor pacemaker's saved CIB history),
and in no log on the nodes: searched by this test's own code (tests/lab/evidence.py), not the
product's scan (hakit.secretscan).

Where the values come from, read here from the source and from the nodes (never over SSH):
the lab makes one BMC password at `lab up` (``<lab dir>/bmc/password``, read by the virtual
BMCs); stage 4 copies it to every node as ``/etc/hakit/fencing/<address>-<port>.password``. The
authkey is made on the first node by stage 2 and copied node to node by SFTP
(``/etc/corosync/authkey``). Each value is searched for raw, in hex (both cases), and in base64
and base64url at the three alignments a larger encoded blob could put it in, cut into pieces so
a fragment is caught too. A positive control plants every form in files first and finds each.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

import evidence
from hakit import fencing
from hakit.lab import Lab
from hakit.lab import bmc as labbmc
from hakit.run import export_html

pytestmark = pytest.mark.lab


def secret_values(lab: Lab) -> dict[str, bytes]:
    """The BMC password (as the lab's BMCs and every node hold it) and the authkey (as every node holds it)."""
    password = labbmc.password_file(lab.dir).read_bytes().splitlines()[0].strip()
    keys = set()
    for n in lab.params.nodes:
        base = Path(evidence.root(lab, n.name))
        for dev in fencing.devices(lab.params):
            assert (base / dev.credential_path.lstrip("/")).read_bytes().strip() == password, (n.name, dev.node)
        keys.add((base / "etc/corosync/authkey").read_bytes())
    (key,) = keys  # one key, the same on every node
    assert len(password) == labbmc.PASSWORD_LEN and len(key) >= 128
    return {"the BMC password": password, "the corosync authkey": key}


def positive_control(search: evidence.SecretSearch, cib_xml: str, tmp: Path) -> None:
    """Each secret planted in each form, in the kinds of file a run holds, is found; a clean file is not."""
    planted = tmp / "planted"
    clean = tmp / "clean"
    clean.mkdir()
    (clean / "record.json").write_text(json.dumps({"note": "nothing secret here", "digest": "ab" * 32}))
    expected = set()
    for label, value in search.secrets.items():
        for form, enc in evidence.encodings(value).items():
            f = planted / label.replace(" ", "-") / f"{form}.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"<td>before " + enc + b" after</td>\n")
            expected.add((label, form))
        # A fragment from the middle of a bigger base64 blob, as a notebook's image data would carry it.
        blob = base64.b64encode(b"\x00" + value + b"\x00" * 9)
        (planted / f"{label.replace(' ', '-')}-fragment.json").write_bytes(
            b'{"data": "' + blob[len(blob) // 3: len(blob) // 3 + 24] + b'"}')
    found = search.in_tree(planted)
    got = {hit for hits in found.values() for hit in hits}
    assert expected <= got, sorted(expected - got)
    assert all(found.get(f"{label.replace(' ', '-')}-fragment.json") for label in search.secrets), sorted(found)
    assert search.in_tree(clean) == {}
    # The CIB check too: a password put into a stonith attribute is found.
    password = search.secrets["the BMC password"].decode()
    assert ("the BMC password", "raw") in search.in_bytes(
        cib_xml.replace('name="ipport"', f'name="ipport" value="{password}"', 1).encode())
    assert repr(search) == "SecretSearch(['the BMC password', 'the corosync authkey'], <values hidden>)"


def test_the_secrets_are_in_no_file_of_the_run_no_html_page_no_cib_and_no_node_log(cluster2, tmp_path: Path) -> None:
    lab, folder = cluster2
    search = evidence.SecretSearch(secret_values(lab))
    positive_control(search, evidence.cib(lab, "vm-node1"), tmp_path)
    # Every file of the build's run folder, with each notebook rendered as `hakit run` renders it
    # (the build skipped the HTML for time).
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    for nb in sorted(copy.glob("*.ipynb")):
        export_html(nb)
    files = [f for f in copy.rglob("*") if f.is_file()]
    html = [f for f in files if f.suffix == ".html"]
    assert len(html) >= 7 and {f.stem for f in html} >= {f.stem for f in copy.glob("*.ipynb")}  # + index.html
    assert any(f.name == "cib-before.xml" for f in files) and any(f.name == "record.json" for f in files)
    found = search.in_tree(copy)
    assert found == {}, {f: sorted(hits) for f, hits in found.items()}  # names and forms only, never the value
    print(f"\nFIGURES secret search: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes of the run "
          f"folder (with {len(html)} HTML pages): nothing found")
    # The live CIB as each node hands it out, every CIB pacemaker saved, the node's logs.
    for n in lab.params.nodes:
        base = Path(evidence.root(lab, n.name))
        cib_xml = evidence.nsrun(lab, n.name, ["cibadmin", "--query", "--local"]).stdout
        assert "fence_ipmilan" in cib_xml and 'name="ipmitool_path"' in cib_xml  # the devices are there
        places = {"live CIB": cib_xml.encode(),
                  "journal": evidence.nsrun(lab, n.name, ["journalctl", "-q", "-o", "cat"]).stdout.encode()}
        history = sorted((base / "var/lib/pacemaker/cib").glob("cib*"))
        assert len(history) > 4  # every configuration pacemaker wrote, the stages' patches included
        places |= {f"/var/lib/pacemaker/cib/{f.name}": f.read_bytes() for f in history}
        for log in ("var/log/pacemaker/pacemaker.log", "var/log/corosync/corosync.log"):
            if (base / log).exists():
                places[log] = (base / log).read_bytes()
        found_n = {where: sorted(search.in_bytes(data)) for where, data in places.items() if search.in_bytes(data)}
        assert found_n == {}, f"{n.name}: {found_n}"
