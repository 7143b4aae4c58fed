"""Shared test settings: the repository root and the default params file."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_collection_modifyitems(config, items) -> None:
    """HAKIT_TEST_ORDER=reverse runs the modules in reverse order (the tests inside each keep theirs):
    the proof that no module depends on what an earlier one left behind."""
    import os

    order = os.environ.get("HAKIT_TEST_ORDER", "")
    if order not in ("", "reverse"):
        raise pytest.UsageError(f"HAKIT_TEST_ORDER={order!r}: use 'reverse' or leave it unset")
    if order == "reverse":
        modules = list(dict.fromkeys(item.path for item in items))
        rank = {m: i for i, m in enumerate(reversed(modules))}
        items.sort(key=lambda item: rank[item.path])  # stable: within a module the order stays
