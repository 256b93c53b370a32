"""Target files: which task each example belongs to."""
from __future__ import annotations

import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nagindex.errors import InputError
from query import read_targets
from query.targets import cached_codes


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_tasks_are_named_after_their_whole_file_name(tmp_path):
    _jsonl(tmp_path / "mmlu.stem.jsonl", [{"text": "a b"}, {"text": "c d"}])
    _jsonl(tmp_path / "mmlu.humanities.jsonl", [{"text": "e f"}])
    with gzip.open(tmp_path / "arc.easy.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "g h"}) + "\n")
    pq.write_table(pa.table({"text": ["i j"]}), tmp_path / "hella.swag.parquet")
    targets = read_targets(tmp_path)
    assert set(targets.groups()) == {"mmlu.stem", "mmlu.humanities", "arc.easy", "hella.swag"}
    assert len(targets.groups()["mmlu.stem"]) == 2


def test_falsy_task_names_are_kept(tmp_path):
    path = _jsonl(tmp_path / "mix.jsonl", [{"text": "a", "target": 0}, {"text": "b", "target": False},
                                           {"text": "c", "target": 1.5}, {"text": "d"}, {"text": "e", "target": 0}])
    targets = read_targets(path)
    assert targets.names == ["0", "false", "1.5", "mix", "0"]
    assert list(targets.groups()) == ["0", "false", "1.5", "mix"]


@pytest.mark.parametrize("value,message", [("", "is empty"), ("  ", "is empty"), ([1], "must name a task.*not list"),
                                           ({"a": 1}, "must name a task.*not dict")])
def test_a_task_name_that_names_nothing_is_refused_with_its_line(tmp_path, value, message):
    path = _jsonl(tmp_path / "t.jsonl", [{"text": "a", "target": "x"}, {"text": "b", "target": value}])
    with pytest.raises(InputError, match=rf"t\.jsonl, line 2: 'target' {message}"):
        read_targets(path)


def test_concurrent_first_queries_share_the_target_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAGINDEX_CACHE", str(tmp_path))
    codes = {"fwd_up": np.arange(2_000_000, dtype=np.uint16).reshape(-1, 4, 10)}
    for round in range(8):
        start = threading.Barrier(6)

        def first_query():
            start.wait()
            return cached_codes(f"key-{round}", ["fwd_up"], lambda: codes)

        with ThreadPoolExecutor(6) as pool:
            results = [f.result() for f in [pool.submit(first_query) for _ in range(6)]]
        assert all(np.array_equal(r["fwd_up"], codes["fwd_up"]) for r in results)
        np.testing.assert_array_equal(cached_codes(f"key-{round}", ["fwd_up"], None)["fwd_up"], codes["fwd_up"])
    assert sorted(p.name for p in (tmp_path / "targets").iterdir()) == sorted(f"key-{r}.npz" for r in range(8))
