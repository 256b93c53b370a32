"""Codes kept as sets (docs/design.md §2.1): exact whichever way they are read and scored, damage named,
the old uint16 layout still read, and what the sets lose refused with a message."""
from __future__ import annotations

import json
from unittest import mock

import h5py
import numpy as np
import pytest
from helpers import build, query, rows, run

from nagindex.codec import Codebook, SetCodes
from nagindex.errors import IndexStateError
from nagindex.index import Index
from nagindex.store import CHUNK_ROWS, ORDERED, SETS, CodeStore, Rows, StoreWriter, slot_counts_of
from nagindex.synthetic import Pool
from query.scoring import numpy_gather, score_codes, score_stream

N = 2 * CHUNK_ROWS + 123        # a partial last chunk and a partial last run of rows


def _write(path, codes, layout, neurons=1536, block=5000, codebooks=None):
    n = len(codes)
    with StoreWriter(path, n, {"fwd_up": neurons}, layout, codebooks) as out:
        for start in range(0, n, block):
            part = slice(start, min(n, start + block))
            ids = [f"doc-{i}" for i in range(part.start, part.stop)]
            out.write(start, Rows(ids=ids, tokens=np.arange(part.start, part.stop) % 90 + 1,
                                  source_file=np.zeros(len(ids), np.uint32), source_offset=np.arange(part.start, part.stop),
                                  codes={"fwd_up": codes[part]},
                                  impacts={"fwd_up": (codes[part] / 7.0).astype(np.float16)}))
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    codes = Pool.make(0).codes(0, N)
    d = tmp_path_factory.mktemp("codec")
    return codes, {layout: _write(d / f"{layout}.h5", codes, layout) for layout in (ORDERED, SETS)}


def _sets_of(codes):
    return np.sort(codes.astype(np.int64), axis=2)


def _rows():
    rng = np.random.default_rng(1)
    return np.concatenate([[N - 1, 0], rng.integers(0, N, 400), [CHUNK_ROWS, CHUNK_ROWS - 1, N - 1, 15, 16]])


def test_a_codebook_encodes_any_distinct_codes_exactly():
    rng = np.random.default_rng(0)
    codes = np.stack([rng.permutation(300)[:20] for _ in range(3 * 5)]).reshape(3, 5, 20).astype(np.uint16)
    for book in (Codebook.of_counts(slot_counts_of(codes, 300)), Codebook(np.zeros((5, 0), np.uint16)),
                 Codebook.of_counts(-slot_counts_of(codes, 300))):       # fitted, no bits at all, the worst fit
        bits, rest, order = book.encode(codes, 300)
        decoded = book.decode(bits, rest, 20)
        assert np.array_equal(decoded, np.take_along_axis(codes, order, axis=2))
        assert np.array_equal(_sets_of(decoded), _sets_of(codes))
    small = np.stack([rng.permutation(40)[:20] for _ in range(4)])[:, None].astype(np.uint16)   # N < 64 neurons
    book = Codebook.of_counts(slot_counts_of(small, 40))
    assert np.array_equal(_sets_of(book.decode(*book.encode(small, 40)[:2], 20)), _sets_of(small))


def test_a_neuron_twice_in_a_layer_is_refused():
    codes = np.array([[[3, 5, 3]]], np.uint16)
    with pytest.raises(ValueError, match="twice in one layer"):
        Codebook.of_counts(slot_counts_of(codes, 8)).encode(codes, 8)


def test_a_sets_store_gives_back_each_document_s_neurons_however_it_is_read(stores):
    codes, paths = stores
    with CodeStore(paths[SETS]) as store:
        assert store.layout == SETS and store.code_shape("fwd_up") == (N, 30, 20)
        whole = np.concatenate([c for _, c in store.iter_codes("fwd_up")])
        assert np.array_equal(_sets_of(whole), _sets_of(codes))
        assert np.array_equal(store.read_codes("fwd_up", 37, 4100), whole[37:4100])
        getitem = h5py.Dataset.__getitem__

        def in_place(self, *args, **kwargs):
            if self.name.endswith(("/bits", "/rest")):
                raise AssertionError("read through HDF5")
            return getitem(self, *args, **kwargs)

        with mock.patch.object(h5py.Dataset, "__getitem__", in_place):
            assert np.array_equal(store.codes_of("fwd_up", _rows()), whole[_rows()])
        impacts = store.read_rows(0, 1000).impacts["fwd_up"]
        assert np.array_equal(impacts, (whole[:1000] / 7.0).astype(np.float16))   # impacts follow their codes
    with CodeStore(paths[SETS]) as sets, CodeStore(paths[ORDERED]) as ordered:
        assert sets.stored_bytes()["sets"] < 0.6 * ordered.stored_bytes()["codes"]


