"""A stored file, local or remote, as the stream of its decompressed bytes, which is what offsets count.

Compression is told by the file's name (``.gz``, ``.zst``); the stream is read
forward and bounded, so a build can read a corpus it cannot hold and a
truncated or hostile file is an error rather than a silent loss or a
memory blow-up.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from typing import IO, Iterator

import pyarrow as pa
import zstandard

from .. import storage
from ..storage import Location

READ_CHUNK = 1 << 20
# Files written with `zstd --long` need a window beyond the library's default limit.
_ZSTD_MAX_WINDOW = 1 << 31
# Compressed bytes decoded at a time: a zstd block of 4 bytes can stand for 128 KiB,
# so this bounds what one step holds (8 MiB) however the file was made.
_ZSTD_SLICE = 256
#: What a missing, forbidden, truncated or corrupt file raises while being read.
UNREADABLE = (OSError, EOFError, zlib.error, zstandard.ZstdError, pa.ArrowException)


@contextlib.contextmanager
def open_binary(path: Location) -> Iterator[IO[bytes]]:
    """``path`` as a stream of its decompressed bytes."""
    with storage.open_input(path) as stored, decompressed(stored, path) as stream:
        yield stream


def decompressed(stored: IO[bytes], path: Location) -> IO[bytes]:
    """The decompressed bytes of the file ``stored`` (compressed as the name of ``path`` says); the caller
    closes ``stored``, whose position is then how far into the file as stored reading has got."""
    name = storage.name(path).lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=stored, mode="rb")
    if name.endswith(".zst"):
        return io.BufferedReader(_ZstdReader(stored), buffer_size=READ_CHUNK)
    return stored


def skip_to(stream: IO[bytes], offset: int, position: int = 0) -> None:
    """Move a stream at ``position`` on to ``offset``: a seek where it can, else reading and discarding."""
    if offset == position:
        return
    if stream.seekable():
        stream.seek(offset)
    else:
        count = offset - position
        while count > 0:
            chunk = stream.read(min(count, READ_CHUNK))
            if not chunk:
                return
            count -= len(chunk)


def skip_line(stream: IO[bytes]) -> int:
    """Read past the rest of a line, a chunk at a time; return how many bytes it held."""
    count = 0
    while chunk := stream.readline(READ_CHUNK):
        count += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return count


class _ZstdReader(io.RawIOBase):
    """A zstd file's decompressed bytes, raising if the file ends inside a frame.

    zstandard's own ``stream_reader`` ends quietly at a truncated frame, which
    would lose the end of an interrupted download without a word. Frames are
    decoded one after another, so files from parallel compressors read whole.
    The input is fed ``_ZSTD_SLICE`` bytes at a time (zstandard's ``decompressobj``
    takes no output limit): a bomb of a file costs a few MiB a step, not its
    decompressed size.
    """

    def __init__(self, file: IO[bytes]):
        self._file = file
        self._chunks = self._decompress()
        self._left = memoryview(b"")

    def _decompress(self) -> Iterator[bytes]:
        decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        frame, inside = decompressor.decompressobj(), False
        while chunk := self._file.read(READ_CHUNK):
            view = memoryview(chunk)
            for start in range(0, len(view), _ZSTD_SLICE):
                data = view[start:start + _ZSTD_SLICE]
                while data:
                    if out := frame.decompress(data):
                        yield out
                    inside = not frame.eof
                    if inside:
                        break
                    data = frame.unused_data
                    frame = decompressor.decompressobj()
        if inside:
            raise zstandard.ZstdError("the file ends inside a frame (truncated?)")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()
