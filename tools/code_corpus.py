"""Generate a labelled pool of Python source code, labelled by the domain of the package it comes from.

Source code is a kind of text the stdlib docstring pool does not cover: the
installed wheels of the environment hold plenty, and their packages fall into
clearly different domains (numerics, machine learning, web, testing, cloud
services, plotting). Each document is one function or method, as written
(decorators, docstring, body), trimmed like every pool; its group is its
module file, so a target's function never shares a file with the pool.

The label is the domain of the package as stated here, never a model's guess.
The text is read from the installed packages at run time: the same package
versions and seed always yield byte-identical files.

Usage: ``python -m tools.code_corpus OUT_DIR [--per-label 200] [--targets 16] [--seed 0]``
"""
from __future__ import annotations

import ast
import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path

from . import labelled_pool

DOMAINS: dict[str, list[str]] = {
    "numerics": ["numpy", "scipy", "sympy", "mpmath", "numba"],
    "machine_learning": ["torch", "transformers", "sklearn", "accelerate", "safetensors"],
    "web": ["aiohttp", "flask", "werkzeug", "requests", "urllib3", "h11", "yarl", "multidict"],
    "testing": ["_pytest", "pluggy", "moto", "responses", "iniconfig"],
    "cloud": ["botocore", "boto3", "aiobotocore", "s3fs", "s3transfer", "cfnlint", "aws_xray_sdk"],
    "plotting": ["matplotlib", "mpl_toolkits", "PIL", "fontTools", "contourpy"],
}


def package_dir(name: str) -> Path | None:
    """Where an installed top-level package lives, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packages(domains: dict[str, list[str]]) -> Iterator[tuple[str, str, Path]]:
    """(label, package, directory) of every listed package installed; none installed is an error."""
    found = False
    for label, names in domains.items():
        for name in names:
            path = package_dir(name)
            if path is not None:
                found = True
                yield label, name, path
    if not found:
        raise SystemExit("none of the packages " + ", ".join(n for ns in domains.values() for n in ns)
                         + " is installed in this Python: the pool is read from their source")


def sources(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, source) of every readable Python file under ``root``, in sorted order."""
    for path in sorted(root.rglob("*.py")):
        try:
            yield path, path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def parsed(source: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # invalid escapes in old code
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError):
            return None


def functions(source: str) -> Iterator[str]:
    """The source of every function and method a module defines (nested ones belong to their parent)."""
    tree = parsed(source)
    if tree is None:
        return
    lines = source.splitlines()
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.ClassDef):
            todo[:0] = node.body
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield _dedent(lines[start - 1: node.end_lineno])


def _dedent(lines: list[str]) -> str:
    indent = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines)


def items(domains: dict[str, list[str]] = DOMAINS) -> Iterator[labelled_pool.Item]:
    """``(label, module file, function source)`` for every function of ``domains``' packages."""
    for label, name, root in packages(domains):
        for path, source in sources(root):
            group = f"{name}/{path.relative_to(root)}"
            for text in functions(source):
                yield label, group, text


def main(argv=None) -> None:
    labelled_pool.main(__doc__, items, argv)


if __name__ == "__main__":
    main()
