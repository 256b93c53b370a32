"""Readers beside a writer: queries running while an ``--append`` joins a shard to their index."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from helpers import query, rows, run, snapshot
from nagindex.errors import IndexStateError

QUERY = ("-k", "20", "--weighting", "paper", "--format", "jsonl", "--quiet")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "nagindex.cli", *map(str, args)]


def _selection(out: Path) -> tuple[int, int, list[dict]]:
    """What a query wrote to ``out/``: the index's documents and tokens its manifest records, and its rows."""
    manifest = json.loads((out / ".nagindex-selection.json").read_text())
    selected = [row for p in sorted(out.glob("*.jsonl")) for row in rows(p.read_text())]
    return manifest["index"]["documents"], manifest["index"]["tokens"], selected


def test_queries_during_an_append_see_the_old_index_or_the_new_one_whole(tiny_model, demo_corpus, tmp_path):
    files = sorted(p for p in (demo_corpus / "corpus").rglob("*") if p.is_file())
    targets = demo_corpus / "targets.jsonl"
    old, new, live = tmp_path / "old.index", tmp_path / "new.index", tmp_path / "live.index"
    common = ("--model", tiny_model, "--window", "4", "--quiet")
    run("build", *files[0::2], "-o", old, *common)
    shutil.copytree(old, new)
    shutil.copytree(old, live)
    run("build", *files[1::2], "-o", new, "--append", *common)
    # Both versions, as an uninterrupted query sees them (and the targets' NAGs cached for the queries below).
    versions = {}
    for name, index in (("old", old), ("new", new)):
        query(index, targets, *QUERY, "-o", f"{tmp_path / name}/")
        versions[name] = _selection(tmp_path / name)
    whole = {"old": snapshot(old), "new": snapshot(new)}
    assert versions["old"] != versions["new"]

    # An in-process reader opens the index again and again, reading everything a query reads.
    opened, problems, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen = snapshot(live)
            except IndexStateError as err:
                problems.append(str(err))
                continue
            same = [name for name, s in whole.items() if s["ids"] == seen["ids"] and s["tokens"] == seen["tokens"]
                    and (s["codes"] == seen["codes"]).all()]
            opened.append(same[0] if same else "a mix")
            stop.wait(0.05)

    thread = threading.Thread(target=reader)
    thread.start()
    append = subprocess.Popen(_cli("build", *files[1::2], "-o", live, "--append", *common),
                              stderr=subprocess.PIPE, text=True)
    answered, round_ = [], 0
    try:
        while True:
            appending = append.poll() is None
            # Two queries at a time, each as a user runs it.
            outs = [tmp_path / f"q{round_}-{i}" for i in range(2)]
            procs = [subprocess.Popen(_cli("query", targets, "-i", live, *QUERY, "-o", f"{out}/"),
                                      stderr=subprocess.PIPE, text=True) for out in outs]
            for proc, out in zip(procs, outs):
                _, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                got = _selection(out)
                answered.append(next((name for name, v in versions.items() if v == got), "a mix"))
            round_ += 1
            if not appending:
                break
    finally:
        stop.set()
        thread.join()
        _, err = append.communicate(timeout=300)
    assert append.returncode == 0, err
    assert not problems, problems[0]
    assert "a mix" not in answered and "a mix" not in opened
    # The queries began before the append had finished and after: both versions were seen.
    assert answered[0] == "old" and answered[-1] == "new"
    assert {"old", "new"} <= set(opened)
