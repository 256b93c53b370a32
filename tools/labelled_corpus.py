"""Generate a labelled corpus from the docstrings of the Python standard library.

Measuring selection quality needs a pool whose right answers are known. The
standard library documents itself, module by module, and its modules fall into
clearly different topics (files, networking, concurrency, numbers, data
formats, debugging), each with a few hundred docstrings: a labelled pool that
exists on every machine with Python, so no third-party text is ever stored in
the repository. The text is read from the running interpreter at run time: the
same Python version and seed always yield byte-identical files.

Each label also gets a few held-out docstrings as target examples: they are
never in the pool, as a task's examples are never in the web crawl.

Usage: ``python -m tools.labelled_corpus OUT_DIR [--per-label 200] [--targets 16] [--seed 0]``

Writes ``OUT_DIR/corpus/pool.jsonl`` (``id``, ``text``, ``label``) and
``OUT_DIR/targets.jsonl`` (``text``, ``target``, ``label``).
"""
from __future__ import annotations

import importlib
import inspect
import warnings
from pathlib import Path

from . import labelled_pool

TOPICS: dict[str, list[str]] = {
    "files": ["os", "os.path", "posixpath", "shutil", "pathlib", "glob", "fnmatch", "tarfile", "zipfile", "tempfile",
              "filecmp", "io", "_pyio", "gzip", "bz2", "lzma", "stat", "fileinput"],
    "network": ["socket", "ssl", "http.client", "http.server", "http.cookies", "http.cookiejar", "urllib.request",
                "urllib.parse", "smtplib", "ftplib", "imaplib", "poplib", "xmlrpc.client", "xmlrpc.server",
                "socketserver", "ipaddress", "email.message", "email.utils", "email.headerregistry", "email.policy",
                "mailbox"],
    "concurrency": ["threading", "multiprocessing.pool", "multiprocessing.process", "multiprocessing.managers",
                    "multiprocessing.queues", "multiprocessing.synchronize", "multiprocessing.connection",
                    "asyncio.events", "asyncio.tasks", "asyncio.queues", "asyncio.locks", "asyncio.streams",
                    "asyncio.base_events", "asyncio.futures", "asyncio.subprocess", "concurrent.futures._base",
                    "concurrent.futures.thread", "concurrent.futures.process", "queue", "subprocess", "signal",
                    "selectors", "sched"],
    "numbers": ["math", "cmath", "decimal", "_pydecimal", "fractions", "statistics", "random", "numbers"],
    "data_formats": ["json", "json.decoder", "json.encoder", "csv", "pickle", "xml.dom.minidom", "xml.dom.pulldom",
                     "xml.etree.ElementTree", "xml.sax.handler", "xml.sax.saxutils", "xml.sax.xmlreader",
                     "configparser", "plistlib", "struct", "base64", "binascii", "sqlite3", "tomllib", "marshal",
                     "copyreg", "shelve", "dbm", "quopri"],
    "debugging": ["unittest.case", "unittest.mock", "unittest.loader", "unittest.runner", "unittest.suite", "doctest",
                  "pdb", "bdb", "trace", "traceback", "inspect", "dis", "profile", "cProfile", "pstats", "timeit",
                  "faulthandler", "tracemalloc", "warnings", "logging", "logging.handlers"],
}


def docstrings(module_name: str) -> dict[str, str]:
    """Qualified name -> cleaned docstring, for what the module itself defines.

    Re-exported objects belong to the module that defines them, so a docstring
    is counted under the topic it was written for.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(module_name)
    except ImportError:
        return {}
    out = {module_name: module.__doc__}
    for name, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        out[f"{module_name}.{name}"] = obj.__doc__
        if inspect.isclass(obj):
            for member, value in sorted(vars(obj).items()):
                out[f"{module_name}.{name}.{member}"] = getattr(value, "__doc__", None)
    return {k: inspect.cleandoc(v) for k, v in out.items() if isinstance(v, str)}


def items():
    """``(label, group, text)`` for every docstring of every topic's modules; each docstring is its own group."""
    for label, modules in TOPICS.items():
        for module in modules:
            for text in docstrings(module).values():
                yield label, text, text


def collect() -> dict[str, dict[str, list[str]]]:
    """Label -> docstring -> [docstring], each text once; a text found under two labels is dropped."""
    return labelled_pool.collect(items())


def make_corpus(out: str | Path, per_label: int = 200, targets: int = 16, seed: int = 0) -> dict[str, int]:
    """Write the pool and the targets; return the pool size of each label."""
    return labelled_pool.make_pool(out, collect(), per_label, targets, seed)


def main(argv=None) -> None:
    labelled_pool.main(__doc__, items, argv)


if __name__ == "__main__":
    main()
