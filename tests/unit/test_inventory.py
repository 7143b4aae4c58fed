"""The site's inventory: a real site's from its params, the lab's from its provider; product code
asks `site.inventory` and never whether it runs against the lab."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hakit import site
from hakit.inventory import from_params
from hakit.lab.inventory import lab_inventory
from hakit.params import Params, load_params

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["remote.py", "fencing.py", "report.py", "run.py", "record.py", "secretscan.py", "cib.py", "ops.py",
           "runner.py", "stages/driver.py", "stages/bonding.py", "stages/authkey.py", "stages/corosync.py",
           "stages/cibstage.py", "stages/properties.py", "stages/resources.py", "stages/constraints.py"]


def test_a_real_site_takes_everything_from_its_params() -> None:
    p = load_params(ROOT / "params" / "example-real.yaml")
    inv = site.inventory(p)
    assert inv == from_params(p) and inv.check_before_run and inv.missing_hint == ""
    assert inv.key_file == p.ssh.key_file.expanduser() and inv.addresses == {n.name: str(p.ssh_address(n)) for n in p.nodes}


def test_the_lab_provides_its_key_known_hosts_and_bmcs(lab: Params) -> None:
    inv = site.inventory(lab)
    assert inv == lab_inventory(lab) and not inv.check_before_run and "lab up" in inv.missing_hint
    assert lab.lab is not None and inv.key_file == lab.lab.key_file and inv.known_hosts == lab.lab.known_hosts
    assert [d.node for d in inv.fence] == [n.name for n in lab.nodes]
    assert {d.address for d in inv.fence} == {str(lab.lab.host_private_ip)} and len({d.port for d in inv.fence}) == 2
    assert all(d.password is None and d.password_file is not None for d in inv.fence)


def test_the_written_form_holds_no_secret(lab: Params) -> None:
    text = yaml.safe_dump(site.inventory(lab).to_dict())
    assert "password_file" in text and "password: null" in text
    real = load_params(ROOT / "params" / "example-real.yaml")
    assert "SecretStr" not in yaml.safe_dump(site.inventory(real).to_dict())


def test_product_code_never_asks_whether_it_is_a_lab() -> None:
    for rel in PRODUCT:
        text = (ROOT / "lib" / "hakit" / rel).read_text()
        assert not re.search(r"params\.lab\b|\.lab is (not )?None|from \.+lab\b|import lab\b", text), rel
