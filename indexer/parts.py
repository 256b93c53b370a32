"""The pieces of a build that every engine shares: windows of records, their part files, skipped records.

A build cuts the corpus into numbered windows of documents and writes each
window's NAGs as its own part file inside the shard's ``.partial`` directory,
atomically. Whoever extracts the NAGs (this process, or Ray replicas,
:mod:`indexer.ray_build`) hands windows to one :class:`PartWriter`, so a build
resumes the same way whichever engine ran it before.

Each part records where its window ends in the corpus (docs/design.md §5): a
rerun starts reading after the longest run of finished windows from the
first, with the ids and skipped records of those windows taken from their
parts, and reads none of the corpus before.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from nagindex.atomic import atomic_path
from nagindex.corpus import Position, Record, Skipped, number
from nagindex.indexdir import ShardDir
from nagindex.store import CodeStore, Rows, write_rows
from nagindex.terms import Counts, write_part

log = logging.getLogger(__name__)


def _windows(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    block: list[Record] = []
    for r in records:
        block.append(r)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


@dataclass
class Resume:
    """Where a build whose first ``windows`` windows are finished reads on, and what it read before."""

    windows: int = 0
    documents: int = 0
    start: Position | None = None                           # read_records(start=): after those windows
    skipped: list[Skipped] = field(default_factory=list)    # the records those windows passed over
    seen: dict[str, str] = field(default_factory=dict)      # their ids, with where each was read


def resume_point(work: ShardDir) -> Resume:
    """The longest run of finished parts from the first, as their recorded ends tell it."""
    resume = Resume()
    while (found := work.part_end(resume.windows)) is not None:
        end, seen = found
        if end["documents"] != resume.documents + len(seen):
            break
        resume.seen.update(seen)
        resume.skipped += [Skipped(**s) for s in end["skipped"]]
        resume.start = Position(**end["next"])
        resume.windows += 1
        resume.documents += len(seen)
    return resume


@dataclass
class Window:
    """A numbered window of records, and what its part records of where it ends (ShardDir.mark_part)."""

    k: int
    records: list[Record]
    end: dict


def pending_windows(records: Iterator[Record], work: ShardDir, size: int, skipped: list[Skipped],
                    resume: Resume) -> Iterator[Window]:
    """The numbered windows from ``resume`` on whose parts an earlier run has not written yet.

    ``records`` is read from ``resume.start``; ``skipped`` is the list it adds to.
    """
    reported, documents = len(skipped), resume.documents
    for k, window in enumerate(_windows(records, size), resume.windows):
        documents += len(window)
        end = {"next": dataclasses.asdict(window[-1].after), "documents": documents,
               "skipped": [dataclasses.asdict(s) for s in skipped[reported:]]}
        reported = len(skipped)
        if not work.part(k).exists():
            yield Window(k, window, end)


class PartWriter:
    """Writes each extracted window as its part file, atomically.

    Whoever extracts (this process, or Ray replicas) hands windows here, so a
    build resumes the same way whichever engine ran it before. ``done``: the
    documents an earlier run had written already.
    """

    def __init__(self, work: ShardDir):
        self.work = work
        self.done = 0
        for part in work.parts():
            with CodeStore(part) as store:
                self.done += store.rows

    def write(self, k: int, rows: Rows, end: dict, where: list[str], terms: Counts | None = None) -> None:
        """Write window ``k`` with what :func:`pending_windows` says of its end, ``where`` each record was read
        and, in a build with ``--terms``, the documents' term counts: all in the one part, or none of it."""
        started = time.perf_counter()
        with atomic_path(self.work.part(k)) as tmp:
            write_rows(tmp, rows)
            if terms is not None:
                write_part(tmp, terms)
            self.work.mark_part(tmp, end, dict(zip(rows.ids, where)))
        log.info("part %d: %d documents written in %.2fs", k, len(rows), time.perf_counter() - started)


def kept_fields(window: list[Record], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The ``--keep-field`` values of a window's records, as numbers (NaN where a record has none)."""
    return {name: np.fromiter((number(r.fields.get(name)) for r in window), np.float64, len(window))
            for name in names}


def write_skipped(path: Path, skipped: list[Skipped]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(dataclasses.asdict(s)) + "\n" for s in skipped))


def read_skipped(path: Path) -> list[Skipped]:
    return [Skipped(**json.loads(line)) for line in path.read_text().splitlines()]
