"""Telling the user what a long command is doing, so that none of its steps is silent.

Everything goes to stderr (stdout carries a query's rows when no file is
named), through three things: :func:`phase` names a step as it starts (with
``-v``, the ``nagindex`` log records its start and its duration instead);
:func:`bar` is a progress bar over a step's units; :class:`CorpusBar` is a
build's bar, with a total and an ETA from the corpus's own sizes (Parquet
footers, the bytes of JSON lines files as stored; docs/design.md §5.1.1).
:func:`showing` turns the lines and bars off (``--quiet``) for what runs
inside it.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, Sequence

from tqdm.auto import tqdm

from . import storage
from .corpus import Record, known_documents

log = logging.getLogger("nagindex")

_shown = True

#: Seconds between redraws of a bar on a terminal, and in a log file (where every redraw is a line).
_REDRAW_TTY, _REDRAW_FILE = 0.1, 30.0


@contextlib.contextmanager
def showing(flag: bool) -> Iterator[None]:
    """Lines and bars shown (``flag``) or not inside the block; the setting before it comes back after."""
    global _shown
    before, _shown = _shown, flag
    try:
        yield
    finally:
        _shown = before


def shown() -> bool:
    return _shown


@contextlib.contextmanager
def phase(what: str) -> Iterator[None]:
    """Name ``what`` on stderr as it starts; with ``-v`` the log has its start and duration instead."""
    logged = log.isEnabledFor(logging.INFO)
    if logged:
        log.info("%s …", what)
    elif _shown:
        tqdm.write(f"{what} …", file=sys.stderr)
        sys.stderr.flush()
    started = time.perf_counter()
    yield
    log.info("%s: %.1fs", what, time.perf_counter() - started)


def bar(*, leave: bool = True, **kwargs) -> tqdm:
    """A progress bar on stderr (none when not :func:`shown`); ``kwargs`` are tqdm's.

    On a terminal a bar redraws itself in place and, without ``leave``, is wiped at the end; in a log
    file every redraw is a line, so it redraws every half minute and keeps its last line.
    """
    tty = sys.stderr.isatty()
    # miniters=1: redrawn on an update once ``mininterval`` has passed, never by tqdm's own timer
    # (which would repeat the last line in a log file).
    return _Bar(file=sys.stderr, disable=not _shown, dynamic_ncols=True, leave=leave or not tty, miniters=1,
                mininterval=_REDRAW_TTY if tty else _REDRAW_FILE, **kwargs)


class _Bar(tqdm):
    def close(self) -> None:
        # A bar's last line ends when it closes: flushed then, before anything written to stdout after it.
        super().close()
        sys.stderr.flush()


class CorpusBar:
    """How far a build is through its corpus, with a total and an ETA.

    In documents when every file says how many it holds (a Parquet footer,
    a local Arrow file's batch headers; a text file is one document); otherwise in bytes of the files as stored,
    where a JSON lines record is as far as reading its file had got
    (compressed bytes for a compressed file: ``Record.position``) and a
    Parquet or Arrow row counts its share of the file's size. Counted by position, so
    a resumed build starts where it is and skipped bad records count as read.

    Windows (lists of records, in corpus order) advance the bar batch by batch
    (:meth:`advance`): each window's span, from the end of the window before
    to its last record, is shared out over its documents as they are done.
    """

    def __init__(self, files: Sequence[storage.Location], *, by_position: bool = True, done: int = 0):
        """``by_position=False`` (windows done out of order, on Ray): documents are counted instead,
        from ``done``, against a total only where the files give one."""
        self._counts = [known_documents(f) for f in files]
        self.by_documents = all(c is not None for c in self._counts)
        self.by_position = by_position
        self.unit = "B" if by_position and not self.by_documents else "doc"
        self._sizes = None if self.by_documents else [storage.info(storage.location(f))["size"] for f in files]
        self._before = [0]              # the extent of the files before each one, in the bar's unit
        for extent in self._counts if self.by_documents else self._sizes:
            self._before.append(self._before[-1] + extent)
        self.total = self._before[-1] if self.by_documents or by_position else None
        self._done = done
        self._window: list[Record] | None = None
        self._start = self._end = None
        self._documents = self._tokens = 0
        self._started = time.perf_counter()
        self._bar: tqdm | None = None

    def describe(self) -> str:
        """The corpus's size as the bar counts it, for the line that starts the build."""
        n = len(self._counts)
        files = f"{n:,} file{'s' if n != 1 else ''}"
        if self.by_documents:
            return f"{files}, {self.total:,} documents"
        return f"{files}, {_bytes(self._before[-1])}"

    def at(self, record: Record) -> float:
        """Where the corpus has been read to once ``record`` is read, in the bar's unit."""
        i = record.file_index
        if self.by_documents:
            return self._before[i] + record.offset + 1
        count = self._counts[i]
        within = record.position if count is None else self._sizes[i] * min(record.offset + 1, count) / count
        return self._before[i] + within

    def advance(self, window: list[Record], documents: int, tokens: int) -> None:
        """``documents`` more of ``window`` are done, holding ``tokens`` tokens the backbone read."""
        if not self.by_position:
            self._move(self._done + self._documents + documents, documents, tokens)
            return
        if window is not self._window:
            last = self.at(window[-1])
            # The first window of a run starts where its first record is: before it if counted in documents.
            first = self._end if self._end is not None else self.at(window[0]) - (1 if self.by_documents else 0)
            self._window, self._start, self._end, self._in_window = window, first, last, 0
        self._in_window += documents
        share = min(self._in_window / len(window), 1.0)
        self._move(self._start + (self._end - self._start) * share, documents, tokens)

    def _move(self, to: float, documents: int, tokens: int) -> None:
        if self._bar is None:
            start = self._start if self.by_position else self._done
            self._bar = bar(total=self.total, initial=round(start), unit=self.unit, unit_scale=True,
                            unit_divisor=1024 if self.unit == "B" else 1000, desc="extracting")
        self._documents += documents
        self._tokens += tokens
        rate = self._tokens / max(time.perf_counter() - self._started, 1e-9)
        postfix = f"{rate:,.0f} tok/s"
        if self.unit == "B":
            postfix = f"{self._documents:,} docs, {postfix}"
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(round(to) - self._bar.n)

    def finish(self) -> None:
        """Every record has been read: the bar is full, whatever bad records or trailing bytes were passed."""
        if self._bar is not None and self.total is not None:
            self._bar.update(self.total - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "CorpusBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
