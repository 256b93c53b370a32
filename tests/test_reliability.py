"""What an index promises: one writer at a time, damage named and never scored, only its own files read, kills survived."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import build, query, run, snapshot
from nagindex.atomic import atomic_path
from nagindex.errors import IndexStateError
from nagindex.index import Index


def start(*args) -> subprocess.Popen:
    """``nagindex ARGS`` in its own process, as a second user would run it."""
    return subprocess.Popen([sys.executable, "-m", "nagindex.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the process ended first: {proc.communicate()}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def one_line(result) -> str:
    """The error of a failed command: exit non-zero, one line, no traceback (after the steps it had begun)."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output, result.output
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: "), result.output
    return error


@pytest.fixture
def index(demo_index, tmp_path) -> Path:
    """A copy of the demo index that a test may damage."""
    shutil.copytree(demo_index, tmp_path / "demo.index")
    return tmp_path / "demo.index"


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    from nagindex.demo import make_demo

    path = tmp_path_factory.mktemp("big")
    make_demo(path, docs=400, seed=5)
    return path / "corpus"


# -- one writer at a time ----------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_first_and_readers_are_told_to_wait(tiny_model, big_corpus, demo,
                                                                                    tmp_path):
    index = tmp_path / "i"
    first = start("build", big_corpus, "-o", index, "--model", tiny_model, "--window", "4", "--quiet")
    wait_for(lambda: list(index.glob("shards/00000.partial/part-000002.h5")), first)
    second = build(tiny_model, big_corpus, index, "--window", "4", ok=False)
    assert f"is being written by pid {first.pid}" in one_line(second) and "build" in second.output
    reader = query(index, demo / "targets.jsonl", "-k", "5", ok=False)
    assert "a build is in progress" in one_line(reader) and f"pid {first.pid}" in reader.output
    assert first.wait() == 0, first.communicate()
    assert Index(index).documents > 0


def test_concurrent_appends_never_mix_corpora_or_lose_documents(tiny_model, big_corpus, tmp_path):
    files = sorted(p for p in big_corpus.rglob("*") if p.is_file())
    index = tmp_path / "i"
    build(tiny_model, files[0], index)
    halves = (files[1::2], files[2::2])
    procs = [start("build", *half, "-o", index, "--model", tiny_model, "--append", "--quiet") for half in halves]
    outcomes = [(p.wait(), p.communicate()[1]) for p in procs]
    assert all("Traceback" not in err for _, err in outcomes), outcomes
    refused = [half for half, (code, err) in zip(halves, outcomes) if code != 0]
    assert all("is being written by pid" in err for code, err in outcomes if code != 0), outcomes
    for half in refused:                           # the one refused goes in once the first is done
        run("build", *half, "-o", index, "--model", tiny_model, "--quiet", "--append")
    idx = Index(index)
    assert idx.documents == len(set(idx.ids)) == len(Index(index).ids)
    assert sorted({f["path"] for s in idx.shards for f in s.meta["files"]}) == sorted(map(str, files))
    for shard in idx.shards[1:]:                   # each shard holds one whole corpus
        assert [f["path"] for f in shard.meta["files"]] in [list(map(str, h)) for h in halves]
    whole = tmp_path / "whole"
    build(tiny_model, big_corpus, whole)
    assert idx.documents == Index(whole).documents


