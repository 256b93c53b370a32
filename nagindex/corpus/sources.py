"""Where an indexed corpus file is now, and whether it is still the one indexed, before anything is
fetched from it."""
from __future__ import annotations

import os
from typing import Sequence

from .. import storage
from ..errors import InputError
from ..storage import Location
from .records import cannot_read, display


def reroot(path: str | os.PathLike, roots: Sequence[tuple[str | os.PathLike, str | os.PathLike]]) -> Location:
    """Where an indexed corpus file is now, the corpus having moved from each ``old`` to its ``new`` (paths or URLs)."""
    path = storage.location(path)
    for old, new in roots:
        old = storage.location(old)
        if storage.is_url(old) != storage.is_url(path):
            continue
        rel = storage.relative(path, old)
        if rel != ".." and not rel.startswith("../"):
            return storage.location(new) if rel == "." else storage.join(storage.location(new), *rel.split("/"))
    return path


def check_source(path: Location, recorded: dict, *, by_time: bool) -> None:
    """Refuse a corpus file that is not the one indexed, before reading from it.

    A file that is gone or has another size has changed. ``by_time`` also
    refuses another modification time: for records that cannot be verified one
    by one, the time is all there is to go by (a copy that kept its contents
    but not its time passes where each record's text is checked).

    Args:
        path: the file, where it is now.
        recorded: what ``shard.json`` recorded of it (``size``, ``mtime``, ``etag``).
        by_time: refuse another modification time (or version tag) too.
    """
    label = display(path)
    try:
        now = storage.info(path)
    except OSError as err:
        raise InputError(f"{label}: {cannot_read(err)}; if the corpus has moved, say where it is now "
                         "with --corpus-root OLD=NEW") from None
    if now["size"] != recorded["size"]:
        raise InputError(f"{label}: {now['size']:,} bytes, {recorded['size']:,} when it was indexed: "
                         "the file has changed since; build the index again")
    if by_time and (now.get("mtime"), now.get("etag")) != (recorded.get("mtime"), recorded.get("etag")):
        raise InputError(f"{label}: modified since it was indexed (the index holds no text hashes to check "
                         "its records by); build the index again")
