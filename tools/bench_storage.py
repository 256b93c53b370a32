"""A corpus read from a local folder against the same corpus read through fsspec from S3.

The S3 server is moto's, on localhost: the figures are what reading through
fsspec (listing, ranged reads in read-ahead blocks, a Parquet footer fetched
apart) costs over plain local reads, not what a network adds. Printed, for
each way of reaching the corpus, measured in one run over the same files:

- ``read``: ``find_files`` and ``read_records`` alone, documents a second;
- ``build``: ``nagindex build`` as a whole (backbone included), documents a second;
- ``fetch``: every indexed text fetched back and checked (``query --with-text``), seconds;

and the ratio of local to remote. The corpus is ``nagindex demo``'s (JSON
lines, gzipped JSON lines, Parquet and text files).

    python -m tools.bench_storage --docs 400
    python -m tools.bench_storage --docs 2000 --model /path/to/a/small/model
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def s3_bucket(local: Path) -> str:
    """Start a moto S3 server on localhost, point fsspec at it and upload ``local``; its URL."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.config.conf["s3"] = {"endpoint_url": f"http://{host}:{port}"}
    fs = fsspec.filesystem("s3")
    fs.mkdir("bench-corpus")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"bench-corpus/{path.relative_to(local).as_posix()}")
    fs.invalidate_cache()
    return "s3://bench-corpus/"


def measure(corpus, index: Path, model: str | None, max_length: int) -> dict:
    """Seconds to read, to build and to fetch back every text of ``corpus``, and its documents."""
    from indexer.build import BuildOptions, build
    from nagindex import storage
    from nagindex.corpus import find_files, read_records
    from nagindex.settings import ExtractSettings
    from query import Selector

    started = time.perf_counter()
    files = find_files(corpus)
    documents = sum(1 for _ in read_records(files, root=storage.common_root(files)))
    read = time.perf_counter() - started

    options = BuildOptions(model=model, settings=ExtractSettings(max_length=max_length), device="cpu", progress=False)
    report = build(corpus, index, options)

    selector = Selector(index)
    started = time.perf_counter()
    texts = selector.texts(np.arange(selector.index.documents))
    fetch = time.perf_counter() - started
    assert len(texts) == documents == report.documents
    return {"documents": documents, "read": read, "build": report.seconds, "fetch": fetch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=400, help="Documents of the demo corpus.")
    parser.add_argument("--model", default=None, help="Backbone [default: the default backbone].")
    parser.add_argument("--max-length", type=int, default=64, help="Tokens of each document the backbone reads.")
    args = parser.parse_args()

    from nagindex.demo import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_demo(tmp / "demo", docs=args.docs, seed=0)
        local = tmp / "demo" / "corpus"
        files = len([p for p in local.rglob("*") if p.is_file()])
        remote = s3_bucket(local)
        figures = {"local": measure(local, tmp / "local.index", args.model, args.max_length),
                   "s3 (moto, localhost)": measure(remote, tmp / "remote.index", args.model, args.max_length)}

    print(f"{figures['local']['documents']:,} documents in {files} files")
    print(f"{'corpus':<22}{'read docs/s':>14}{'build docs/s':>14}{'fetch s':>10}")
    for name, f in figures.items():
        print(f"{name:<22}{f['documents'] / f['read']:>14,.0f}{f['documents'] / f['build']:>14,.1f}{f['fetch']:>10.2f}")
    here, there = figures["local"], figures["s3 (moto, localhost)"]
    print(f"{'local / s3 speed':<22}{there['read'] / here['read']:>13.1f}x{there['build'] / here['build']:>13.2f}x"
          f"{there['fetch'] / here['fetch']:>9.1f}x")


if __name__ == "__main__":
    main()
