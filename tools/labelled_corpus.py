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

import argparse
import importlib
import inspect
import json
import random
import warnings
from pathlib import Path

MIN_CHARS = 100      # shorter docstrings ("Return self.") say nothing about a topic
MAX_CHARS = 1000     # longer ones are cut at a line break; the backbone reads 120 tokens anyway

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
    return {k: _clean(v) for k, v in out.items() if isinstance(v, str) and len(v.strip()) >= MIN_CHARS}


def _clean(doc: str) -> str:
    doc = inspect.cleandoc(doc)
    if len(doc) > MAX_CHARS:
        cut = doc.rfind("\n", 0, MAX_CHARS)
        doc = doc[: cut if cut > MIN_CHARS else MAX_CHARS]
    return doc


def collect() -> dict[str, list[str]]:
    """Label -> its docstrings, each text once; a text found under two labels is dropped."""
    by_text: dict[str, set[str]] = {}
    for label, modules in TOPICS.items():
        for module in modules:
            for text in docstrings(module).values():
                by_text.setdefault(text, set()).add(label)
    out: dict[str, list[str]] = {label: [] for label in TOPICS}
    for text, labels in sorted(by_text.items()):
        if len(labels) == 1:
            out[next(iter(labels))].append(text)
    return out


def make_corpus(out: str | Path, per_label: int = 200, targets: int = 16, seed: int = 0) -> dict[str, int]:
    """Write the pool and the targets; return the pool size of each label."""
    out = Path(out)
    rng = random.Random(seed)
    pool, examples = [], []
    for label, texts in collect().items():
        rng.shuffle(texts)
        if len(texts) < targets + 1:
            raise SystemExit(f"label {label}: only {len(texts)} docstrings in this Python; lower --targets")
        examples += [{"text": t, "target": label, "label": label} for t in texts[:targets]]
        pool += [(t, label) for t in texts[targets: targets + per_label]]
    # Ids carry no hint of the label: the ranking breaks ties by id.
    rng.shuffle(pool)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus" / "pool.jsonl", "w") as f:
        for i, (text, label) in enumerate(pool):
            f.write(json.dumps({"id": f"doc-{i:05d}", "text": text, "label": label}) + "\n")
    with open(out / "targets.jsonl", "w") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in examples)
    sizes: dict[str, int] = {}
    for _, label in pool:
        sizes[label] = sizes.get(label, 0) + 1
    return sizes


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--per-label", type=int, default=200, help="pool documents per label (fewer if Python has fewer)")
    ap.add_argument("--targets", type=int, default=16, help="held-out target examples per label")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = make_corpus(args.out, args.per_label, args.targets, args.seed)
    print(f"{args.out}: {sum(sizes.values())} pool documents ("
          + ", ".join(f"{k} {v}" for k, v in sizes.items()) + f"), {args.targets} targets per label")


if __name__ == "__main__":
    main()
