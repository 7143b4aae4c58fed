"""What every stage notebook does first: find and validate the params, connect to the nodes."""

from __future__ import annotations

from pathlib import Path

from .params import Params, ParamsError, load_params
from .remote import Host, connect


def repo_root() -> Path:
    """The checkout this library lives in (lib/hakit/notebook.py -> repo root)."""
    return Path(__file__).resolve().parents[2]


def resolve(path: str | Path) -> Path:
    """A path as given, else relative to the repo root (JupyterLab runs notebooks from notebooks/)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    alt = repo_root() / p
    return alt if alt.exists() else p


def load(params_file: str | Path) -> Params:
    """Validate the params before any host is touched."""
    return load_params(resolve(params_file))


def connect_nodes(params: Params) -> dict[str, Host]:
    """Connect to every node with pinned host keys; fails naming the node before any change."""
    return {n.name: connect(params, n) for n in params.nodes}


__all__ = ["load", "connect_nodes", "resolve", "repo_root", "ParamsError"]
