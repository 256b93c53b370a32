"""The code store: rows come back as written, whichever way they are read."""
from __future__ import annotations

import contextlib
import shutil
from unittest import mock

import h5py
import numpy as np
import pytest

from nagindex.store import CHUNK_ROWS, CodeStore, Rows, write_rows

N = 2 * CHUNK_ROWS + 123        # a partial last chunk


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 1536, (N, 4, 5), dtype=np.uint16)
    path = tmp_path_factory.mktemp("store") / "codes.h5"
    write_rows(path, Rows(ids=[f"doc-{i}" for i in range(N)], tokens=rng.integers(1, 100, N),
                          source_file=np.zeros(N, np.uint32), source_offset=np.arange(N), codes={"fwd_up": codes}))
    return path, codes


def _rows():
    """Unsorted, repeated, in every chunk, the first and last rows included."""
    rng = np.random.default_rng(1)
    return np.concatenate([[N - 1, 0], rng.integers(0, N, 500), [CHUNK_ROWS, CHUNK_ROWS - 1, N - 1]])


@contextlib.contextmanager
def _no_hdf5_reads():
    """Inside, reading codes through h5py fails: the codes read come from the file's bytes in place
    (their checksums, 4 bytes a row, are still read through HDF5)."""
    getitem, read_direct = h5py.Dataset.__getitem__, h5py.Dataset.read_direct

    def refusing(read):
        def guarded(self, *args, **kwargs):
            if self.name.startswith("/codes/"):
                raise AssertionError("read through HDF5")
            return read(self, *args, **kwargs)
        return guarded

    with mock.patch.object(h5py.Dataset, "__getitem__", refusing(getitem)), \
            mock.patch.object(h5py.Dataset, "read_direct", refusing(read_direct)):
        yield


def test_rows_are_read_in_place_through_a_memory_map(written):
    path, codes = written
    with CodeStore(path) as store:
        with _no_hdf5_reads():
            assert np.array_equal(store.codes_of("fwd_up", _rows()), codes[_rows()])
        assert store.codes_of("fwd_up", np.zeros(0, np.int64)).shape == (0, 4, 5)
        assert list(store.ids_of(_rows()[:4])) == [f"doc-{i}" for i in _rows()[:4]]


def test_a_compressed_store_is_read_by_whole_chunks(written, tmp_path):
    path, codes = written
    compressed = tmp_path / "compressed.h5"
    with h5py.File(path, "r") as src, h5py.File(compressed, "w") as dst:
        for name in src:
            src.copy(name, dst)
        dst.attrs.update(src.attrs)
        del dst["codes/fwd_up"]
        dst.create_dataset("codes/fwd_up", data=codes, chunks=(CHUNK_ROWS, 4, 5), compression="gzip")
    with CodeStore(compressed) as store:
        with pytest.raises(AssertionError, match="read through HDF5"), _no_hdf5_reads():
            store.codes_of("fwd_up", _rows())
        assert np.array_equal(store.codes_of("fwd_up", _rows()), codes[_rows()])


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "written-before-id-hashes"])
def test_the_sorted_id_hashes_come_in_blocks_in_their_order(written, tmp_path, stored):
    path = written[0]
    if not stored:
        path = tmp_path / "before.h5"
        shutil.copy(written[0], path)
        with h5py.File(path, "r+") as f:
            del f["id_hashes"], f["id_hash_rows"]
    with CodeStore(path) as store:
        whole = store.id_hashes()
        blocks = list(store.iter_id_hashes(CHUNK_ROWS + 1))
        assert [len(h) for h, _ in blocks] == [CHUNK_ROWS + 1, CHUNK_ROWS + 1, N - 2 * (CHUNK_ROWS + 1)]
        assert np.array_equal(np.concatenate([h for h, _ in blocks]), whole.hashes)
        assert np.array_equal(np.concatenate([r for _, r in blocks]), whole.rows)
        assert np.all(whole.hashes[1:] >= whole.hashes[:-1]) and sorted(whole.rows) == list(range(N))
