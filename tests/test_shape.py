"""Tests that keep the shape honest: every provider has a mapping, fixtures and a test; every
fixture is used; hub/ names no provider outside the registry; connectors/ stay pure."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub import registry

from tests.helpers import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
ALL_TEST_SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py"))
PROVIDERS = sorted(registry.INTAKE.items())


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("key,module", PROVIDERS, ids=[f"{k}/{p}" for (k, p), _ in PROVIDERS])
def test_every_provider_has_mapping_fixtures_and_tests(key, module):
    kind, provider = key
    assert provider == module.NAME and kind == module.KIND
    assert (ROOT / "mappings" / f"{module.MAPPING}.yaml").is_file()
    folder = module.MAPPING.split("/")[0]
    assert any((FIXTURES / folder).rglob("*.*")), f"no fixtures for {folder}"
    assert module.__name__ in ALL_TEST_SOURCE or f"import {provider}" in ALL_TEST_SOURCE
    for name in ("verify", "parse", "reply", "CHANNEL", "SECRETS", "HANDLES", "IGNORES"):
        assert hasattr(module, name), f"{module.__name__} lacks {name}"


def test_every_fixture_is_used_by_a_test():
    fixtures = [p for p in FIXTURES.rglob("*") if p.is_file()]
    unused = [str(p.relative_to(TESTS)) for p in fixtures if p.name not in ALL_TEST_SOURCE]
    assert fixtures and unused == []


def test_hub_names_providers_only_in_the_registry():
    offenders = {}
    for path in (ROOT / "hub").rglob("*.py"):
        if path.name == "registry.py":
            continue
        named = {n for n in imports_of(path) if n.startswith("connectors.") and n != "connectors.base"
                 and not n.startswith("connectors.base.")}
        if named:
            offenders[str(path.relative_to(ROOT))] = sorted(named)
    assert offenders == {}


def test_connectors_touch_neither_database_nor_queue_nor_web():
    forbidden = ("hub", "sqlalchemy", "rq", "redis", "flask")
    offenders = {}
    for path in (ROOT / "connectors").rglob("*.py"):
        bad = {n for n in imports_of(path) if n.split(".")[0] in forbidden}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
