"""DESIGN.md's arrows point one way, and only tui/ imports textual (an import-linter equivalent)."""

from __future__ import annotations

import ast
from pathlib import Path

import astropolis

PACKAGE = Path(astropolis.__file__).parent
ALLOWED = {
    "lake": {"lake"},
    "models": {"models", "lake"},
    "memory": {"memory", "lake"},
    "tools": {"tools", "lake", "models", "memory", "settings"},
    "agent": {"agent", "tools", "memory", "lake", "settings"},
    "tui": {"tui", "agent", "tools", "memory", "lake", "models", "settings"},
    "evals": {"evals", "agent", "tools", "memory", "lake", "models", "settings"},
    "settings": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "astropolis":
                found.update(f"astropolis.{alias.name}" for alias in node.names)
    return found


def test_arrows_point_one_way() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        layer = relative.parts[0].removesuffix(".py")
        if layer not in ALLOWED:
            continue
        for module in _imports(path):
            if module == "astropolis":
                continue
            if module.startswith("astropolis."):
                target = module.split(".")[1]
                if not target.startswith("__") and target not in ALLOWED[layer]:
                    violations.append(f"{relative} imports {module}")
    assert violations == []


def test_only_tui_imports_textual() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "tui":
            continue
        assert not any(m == "textual" or m.startswith("textual.") for m in _imports(path)), path


def test_the_checker_catches_a_bad_arrow(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("from astropolis.agent.cli import app\nimport textual.app\n")
    assert {"astropolis.agent.cli", "textual.app"} <= _imports(sample)
    assert "agent" not in ALLOWED["lake"]
