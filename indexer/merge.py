"""``nagindex merge``: join the parts that independent workers built into one index.

``nagindex build --shard i/N`` writes part ``i`` into ``shards/0000i-of-0000N``
and leaves the manifest alone, so N workers (a Slurm array, a Ray job, N
machines) need no coordination. Merging lists the N finished parts in the
manifest, in part order, after the shards it already lists; nothing is copied,
the shard directories stay where the workers wrote them. The manifest is
replaced by an atomic rename, so a reader sees the index before or after the
merge, never in between.

Merging checks what a single build would: all parts exist and are finished,
share one backbone and one set of settings, read disjoint corpus files, and
hold no id twice (a single build refuses a corpus that does; each worker
could only check its own files).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nagindex.errors import IndexStateError
from nagindex.idhash import shared_rows
from nagindex.index import source_of
from nagindex.indexdir import IndexDir, comparable, describe_holder, differences, header_of, part_name
from nagindex.store import CodeStore


@dataclass
class MergeReport:
    index: Path
    merged: list[str]          # shard names newly listed, in part order
    documents: int             # in the whole index
    tokens: int


def merge(index_path: str | os.PathLike) -> MergeReport:
    """List the finished ``build --shard i/N`` parts of ``index_path`` in its manifest.

    Args:
        index_path: the index directory the workers wrote their parts into.

    Returns:
        A :class:`MergeReport`: the shard names newly listed, and the index's documents and tokens.

    Raises:
        IndexStateError: a part is missing or unfinished, parts disagree on backbone or settings,
            a corpus file or a document id is in two parts, or another writer holds the index.

    Holds the index's writer lock while it checks the parts and rewrites the manifest.
    """
    index = IndexDir(index_path)
    if not index.shards_path.is_dir():
        raise _no_shards(index)
    with index.lock():
        return _merge(index)


def _merge(index: IndexDir) -> MergeReport:
    manifest = index.read_manifest()
    listed = [s.name for s in index.listed(manifest)]
    index.clean(index.listed(manifest))
    parts = index.unlisted_parts(set(listed))
    if not parts:
        if manifest:
            return MergeReport(index.path, [], manifest["documents"], manifest["tokens"])
        raise _no_shards(index)
    n = _split_size(index, parts)
    _check_complete(index, parts, n)
    names = [part_name(i, n) for i in range(n)]
    metas = [index.shard(s).read_meta() for s in listed + names]
    header = header_of(manifest) if manifest else header_of(metas[0])
    _check_same_header(index, manifest, listed + names, metas, header)
    _check_disjoint(listed + names, metas)
    _check_unique_ids(index, listed + names, metas)
    joined = index.write_manifest(metas, header)
    return MergeReport(index.path, names, joined["documents"], joined["tokens"])


def _no_shards(index: IndexDir) -> IndexStateError:
    return IndexStateError(f"{index.path}: no shards to merge; build them with `nagindex build CORPUS -o {index.path} --shard i/N`")


def _split_size(index: IndexDir, parts: dict[tuple[int, int], bool]) -> int:
    sizes = sorted({n for _, n in parts})
    if len(sizes) > 1:
        examples = ", ".join(next(part_name(i, n) for i, m in parts if m == n) for n in sizes)
        raise IndexStateError(
            f"{index.shards_path}: holds parts of splits into {' and '.join(map(str, sizes))} "
            f"({examples}); all workers must use the same --shard i/N; delete the parts of the other splits")
    return sizes[0]


def _check_complete(index: IndexDir, parts: dict[tuple[int, int], bool], n: int) -> None:
    missing = [part_name(i, n) for i in range(n) if (i, n) not in parts]
    unfinished = [part_name(i, n) for i in range(n) if parts.get((i, n)) is False]
    if missing or unfinished:
        problems = []
        if missing:
            problems.append(f"not built: {', '.join(missing)}")
        if unfinished:
            building = {name: index.part_lock(name).holder() for name in unfinished}
            problems.append("unfinished: " + ", ".join(
                name + (f" (being built by {describe_holder(who)})" if who is not None else "")
                for name, who in building.items()))
        raise IndexStateError(
            f"{index.path}: cannot merge, {len(missing) + len(unfinished)} of the {n} parts are not ready "
            f"({'; '.join(problems)}); run or rerun `nagindex build CORPUS -o {index.path} --shard i/{n}` for each")


def _check_same_header(index: IndexDir, manifest: dict | None, names: list[str], metas: list[dict], header: dict) -> None:
    reference = f"{index.manifest_path}" if manifest else f"shard {names[0]}"
    for name, meta in zip(names, metas):
        changed = differences(comparable(header), comparable(meta))
        if changed:
            raise IndexStateError(
                f"shard {name} was built with other settings than {reference} ({'; '.join(changed)}); "
                "an index holds one backbone and one set of settings: rebuild that shard with the same options")


def _check_disjoint(names: list[str], metas: list[dict]) -> None:
    """Workers given different corpora would index some files twice."""
    owner: dict[str, str] = {}
    for name, meta in zip(names, metas):
        for f in meta["files"]:
            if f["path"] in owner:
                raise IndexStateError(
                    f"{f['path']} is in both shard {owner[f['path']]} and shard {name}; "
                    "all workers must be given the same corpus")
            owner[f["path"]] = name


def _check_unique_ids(index: IndexDir, names: list[str], metas: list[dict]) -> None:
    """Refuse an id held twice, naming both places.

    Parts are compared two at a time by their sorted id hashes, joined a block
    of each at a time (``CodeStore.iter_id_hashes``, ``idhash.shared_rows``),
    and the ids behind a shared hash by themselves: two blocks of hashes in
    memory, and two parts' stores open, however many parts are merged and
    however large (docs/design.md §5.2).
    """
    for i, name in enumerate(tqdm(names, unit="shard", desc="checking ids", disable=None)):
        with CodeStore(index.shard(name).codes) as store:
            for j in range(i + 1, len(names)):
                with CodeStore(index.shard(names[j]).codes) as other:
                    for mine, rows in shared_rows(store.iter_id_hashes(), other.iter_id_hashes()):
                        ids = store.ids_of(mine)
                        same = np.flatnonzero(ids == other.ids_of(rows))
                        if len(same):
                            k = same[0]
                            raise IndexStateError(
                                f"id {ids[k]!r} is in shard {name} ({source_of(store, metas[i], int(mine[k]))}) "
                                f"and in shard {names[j]} ({source_of(other, metas[j], int(rows[k]))}); a build "
                                "refuses a corpus that holds an id twice: give every document its own id and rebuild "
                                "the parts that hold it")
