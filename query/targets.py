"""Target examples: read, grouped by task, and turned into NAGs once.

A targets file holds one example per record with its text (a text field, or a
template over the record's fields: a benchmark's own records, as exported)
and, optionally, a ``target`` field naming the task; several tasks in one file are the paper's
multi-target setting. Examples without a task name belong to a task named
after their file: its whole name less the data suffix (``mmlu.stem.jsonl.gz``
is ``mmlu.stem``). A name that is a number or a boolean is kept as written
(``0``, ``false``); an empty name is an error, as a task needs a name to be
told apart in the output.

Target NAGs are cached on disk, keyed by the index's backbone, its settings
and the texts, so querying the same targets again never runs the backbone.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from nagindex.settings import cache_dir
from nagindex.corpus import choose_split, data_stem, find_files, read_records
from nagindex.errors import InputError
from nagindex.template import Template

TARGET_FIELD = "target"


@dataclass
class Targets:
    """Target examples in file order, each with the name of its task."""

    texts: list[str]
    names: list[str]

    def groups(self) -> dict[str, np.ndarray]:
        """Task name -> indices of its examples, tasks in order of first appearance."""
        out: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            out.setdefault(name, []).append(i)
        return {k: np.asarray(v) for k, v in out.items()}


def read_targets(spec, text_field: str = "text", target_field: str = TARGET_FIELD, *,
                 template: Template | str | None = None, split: str | None = None,
                 split_option: str = "--split") -> Targets:
    """Read target examples, each with the name of its task.

    Args:
        spec: a file, directory or glob (or a list of them) of JSONL, Parquet or text files.
        text_field: the field holding an example's text.
        target_field: the field naming an example's task; without it, the task is named after
            the file.
        template: makes an example's text from its fields instead of ``text_field``: a
            :class:`nagindex.template.Template`, or what makes one (a ready name such as
            ``"mmlu"``, or Jinja2 text).
        split: the split to read of targets that hold several (``test/``,
            ``validation-00000-of-00001.parquet`` ...); several without it are an error, as
            examples of two splits would be one task.
        split_option: the command-line option that names ``split``, in errors.

    Returns:
        :class:`Targets`: texts and task names in file order.

    Raises:
        InputError: a bad record (named with its file and line or row), several splits and no
            ``split``, or no example at all.
    """
    named = spec if isinstance(spec, (str, os.PathLike)) else ", ".join(map(str, spec))
    files = find_files(spec)
    try:
        files = choose_split(files, split, what="targets", option=split_option)
    except InputError as e:
        raise InputError(f"{named}: {e}") from None
    template = Template(template) if isinstance(template, str) else template
    texts, names = [], []
    for r in read_records(files, text_field, id_field=None, extra_fields=(target_field,), template=template):
        texts.append(r.text)
        names.append(task_name(r.fields.get(target_field), files[r.file_index], r.where, target_field))
    if not texts:
        needs = "the template's fields" if template is not None else f"a {json.dumps(text_field)} field"
        raise InputError(f"{named}: no target examples found (records need {needs})")
    return Targets(texts, names)


def task_name(value, path, where: str, target_field: str = TARGET_FIELD) -> str:
    """The task a target example belongs to: its ``target_field``, else its file's name."""
    if value is None:
        return data_stem(path)
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"{where}: {target_field!r} must name a task (a string or a number), not {type(value).__name__}")
    if not value.strip():
        raise InputError(f"{where}: {target_field!r} is empty; name the task, or leave the field out to use the file's name")
    return value


def cache_key(backbone: dict, settings: dict, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps([backbone["sha256"], settings], sort_keys=True).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def cached_codes(key: str, neuron_types: list[str], compute) -> dict[str, np.ndarray]:
    """Codes per type for a set of texts: from the cache, or ``compute()`` once."""
    path = cache_dir() / "targets" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            if all(t in z for t in neuron_types):
                return {t: z[t] for t in neuron_types}
    codes = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own for every writer: concurrent first queries of the same
    # targets each write theirs, and the last rename wins with the same codes.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **codes)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return codes
