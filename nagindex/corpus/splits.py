"""Telling the splits of a corpus (train, test ...) apart, by the Hugging Face conventions, so that test
documents are never mixed among training ones unnoticed."""
from __future__ import annotations

import re
from typing import Sequence

from .. import storage
from ..errors import InputError
from ..storage import Location
from .discovery import DATASET_DICT, DATASET_INFO, DATASET_STATE

# `train-00000-of-00004.parquet` (any split name), or a file or directory named after a split
# (`test.jsonl`, `validation/`, `dev-2.parquet`).
_SHARD_OF_SPLIT = re.compile(r"^(\w+(?:\.\w+)*?)-\d{5}-of-\d{5}")
_SPLIT_WORD = re.compile(r"^(train|training|validation|valid|val|dev|test|testing|eval|evaluation)(?:$|[-._ 0-9])")


def choose_split(files: Sequence[Location], split: str | None, what: str = "corpus",
                 option: str = "--split") -> list[Location]:
    """The files of one split, in their order.

    Args:
        files: the corpus files, as :func:`~nagindex.corpus.find_files` lists them.
        split: the split to keep; None keeps all files, and is an error where they hold several splits.
        what: what the files are, in errors: ``"corpus"`` (whose other splits can be appended) or ``"targets"``.
        option: the command-line option that names ``split``, in errors.
    """
    of = _splits(files)
    found = sorted({s for s in of.values() if s is not None})
    if split is None:
        if len(found) > 1:
            also = " (and --append the others, if the index should hold them all)" if what == "corpus" else ""
            raise InputError(f"the {what} hold{'s' if what == 'corpus' else ''} several splits ({', '.join(found)}): "
                             f"choose one with {option} NAME{also}")
        return list(files)
    chosen = [f for f in files if of[f] == split]
    if not chosen:
        raise InputError(f"{option} {split}: no such split in the {what} (splits found: {', '.join(found) or 'none'})")
    return chosen


def _splits(files: Sequence[Location]) -> dict[Location, str | None]:
    """The split of each file, None where its name and folders name none."""
    root = storage.common_root(list(files))
    dataset_split: dict[Location, str | None | bool] = {}   # a folder's split; False: not a `datasets` folder

    def split_of(loc: Location) -> str | None:
        folder = storage.parent(loc)
        if folder not in dataset_split:
            if storage.exists(storage.join(folder, DATASET_STATE)) and storage.exists(storage.join(folder, DATASET_INFO)):
                in_dict = storage.exists(storage.join(storage.parent(folder), DATASET_DICT))
                dataset_split[folder] = storage.name(folder) if in_dict else None
            else:
                dataset_split[folder] = False
        if dataset_split[folder] is not False:
            return dataset_split[folder]
        name = storage.name(loc)
        if match := _SHARD_OF_SPLIT.match(name) or _SPLIT_WORD.match(name.lower()):
            return match.group(1)
        folders = storage.relative(loc, root).split("/")[:-1] if root is not None else []
        return next((m.group(1) for d in reversed(folders) if (m := _SPLIT_WORD.match(d.lower()))), None)

    return {loc: split_of(loc) for loc in files}
