"""The layers of ``hub/`` hold (the contracts in pyproject.toml, checked by import-linter), and
no module imports itself back through others."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "connectors", "mappings")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(command), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)


def test_every_layer_imports_only_those_below_it():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_that_climbs_a_layer_fails_naming_both_modules(tmp_path):
    for name in (*PACKAGES, "pyproject.toml"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    db = tmp_path / "hub" / "store" / "db.py"
    db.write_text(db.read_text(encoding="utf-8") + "\nfrom hub.web import api  # climbs\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "hub.store is not allowed to import hub.web" in result.stdout
    assert "hub.store.db -> hub.web.api" in result.stdout


def import_cycles(graph) -> list[list[str]]:
    """Tarjan's strongly connected components of the module graph, larger than one module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_back_through_others():
    assert import_cycles(grimp.build_graph(*PACKAGES, cache_dir=None)) == []
