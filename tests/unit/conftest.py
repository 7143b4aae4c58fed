"""Shared helpers for the unit tests: params sets, parser fixtures and golden files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hakit.params import Params, load_params

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
HEADER_END = "# ---"
UPDATE_ENV = "HAKIT_UPDATE_GOLDEN"


def load_fixture(name: str) -> str:
    """A fixture's raw output: the text after its '# ---' header line."""
    text = (FIXTURES / name).read_text()
    head, sep, body = text.partition(HEADER_END + "\n")
    if not sep or any(line and not line.startswith("#") for line in head.splitlines()):
        raise AssertionError(f"fixture {name} must start with '# ' comment lines and a '{HEADER_END}' line")
    return body


@pytest.fixture(name="load_fixture", scope="session")
def load_fixture_fixture() -> Callable[[str], str]:
    """The fixture loader, as a pytest fixture so tests need not import conftest."""
    return load_fixture


@pytest.fixture(scope="session")
def lab() -> Params:
    return load_params(REPO / "params" / "lab.yaml")


@pytest.fixture(scope="session")
def article() -> Params:
    """params/lab.yaml as the article configures it: no fence devices, stonith-enabled=false."""
    lab = load_params(REPO / "params" / "lab.yaml")
    pm = lab.pacemaker.model_copy(update={"stonith_enabled": False, "fencing": None})
    return lab.model_copy(update={"pacemaker": pm})


@pytest.fixture(scope="session")
def lab3() -> Params:
    return load_params(REPO / "params" / "lab-3node.yaml")


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with tests/unit/golden/<relpath>; HAKIT_UPDATE_GOLDEN=1 rewrites it."""

    def check(relpath: str, text: str) -> None:
        path = GOLDEN / relpath
        if os.environ.get(UPDATE_ENV) == "1":
            if os.environ.get("CI"):  # under CI a golden test compares, always
                pytest.fail(f"{UPDATE_ENV}=1 is set under CI: golden files are updated by hand, never by CI")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(
                f"golden file {path.relative_to(REPO)} is missing; create it with "
                f"{UPDATE_ENV}=1 .venv/bin/pytest tests/unit and review it before committing"
            )
        expected = path.read_text()
        assert text == expected, (
            f"rendered text differs from {path.relative_to(REPO)}; if the change is intended, "
            f"run {UPDATE_ENV}=1 .venv/bin/pytest tests/unit and review the diff"
        )

    return check
