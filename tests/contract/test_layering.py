"""The import structure: functions → services → domain, with storage and identity implementing the service
layer's ports. Every import counts, lazy ones inside functions included; only the composition root
(`shared.bootstrap`) may know every layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Who may import whom (prefixes of module names). Everything of ours not listed is forbidden.
ALLOWED: dict[str, tuple[str, ...]] = {
    "shared.domain": ("shared.domain", "shared.errors", "shared.tenancy"),
    "shared.services": ("shared.domain", "shared.services", "shared.errors", "shared.tenancy", "shared.clock",
                        "shared.observability", "shared.caching", "shared.garbage_collection"),
    # Adapters implement the ports; `work` names the kinds of work and their queues (the ports' vocabulary).
    "shared.storage": ("shared.domain", "shared.services.ports", "shared.services.work", "shared.storage",
                       "shared.errors", "shared.tenancy", "shared.caching"),
    # The Graph and Dataverse clients implement the data-source ports, raising the ports' kinds of problems.
    "shared.connectors": ("shared.domain", "shared.services.ports", "shared.connectors", "shared.errors",
                          "shared.tenancy"),
    "shared.identity": ("shared.domain", "shared.services.ports", "shared.identity", "shared.errors",
                        "shared.tenancy", "shared.config"),
    "shared.api": ("shared.api", "shared.domain", "shared.services", "shared.errors", "shared.tenancy"),
    "functions": ("functions", "shared.api", "shared.errors", "shared.observability", "shared.config",
                  "shared.bootstrap", "shared.services", "shared.identity.tokens", "shared.tenancy"),
}
OURS = ("shared", "functions", "devhost", "function_app", "bench", "tests")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name.split(".")[0] in OURS}


def _layer(module: str) -> str | None:
    return next((layer for layer in sorted(ALLOWED, key=len, reverse=True)
                 if module == layer or module.startswith(layer + ".")), None)


def _modules() -> list[tuple[str, Path]]:
    paths = [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]
    return sorted((_module_name(p), p) for p in paths if _layer(_module_name(p)) is not None)


def _allowed(layer: str, imported: str) -> bool:
    # `from shared import observability` names the package too: judge the module it brings in.
    return any(imported == p or imported.startswith(p + ".") for p in ALLOWED[layer]) or imported == "shared"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_a_module_imports_only_what_its_layer_may(module: str, path: Path) -> None:
    layer = _layer(module)
    assert layer is not None
    wrong = sorted(name for name in _imports(path) if not _allowed(layer, name))
    assert wrong == [], f"{module} ({layer}) must not import {wrong}"


def test_the_rule_catches_a_service_that_imports_an_adapter(tmp_path: Path) -> None:
    source = "from shared.storage.records_repository import TableRecords\n"
    (tmp_path / "x.py").write_text(source)
    assert not _allowed("shared.services", next(iter(_imports(tmp_path / "x.py"))))