@pytest.mark.parametrize("targets", [1, 3, 9])
def test_the_scan_scores_a_sets_store_as_it_scores_the_codes(stores, targets):
    codes, paths = stores
    rng = np.random.default_rng(targets)
    for layers in (np.arange(30), np.array([7, 2, 29])):
        counts = rng.integers(0, 60, (len(layers), 1536, targets)).astype(np.float32)
        with CodeStore(paths[SETS]) as sets, CodeStore(paths[ORDERED]) as ordered:
            got = score_stream(sets.iter_stored("fwd_up"), N, counts, layers, 20)
            assert np.array_equal(got, score_stream(ordered.iter_stored("fwd_up"), N, counts, layers, 20))
            assert np.array_equal(got, numpy_gather(codes, counts, layers, 20))
        weights = rng.random((len(layers), 1536, targets)).astype(np.float32)
        with CodeStore(paths[SETS]) as sets:
            np.testing.assert_allclose(score_stream(sets.iter_stored("fwd_up"), N, weights, layers, 20),
                                       numpy_gather(codes, weights, layers, 20), rtol=1e-5)


def test_scoring_a_set_with_fewer_than_its_k_codes_is_refused(stores):
    codes, _ = stores
    book = Codebook.of_counts(slot_counts_of(codes[:100], 1536))
    sets = SetCodes.of(*book.encode(codes[:100], 1536)[:2], book, 20)
    with pytest.raises(ValueError, match="as a set"):
        score_codes(sets, np.ones((30, 1536, 1), np.float32), np.arange(30), 10)


def _damage(path, dataset, at):
    """Flip one byte of ``dataset``'s first chunk, in place."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset + at
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))


@pytest.mark.parametrize("dataset,at", [("sets/fwd_up/bits", 8 * 30 * 5 + 3), ("sets/fwd_up/rest", 41)])
def test_a_damaged_set_is_named_never_scored(stores, tmp_path, dataset, at):
    codes, paths = stores
    path = tmp_path / "damaged.h5"
    path.write_bytes(paths[SETS].read_bytes())
    _damage(path, dataset, at)
    table = np.ones((30, 1536, 1), np.float32)
    with CodeStore(path) as store, pytest.raises(IndexStateError) as err:
        score_stream(store.iter_stored("fwd_up"), N, table, np.arange(30), 20)
    assert str(path) in str(err.value) and "damaged" in str(err.value) and "doc-" in str(err.value)


def _as_written_before_layouts(index):
    """Make an index built with ``--codes ordered`` one written before layouts were recorded."""
    for meta in [index / "manifest.json", *index.glob("shards/*/shard.json")]:
        data = json.loads(meta.read_text())
        data.pop("codes")
        meta.write_text(json.dumps(data))


def test_an_index_of_the_old_layout_is_read_and_appended_as_it_is(tiny_model, demo, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    build(tiny_model, demo / "corpus" / "web-00.jsonl", old, "--codes", "ordered")
    _as_written_before_layouts(old)
    assert "codes" not in json.loads((old / "manifest.json").read_text())
    build(tiny_model, demo / "corpus" / "web-00.jsonl", new)
    assert Index(new).code_layout == SETS and Index(old).code_layout == ORDERED
    picked = [rows(query(i, demo / "targets.jsonl", "-k", "2000").output) for i in (old, new)]
    assert [r["id"] for r in picked[0]] == [r["id"] for r in picked[1]]
    build(tiny_model, demo / "corpus" / "web-02.parquet", old, "--append")
    assert [s.store.layout for s in Index(old).shards] == [ORDERED, ORDERED]
    result = run("build", demo / "corpus" / "web-01.jsonl.gz", "-o", old, "--model", tmp_path / "no-model",
                 "--append", "--codes", "sets", ok=False)
    assert f"--codes sets: the index {old} keeps its codes ordered" in result.output
    assert query(old, demo / "targets.jsonl", "-k", "2000", "--top-k", "5").exit_code == 0


def test_k_prime_below_k_is_refused_on_a_sets_index(demo_index, demo):
    result = query(demo_index, demo / "targets.jsonl", "-k", "2000", "--top-k", "5", ok=False)
    assert result.exit_code != 0
    assert "--top-k 5" in result.output and "--codes ordered" in result.output
