"""The house rules of the code base (CONTRIBUTING.md): small modules, short functions, one-way layers.

The same checks run in `.ci/run` before the tests; here they fail with the offending names.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "coaia_store"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
WHY_LONG = "# long function:"  # the comment that must stand directly above a longer function


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = (node.end_lineno or start) - start + 1
            explained = start >= 2 and lines[start - 2].strip().startswith(WHY_LONG)
            if length > MAX_FUNCTION_LINES and not explained:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_module_is_over_500_lines() -> None:
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in _modules()}
    assert [f"{p.relative_to(ROOT)} ({n} lines)" for p, n in sizes.items() if n > MAX_MODULE_LINES] == []


def test_no_function_is_over_60_lines_without_a_comment_saying_why() -> None:
    assert [found for path in _modules() for found in _long_functions(path)] == []


def test_every_folder_says_what_its_layer_holds() -> None:
    missing = [
        p.relative_to(ROOT) for p in PACKAGE.rglob("__init__.py") if ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []


@pytest.mark.skipif(
    shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e '.[test]')"
)
def test_layers_import_downward_only_and_no_module_imports_back_into_a_cycle() -> None:
    run = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