def test_two_identical_builds_at_once_give_one_index_and_no_traceback(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    procs = [start("build", demo / "corpus", "-o", index, "--model", tiny_model, "--quiet") for _ in range(2)]
    outcomes = [(p.wait(), p.communicate()[1]) for p in procs]
    assert all("Traceback" not in err for _, err in outcomes), outcomes
    assert 0 in [code for code, _ in outcomes]
    assert "nothing to do" in build(tiny_model, demo / "corpus", index).output
    assert Index(index).documents == 60


# -- kills ---------------------------------------------------------------------------

def test_builds_appends_and_merges_killed_at_random_moments_give_the_uninterrupted_index(tiny_model, tmp_path):
    """tools.fault_campaign, a few trials: every operation killed at random points, resumed, compared."""
    result = subprocess.run([sys.executable, "-m", "tools.fault_campaign", "--model", str(tiny_model),
                             "--dir", str(tmp_path), "--trials", "3", "--kills", "1", "--docs", "60", "--seed", "1"],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    counts = {k: int(v) for k, v in re.findall(r"(trials|kills|reruns|mismatches) (\d+)", result.stdout)}
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts["trials"] == 3 and counts["mismatches"] == 0 and counts["reruns"] == 0


def test_a_rerun_of_an_append_that_was_committed_says_it_is_done(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus" / "web-00.jsonl", index)
    build(tiny_model, demo / "corpus" / "web-02.parquet", index, "--append")
    before = snapshot(index)
    assert "nothing to do" in build(tiny_model, demo / "corpus" / "web-02.parquet", index, "--append").output
    assert snapshot(index)["ids"] == before["ids"]


def test_what_a_killed_writer_left_is_cleared_and_not_counted(tiny_model, demo, index):
    shard = index / "shards" / "00000"
    size = run("info", index).output
    orphan = shard / f".codes.h5.tmp-{os.getpid() + 1}"
    orphan.write_bytes(b"\0" * 5_000_000)
    assert run("info", index).output == size
    other = demo / "extra.jsonl"
    other.write_text(json.dumps({"id": "extra-1", "text": "cell energy and flour"}) + "\n")
    build(tiny_model, other, index, "--append")
    assert not orphan.exists()


def test_files_are_on_disk_before_they_are_renamed(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    with atomic_path(tmp_path / "store.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f["x"] = np.arange(3)
    assert str(tmp) in synced and str(tmp_path) in synced


# -- settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("option, differs", [
    (("--top-k", "10"), "settings.top_k: 20, now 10"),
    (("--max-length", "60"), "settings.max_length: 120, now 60"),
    (("--neuron-type", "att_o"), "settings.neuron_types: fwd_up, now att_o"),
    (("--faiss", "SQ4"), "vectors.faiss: PQ512x4fs, now SQ4"),
    (("--sketch-dim", "256"), "vectors.sketch dim: 2048, now 256"),
])
def test_a_rebuild_asking_for_other_settings_is_refused_naming_them(tiny_model, demo_corpus, index, option, differs):
    before = (index / "manifest.json").read_text()
    result = build(tiny_model, demo_corpus / "corpus", index, *option, ok=False)
    assert differs in one_line(result)
    assert (index / "manifest.json").read_text() == before


def test_unmerged_parts_say_to_merge(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    for i in range(2):
        build(tiny_model, demo / "corpus", index, "--shard", f"{i}/2")
    assert f"run `nagindex merge {index}`" in one_line(query(index, demo / "targets.jsonl", "-k", "5", ok=False))


# -- damage --------------------------------------------------------------------------------

def test_flipped_codes_are_found_not_scored(index, demo_corpus):
    targets = demo_corpus / "targets.jsonl"
    with h5py.File(index / "shards" / "00000" / "codes.h5", "r+") as f:
        bits = f["sets/fwd_up/bits"]
        flat = bits[...].reshape(-1)
        rng = np.random.default_rng(0)
        at = rng.choice(flat.size, 100, replace=False)
        flat[at] ^= np.left_shift(np.uint64(1), rng.integers(0, 64, 100).astype(np.uint64))   # a neuron more or fewer
        bits[...] = flat.reshape(bits.shape)
    for search in ("exact", "approx"):
        out = one_line(query(index, targets, "-k", "20", "--search", search, ok=False))
        assert "codes.h5" in out and "do not match their checksum" in out
    out = run("verify", index, ok=False).output
    assert "codes.h5: sha256 differs" in out and "checksum" in out


@pytest.mark.parametrize("damage, says", [
    ("truncate codes.h5", "codes.h5: 1,000 bytes, shard.json records"),
    ("flip the HDF5 signature", "codes.h5: not a readable code store"),
    ("drop a dataset", "codes.h5: damaged code store, no dataset 'tokens'"),
    ("flip a token count", "codes.h5: cannot read tokens"),
    ("truncate vectors.faiss", "vectors.faiss: damaged FAISS file"),
    ("garble shard.json", "shard.json: damaged shard metadata"),
])
def test_a_damaged_file_is_one_line_naming_it(index, demo_corpus, damage, says):
    shard = index / "shards" / "00000"
    codes = shard / "codes.h5"
    if damage == "truncate codes.h5":
        os.truncate(codes, 1000)
    elif damage == "flip the HDF5 signature":
        _flip(codes, 1)
    elif damage == "drop a dataset":
        with h5py.File(codes, "r+") as f:
            del f["tokens"]
        _record_size(shard, "codes.h5")
    elif damage == "flip a token count":
        with h5py.File(codes, "r") as f:
            at = f["tokens"].id.get_chunk_info(0).byte_offset
        _flip(codes, at + 3)
    elif damage == "truncate vectors.faiss":
        os.truncate(shard / "vectors.faiss", 100)
        _record_size(shard, "vectors.faiss")                # a FAISS file that fails to parse, not only short
    else:
        (shard / "shard.json").write_text((shard / "shard.json").read_text()[:-40])
    out = one_line(query(index, demo_corpus / "targets.jsonl", "-k", "5", "--search", "approx", ok=False))
    assert says in out
    verified = run("verify", index, ok=False)
    assert verified.exit_code == 1 and str(shard) in verified.output and "Traceback" not in verified.output


def test_verify_passes_an_intact_index(demo_index):
    assert "nothing damaged" in run("verify", demo_index).output


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x5A]))


def _record_size(shard: Path, name: str) -> None:
    """Make shard.json agree with a damaged file's size, as if it had been damaged in place."""
    meta = json.loads((shard / "shard.json").read_text())
    meta["stored"][name]["bytes"] = (shard / name).stat().st_size
    (shard / "shard.json").write_text(json.dumps(meta))


# -- paths --------------------------------------------------------------------------------

def _edit(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def test_a_shard_name_out_of_the_index_is_refused(index):
    _edit(index / "manifest.json", lambda m: m["shards"][0].update(name="../../x"))
    with pytest.raises(IndexStateError, match=r"refusing shard name '\.\./\.\./x'"):
        Index(index)


@pytest.mark.parametrize("path", ["/etc/passwd", "/tmp/a/../../etc/passwd.jsonl", "relative/web.jsonl"])
def test_a_corpus_path_that_is_not_a_corpus_file_is_refused(index, demo_corpus, path):
    _edit(index / "shards" / "00000" / "shard.json", lambda m: m["files"][0].update(path=path))
    out = one_line(query(index, demo_corpus / "targets.jsonl", "-k", "5", "--with-text", ok=False))
    assert f"refusing corpus file {path!r}" in out


def test_a_file_linked_from_outside_the_index_is_refused(index, tmp_path):
    codes = index / "shards" / "00000" / "codes.h5"
    outside = tmp_path / "elsewhere.h5"
    shutil.move(codes, outside)
    codes.symlink_to(outside)
    with pytest.raises(IndexStateError, match="refusing a file outside the index"):
        Index(index)


def test_a_lock_record_half_written_by_a_killed_part_build_is_cleared(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    locks = index / "locks"
    locks.mkdir(parents=True)
    orphan = locks / f".00001-of-00002.json.tmp-{os.getpid() + 1}"
    orphan.write_text('{"pid": ')
    other = locks / f".00000-of-00002.json.tmp-{os.getpid() + 2}"   # another part's, which may be alive
    other.write_text('{"pid": ')
    build(tiny_model, demo / "corpus", index, "--shard", "1/2")
    assert not orphan.exists() and other.exists()
