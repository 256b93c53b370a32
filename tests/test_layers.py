"""The package layers of docs/design.md §7: core, then the build and query paths, then analyses and the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_flow_one_way():
    # In a process of its own: import-linter configures logging (dictConfig), which would
    # disable the loggers of every module already imported into the test process.
    check = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True))"
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
