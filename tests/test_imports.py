"""The import graph of the package: no cycles (deferred imports included), and exact.py stays independent."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import nemm

PKG = Path(nemm.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    # Compiled extensions (nemm._core) are leaves: present with an empty source. An editable
    # install keeps them in another directory of nemm.__path__, hence pkgutil.
    for p in PKG.rglob("*"):
        if p.suffix in (".so", ".pyd"):
            mods.setdefault(_module_name(p.with_name(p.name.split(".")[0] + ".py")), p)
    for info in pkgutil.iter_modules(nemm.__path__, "nemm."):
        if not info.ispkg:
            mods.setdefault(info.name, PKG / (info.name.rpartition(".")[2] + ".so"))
    return mods


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The nemm module an import names (the deepest existing one), None outside nemm."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> nemm modules it imports anywhere (top level, functions, TYPE_CHECKING blocks excluded)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8") if path.suffix == ".py" else "")
        typing_only = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                typing_only.update(id(n) for b in node.body for n in ast.walk(b))
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule sub when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                r = _resolve(t, modules)
                if r is not None and r != mod:
                    edges.add(r)
                    edges.update(_packages_run_first(r, mod, modules))
        graph[mod] = edges
    return graph


def _packages_run_first(target: str, importer: str, modules: dict[str, Path]) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` executes: its parents that ``importer`` is not inside.

    Importing ``nemm.reproduce.driver`` runs ``nemm/reproduce/__init__.py`` first, and whatever that
    imports; a module inside the package (and every module is inside ``nemm``) runs after its ``__init__``.
    """
    out = set()
    parent = target.rpartition(".")[0]
    while parent:
        if parent in modules and not (importer == parent or importer.startswith(parent + ".")):
            out.add(parent)
        parent = parent.rpartition(".")[0]
    return out


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_the_graph_sees_deferred_imports() -> None:
    g = import_graph()
    assert "nemm.diagnostics" in g["nemm.cli"]  # imported inside a function
    assert "nemm.markov" in g["nemm.machine"]


def test_the_graph_sees_the_packages_an_import_runs_first() -> None:
    g = import_graph()
    # nemm.reproduce.kind imports nemm.sweep; a module importing nemm.reproduce.records runs reproduce/__init__.
    assert _packages_run_first("nemm.reproduce.records", "nemm.sweep", _modules()) == {"nemm.reproduce"}
    assert _packages_run_first("nemm.reproduce.records", "nemm.reproduce.kind", _modules()) == set()
    assert "nemm.reproduce" in g["nemm.cli"]


def test_no_import_cycles() -> None:
    g = import_graph()
    cycles = sorted(m for m in g if m in _closure(g, m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_exact_depends_on_numpy_and_small_helpers_only() -> None:
    g = import_graph()
    assert _closure(g, "nemm.exact") <= {"nemm._logdomain", "nemm._checks"}


def test_the_sweep_does_not_know_reproduce() -> None:
    # reproduce is an application of the sweep: it registers its report kind, the sweep never imports it.
    g = import_graph()
    assert not any(m.startswith("nemm.reproduce") for m in _closure(g, "nemm.sweep"))
    assert not any(m.startswith("nemm.reproduce") for m in _closure(g, "nemm.config"))


def test_markov_does_not_know_the_machine() -> None:
    g = import_graph()
    assert "nemm.machine" not in _closure(g, "nemm.markov")
    assert "nemm.diagnostics" not in _closure(g, "nemm.markov")
