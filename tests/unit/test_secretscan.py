"""The run folder's secret scan catches a planted key in any usual encoding, and never shows it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from hakit import secretscan
from hakit.secretscan import Secret, params_secrets, scan_folder

FAKE_KEY = os.urandom(256)  # stands in for /etc/corosync/authkey


def _folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "01_bonding").mkdir(parents=True)
    (run / "01_bonding.ipynb").write_text(json.dumps({"cells": [{"outputs": [{"text": "all fine"}]}]}))
    (run / "01_bonding" / "record.json").write_text('{"stage": "01 bonding"}')
    (run / "chart.png").write_bytes(os.urandom(4096))
    return run


def _everything_said(report: secretscan.ScanReport) -> str:
    return json.dumps(report.to_dict()) + repr(report) + "".join(str(f) for f in report.findings)


@pytest.mark.parametrize(
    "form",
    [
        lambda k: k,  # raw bytes
        lambda k: k.hex().encode(),
        lambda k: k.hex().upper().encode(),
        lambda k: base64.b64encode(k),
        lambda k: base64.urlsafe_b64encode(k),
        lambda k: base64.encodebytes(b"xy" + k),  # wrapped at 76 columns, shifted by two bytes
        lambda k: base64.b64encode(b"z" + k[40:80] + b"tail"),  # a 40-byte fragment inside other data
        lambda k: k[100:124].hex().encode(),  # a 24-byte fragment in hex
    ],
    ids=["raw", "hex", "HEX", "base64", "base64url", "base64-wrapped-shifted", "base64-fragment", "hex-fragment"],
)
def test_a_planted_key_is_found_in_any_form(tmp_path, form):
    run = _folder(tmp_path)
    (run / "01_bonding" / "leak.txt").write_bytes(b"before " + form(FAKE_KEY) + b" after")
    report = scan_folder(run, [Secret("the corosync authkey", FAKE_KEY)])
    assert not report.clean
    assert [f.file for f in report.findings] == ["01_bonding/leak.txt"] * len(report.findings)
    said = _everything_said(report)
    for leaked in (FAKE_KEY.hex(), base64.b64encode(FAKE_KEY).decode()[:24], FAKE_KEY[:16].hex()):
        assert leaked not in said, "a finding must never show the secret"


def test_a_clean_folder_is_clean(tmp_path):
    run = _folder(tmp_path)
    report = scan_folder(run, [Secret("the corosync authkey", FAKE_KEY)])
    assert report.clean and report.files == 3 and report.bytes > 4096
    assert report.secrets == ["the corosync authkey"]


def test_secret_objects_do_not_show_their_value():
    s = Secret("k", FAKE_KEY)
    pats = secretscan.Patterns.build([s])
    assert FAKE_KEY.hex()[:16] not in repr(s) + repr(pats) and "hidden" in repr(s)


class _Fence(BaseModel):
    user: str
    password: SecretStr
    password_file: Path | None = None


class _Params(BaseModel):
    name: str
    devices: list[_Fence]
    extra: dict[str, SecretStr] = {}


def test_params_secrets_are_found_in_nested_models_lists_dicts_and_password_files(tmp_path):
    pw_file = tmp_path / "bmc-password"
    pw_file.write_text("from-a-file-9\nsecond line is ignored\n")
    p = _Params(
        name="c",
        devices=[_Fence(user="admin", password=SecretStr("hunter2-long"), password_file=pw_file)],
        extra={"token": SecretStr("abc")},
    )
    found = {s.label: s.value for s in params_secrets(p)}
    assert found == {
        "params.devices[0].password": b"hunter2-long",
        "params.devices[0].password_file (its content)": b"from-a-file-9",
        "params.extra.token": b"abc",
    }
    run = _folder(tmp_path)
    (run / "summary.json").write_text(json.dumps({"note": "pw is hunter2-long", "b64": base64.b64encode(b"from-a-file-9").decode()}))
    report = scan_folder(run, params_secrets(p))
    assert {(f.secret, f.form) for f in report.findings} == {
        ("params.devices[0].password", "raw bytes"),
        ("params.devices[0].password_file (its content)", "base64"),
    }
    assert any("params.extra.token" in s and "cannot be searched" in s for s in report.sources)
    assert "hunter2" not in _everything_said(report)


def test_the_lab_bmc_password_is_a_secret_the_scan_looks_for(tmp_path):
    from hakit.lab import bmc as labbmc
    from hakit.params import load_params
    from hakit.secretscan import ScanReport, fencing_secrets

    lab = load_params(Path(__file__).resolve().parents[2] / "params" / "lab.yaml")
    lab = lab.model_copy(update={"lab": lab.lab.model_copy(update={"state_dir": tmp_path / "state"})})
    rep = ScanReport()
    assert fencing_secrets(lab, rep) == [] and "does not exist" in rep.incomplete[0]  # no lab yet: said, not skipped
    pw = labbmc.ensure_password(lab.lab.dir).read_bytes().strip()
    rep = ScanReport()
    (secret,) = fencing_secrets(lab, rep)  # both nodes' BMCs share the lab's one password: searched once
    assert secret.value == pw and secret.label == "the BMC password of vm-node1, vm-node2"
    assert rep.incomplete == []
    run = _folder(tmp_path)
    (run / "04-pacemaker-properties.html").write_text(f"<pre>{base64.b64encode(pw).decode()}</pre>")
    found = scan_folder(run, [secret])
    assert [(f.secret, f.form) for f in found.findings] == [("the BMC password of vm-node1, vm-node2", "base64 (offset 0)")]
