"""The library's modules import each other without a loop (module-level and deferred imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib" / "hakit"


def module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The hakit modules a file imports anywhere in it (a deferred import inside a function counts too)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("hakit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("hakit"):
                continue
            out.add(mod)
            for a in node.names:  # `from . import cib` imports the module hakit.cib
                if (LIB.parent / (mod + "." + a.name).replace(".", "/")).with_suffix(".py").exists():
                    out.add(f"{mod}.{a.name}")
    out.discard(me)
    return out


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in LIB.rglob("*.py")}
    g = {m: {i for i in imports_of(p) if i in mods} for m, p in mods.items()}
    # a package's __init__ re-exporting its modules is not a dependency of those modules on each other
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_graph_is_read() -> None:
    g = graph()
    assert "hakit.stages.driver" in g and "hakit.ops" in g["hakit.stages.driver"]


def test_no_import_loop() -> None:
    g = graph()
    # packages' __init__ files only gather names for users; count loops between modules proper
    g = {m: {i for i in deps if not (LIB.parent / i.replace(".", "/") / "__init__.py").exists()}
         for m, deps in g.items()}
    cycle = find_cycle(g)
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])
