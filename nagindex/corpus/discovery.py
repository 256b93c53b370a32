"""Finding the corpus files that the user named (paths, globs, fsspec URLs), in the order that fixes every
document's position in the index.

The order must not depend on the order in which the file system lists a
directory; a `datasets` ``save_to_disk`` folder gives the data files its state
lists, not its metadata nor the cache files that ``map`` leaves beside them.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Sequence

from .. import storage
from ..errors import InputError
from ..storage import Location
from .records import Skipped, cannot_read, display
from .registry import SUFFIXES, suffix

# A `datasets` save_to_disk folder: its state lists its data files; a DatasetDict lists its splits.
DATASET_STATE, DATASET_INFO, DATASET_DICT = "state.json", "dataset_info.json", "dataset_dict.json"


def find_files(spec: str | os.PathLike | Sequence[str | os.PathLike], *, on_error: str = "raise",
               skipped: list[Skipped] | None = None) -> list[Location]:
    """The files to read, in a stable order.

    Args:
        spec: one or several paths, globs or fsspec URLs, of files or of directories to walk.
        on_error: ``"raise"`` at a symbolic link that leads nowhere, or ``"skip"`` it into ``skipped``.
        skipped: where skipped files are accounted for.
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not specs:
        raise InputError("no corpus files given")
    found: set[Location] = set()
    for item in specs:
        found.update(_expand(item))
    files = []
    for loc in sorted(found, key=_order):
        problem = None if storage.is_url(loc) else _broken_link(loc)
        if problem is None:
            files.append(loc)
        elif on_error == "skip":
            if skipped is not None:
                skipped.append(Skipped(display(loc), problem, rest_of_file=True))
        else:
            raise InputError(f"{display(loc)}: {problem}")
    return files


def _order(loc: Location) -> list[str]:
    """Sort key of a location: by path components, local paths and URLs alike."""
    return str(loc).split("/")


def _broken_link(path: Path) -> str | None:
    """What is wrong with a symbolic link that cannot be followed to a file, if it is one."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a dangling symbolic link (to {os.readlink(path)}, which does not exist)"
        raise
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        raise
    return None


def _expand(item: str | os.PathLike) -> list[Location]:
    loc = storage.location(item)
    if storage.is_dir(loc):
        files = _walk(loc)
    elif storage.is_file(loc):
        if suffix(loc) is None:
            raise InputError(f"{item}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
        files = [loc]
    elif not storage.is_url(loc) and os.path.islink(loc):
        files = [loc]
    elif any(c in str(loc) for c in "*?["):
        files = []
        for match in storage.glob(loc):
            if storage.is_dir(match):
                files += _walk(match)
            elif suffix(match):
                files.append(match)
    else:
        raise InputError(f"{item}: no such file or directory")
    if not files:
        raise InputError(f"{item}: no {', '.join(SUFFIXES)} files found")
    return [storage.absolute(f) for f in files]


def _walk(directory: Location) -> list[Location]:
    """Corpus files under ``directory`` (hidden names passed over: see :func:`storage.list_files`)."""
    folders: dict[Location, list[Location]] = {}
    for loc in storage.list_files(directory):
        folders.setdefault(storage.parent(loc), []).append(loc)
    files = []
    for folder, locs in folders.items():
        names = {storage.name(loc) for loc in locs}
        if {DATASET_STATE, DATASET_INFO} <= names:
            files += _dataset_files(folder, names)
        else:
            files += [loc for loc in locs if suffix(loc) and storage.name(loc) != DATASET_DICT]
    return files


def _dataset_files(folder: Location, present: set[str]) -> list[Location]:
    """The data files that the state of a `datasets` folder lists."""
    state = storage.join(folder, DATASET_STATE)
    try:
        with storage.open_input(state) as f:
            listed = [d["filename"] for d in json.load(f)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{display(state)}: not the state of a `datasets` folder ({cannot_read(err)})") from None
    for name in listed:
        if name not in present or "/" in name or suffix(name) != ".arrow":
            raise InputError(f"{display(state)}: lists the data file {name!r}, which is not in the folder")
    return [storage.join(folder, name) for name in listed]
