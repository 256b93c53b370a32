"""``nagindex build``: turn a corpus into an index, resumably.

The corpus is read in a fixed order and cut into windows of ``window``
documents. Each window's NAGs are written as a part file, atomically, inside
the shard's ``.partial`` directory; rerunning the same command skips the
windows whose parts exist, so a build killed at any moment (kill -9 included)
resumes with no document lost or doubled. Finishing joins the parts into the
shard's code store, writes its FAISS file and metadata, renames the shard into
place and only then rewrites the manifest: a finished index is never seen half
rewritten. With ``--engine ray`` only the windows' NAGs are computed elsewhere
(:mod:`indexer.ray_build`); the parts, and all that follows, are the same.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from nagindex.atomic import atomic_path
from nagindex.backbone import DEFAULT_MODEL, dtype_name, load_backbone
from nagindex.cluster import check_engine
from nagindex import storage
from nagindex.corpus import Record, Skipped, choose_split, find_files, read_records, text_hashes
from nagindex.errors import IndexStateError, InputError, NagindexError
from nagindex.extract import Extractor
from nagindex.index import Index
from nagindex.indexdir import IndexDir, ShardDir, comparable, differences, part_name
from nagindex.sketch import Sketch
from nagindex.progress import CorpusBar, phase, showing
from nagindex.store import ORDERED, SETS, CodeStore, Rows, concat_stores
from nagindex.terms import TOKENIZER, Counts, join_parts

from .options import BuildOptions
from .parts import PartWriter, Resume, kept_fields, pending_windows, resume_point, write_skipped
from .vectors import build_vectors


@dataclass
class BuildReport:
    index: Path
    shard: str
    documents: int
    tokens: int
    resumed: int                 # documents found already done
    skipped: list[Skipped]
    seconds: float
    status: str                  # "built", "up to date"


def corpus_files(files: Sequence[storage.Location]) -> list[dict]:
    """The identity of the corpus: a changed file means a different corpus (size, time and a remote file's tag)."""
    return [{"path": str(p), **storage.info(p)} for p in files]


def select_shard(files: list[storage.Location], shard: tuple[int, int] | None) -> list[storage.Location]:
    """Part ``i`` of ``N`` takes every N-th file, so workers need no coordination."""
    if shard is None:
        return files
    i, n = shard
    if not 0 <= i < n:
        raise NagindexError(f"--shard {i}/{n}: i must be in 0..{n - 1}")
    if len(files) < n:
        raise NagindexError(f"--shard {i}/{n}: the corpus has only {len(files)} files; split it into at least {n}")
    return files[i::n]


def build(corpus, index_path: str | os.PathLike, options: BuildOptions = BuildOptions()) -> BuildReport:
    """Run the backbone over ``corpus`` once and write (or extend) the index at ``index_path``.

    Args:
        corpus: what to read: a directory (searched recursively), a file, a glob, an fsspec URL of one of
            these (``s3://bucket/prefix/``), or a list of these.
        index_path: the index directory; created if absent.
        options: backbone, NAG settings, fields, engine and the rest (:class:`BuildOptions`).

    Returns:
        A :class:`BuildReport`: the shard written, its documents and tokens, how many were found
        already done (a resumed build), the records skipped, and ``status`` ``"built"`` or
        ``"up to date"``.

    Raises:
        InputError: a bad corpus record or file (named with its line or row), unless
            ``options.skip_bad``.
        IndexStateError: an index is already there and the request does not fit it, or another
            writer holds it.
        NagindexError: any other option that cannot be honoured.

    Killed at any point, the same call resumes where it stopped (docs/design.md §5).
    The index's writer lock is held throughout (with ``options.shard``, the
    lock of that part only): a second writer is refused, naming the first.
    """
    started = time.perf_counter()
    check_engine(options.engine, options.ray_address)
    index = IndexDir(index_path)
    skipped: list[Skipped] = []
    everything = find_files(corpus, on_error="skip" if options.skip_bad else "raise", skipped=skipped)
    files = select_shard(choose_split(everything, options.split), options.shard)
    with showing(options.progress), index.part_lock(part_name(*options.shard)) if options.shard else index.lock():
        return _build(index, everything, files, skipped, options, started)


def _build(index: IndexDir, everything: list[storage.Location], files: list[storage.Location], skipped: list[Skipped],
           options: BuildOptions, started: float) -> BuildReport:
    manifest = index.read_manifest()
    listed = index.listed(manifest)
    existing = [s.read_meta() for s in listed]
    if manifest and options.append:
        _check_same_fields(index.path, manifest, existing, options)
    options = dataclasses.replace(options, terms=_check_terms(index.path, manifest, options),
                                  codes=_check_codes(index.path, manifest, options))
    fingerprint = corpus_files(files)
    if options.shard is None:
        index.clean(listed)
    if manifest and options.shard is None:
        done = _already_indexed(index.path, existing, fingerprint, options.append)
        if done:
            _check_same_settings(index.path, manifest, options)
            return BuildReport(index.path, done, manifest["documents"], manifest["tokens"], manifest["documents"], [],
                               0.0, "up to date")

    # With Ray the replicas run the backbone; here it only tells what the index will hold.
    # Appending keeps the index's precision unless told otherwise: its codes must stay comparable.
    dtype = options.dtype or (manifest.get("dtype", "float32") if manifest else None)
    with phase(f"loading the backbone {options.model or DEFAULT_MODEL} and hashing its weights"):
        backbone = load_backbone(options.model, "cpu" if options.engine == "ray" else options.device, dtype)
    extractor = Extractor(backbone, options.settings, options.token_budget)
    header = _header(backbone.identity.as_dict(), extractor, options)
    if manifest:
        _check_compatible(index.path, comparable(manifest), comparable(header))

    name = part_name(*options.shard) if options.shard else index.next_name(len(listed))
    final = index.shard(name)
    plan = {**header, "files": fingerprint, "text_field": options.text_field, "id_field": options.id_field,
            "window": options.window, "skip_bad": options.skip_bad, "max_record_size": options.max_record_size}
    if options.keep_fields:
        plan["fields"] = list(options.keep_fields)
    if options.split is not None:
        plan["split"] = options.split
    if final.is_finished:
        # Finished, but stopped before the manifest listed it.
        meta = final.read_meta()
        if meta["files"] != fingerprint or differences(comparable(meta), comparable(header)):
            raise IndexStateError(f"{final.path}: a finished shard of another corpus is here, not listed in the manifest; delete it")
        if options.shard is None:
            index.write_manifest(existing + [meta], header)
        return BuildReport(index.path, name, meta["documents"], meta["tokens"], meta["documents"], [], 0.0, "built")
    work = index.work(name)
    _prepare(work, plan)

    done = 0
    if not work.is_finished:
        # Reading starts after the windows already finished; their ids and skipped records come from their parts.
        resume = resume_point(work)
        skipped += resume.skipped
        # Ids name files relative to the whole corpus, every split of it: a part built with
        # --shard (or --split) gives each document the id that a build of all gives it.
        read = functools.partial(read_records, files, options.text_field, options.id_field, template=options.template,
                                 extra_fields=options.keep_fields, on_error="skip" if options.skip_bad else "raise",
                                 max_record_size=options.max_record_size,
                                 root=storage.common_root(everything), start=resume.start)
        seen = {**resume.seen, **(_indexed_ids(index.path, read, resume.seen) if manifest else {})}
        read = functools.partial(read, seen_ids=seen)
        if options.engine == "ray":
            from .ray_build import extract_windows
            # The replicas compute in the dtype the index records (an append: the index's own).
            done = extract_windows(read, files, work, dataclasses.replace(options, dtype=header["dtype"]), skipped, resume)
        else:
            done = _extract_windows(read(skipped=skipped), files, work, extractor, options, skipped, resume)
    meta = _finish_shard(work, header, plan, skipped, options)
    index.finish(work)
    if options.shard is None:
        index.write_manifest(existing + [meta], header)
    return BuildReport(index.path, name, meta["documents"], meta["tokens"], done, skipped, time.perf_counter() - started, "built")


def _indexed_ids(index_path: Path, read, before: dict[str, str]) -> dict[str, str]:
    """The ids of an appended corpus that the index holds already, each with where it holds it.

    The corpus is read through once for its ids, which are then looked up in one
    shard of the index after another (``Index.holders``): the index's ids are
    never all in memory, however large it grows. Its reader then refuses (or
    with --skip-bad skips) these as it refuses an id seen twice in the corpus.
    ``read(skipped=, seen_ids=)`` reads the corpus; ``before``: the ids of the
    windows an earlier run finished.
    """
    ids = dict(before)
    with phase("checking the ids of the corpus against the index"):
        for _ in read(skipped=[], seen_ids=ids):
            pass
        index = Index(index_path)
        try:
            held = index.holders(list(ids))
        finally:
            index.close()
    return {i: f"{where} (already indexed)" for i, where in held.items()}


def _already_indexed(index_path: Path, existing: list[dict], fingerprint: list[dict], append: bool) -> str | None:
    """The shard that already holds exactly this corpus (a rerun), or None for a corpus new to the index.

    Without ``append`` the corpus must be the index's own (any of its files,
    unchanged); with ``append``, an append that was finished already: one
    shard built from exactly these files.
    """
    indexed = {f["path"]: f for s in existing for f in s["files"]}
    if not append:
        if all(indexed.get(f["path"]) == f for f in fingerprint):
            return ", ".join(s["name"] for s in existing)
        raise IndexStateError(
            f"{index_path}: an index is already here, built from other files; "
            "pass --append to add this corpus to it, or -o to write a new index")
    same = next((s["name"] for s in existing if s["files"] == fingerprint), None)
    again = [f["path"] for f in fingerprint if f["path"] in indexed]
    if same is None and again:
        raise InputError(f"--append: {again[0]} is already in {index_path}" + (f" (and {len(again) - 1} more)" if len(again) > 1 else ""))
    return same


def _check_same_fields(index_path: Path, manifest: dict, existing: list[dict], options: BuildOptions) -> None:
    """An append reads its records as the index's were: refuse another id field, text field or template.

    Checked before the backbone is loaded or the corpus read. A document's id
    is what ties it to its text and tells duplicates apart across the index.
    """
    changed = differences({"template": manifest.get("template")}, {"template": _template_source(options)})
    if changed:
        raise IndexStateError(f"--template: the index {index_path} makes its texts otherwise ({changed[0]}); "
                              "append with the index's --template (or none, if it has none), or write a new index with -o")
    recorded = {"--id-field": {m["id_field"] for m in existing}}
    if options.template is None:
        recorded["--text-field"] = {m["text_field"] for m in existing if m.get("template") is None}
    asked = {"--id-field": options.id_field, "--text-field": options.text_field}
    for option, own in recorded.items():
        if own and asked[option] not in own:
            named = ", ".join(sorted(map(str, own)))
            raise IndexStateError(f"{option} {asked[option]}: the index {index_path} was built with {option} {named}; "
                                  f"append with {option} {named}, or write a new index with -o")


def _check_terms(index_path: Path, manifest: dict | None, options: BuildOptions) -> bool:
    """Whether the build keeps term statistics: as asked, else as the index does (an append or a rerun keeps
    its index's setting). Asking otherwise than the index is refused here, before any work, and so is
    ``--engine ray``, whose replicas do not return the texts."""
    has = bool(manifest and manifest.get("terms"))
    if manifest and options.terms is not None and options.terms != has:
        asked, own = ("--terms", "--no-terms") if options.terms else ("--no-terms", "--terms")
        raise IndexStateError(f"{asked}: the index {index_path} was built with {own}; "
                              f"leave the option out to keep the index's setting, or write a new index with -o")
    terms = has if options.terms is None else options.terms
    if terms and options.engine == "ray":
        raise NagindexError("--terms: term statistics are kept by local builds only; use --engine local")
    return terms


def _check_codes(index_path: Path, manifest: dict | None, options: BuildOptions) -> str | None:
    """How the build stores its codes: as asked, else as the index does (an append or a rerun keeps its
    index's layout; an index written before layouts were recorded keeps them ordered, and records None).
    Asking otherwise than the index is refused here, before any work."""
    if not manifest:
        return options.codes or SETS
    own = manifest.get("codes") or ORDERED
    if options.codes is not None and options.codes != own:
        raise IndexStateError(f"--codes {options.codes}: the index {index_path} keeps its codes {own}; "
                              "leave the option out to keep the index's setting, or write a new index with -o")
    return manifest.get("codes")


def _check_same_settings(index_path: Path, manifest: dict, options: BuildOptions) -> None:
    """A rerun over an indexed corpus must ask for the index's settings: refuse one that asks for others."""
    vectors = manifest["vectors"]
    recorded = {"settings": manifest["settings"],
                "vectors": {"neuron_type": vectors["neuron_type"], "faiss": vectors["faiss"], "sketch dim": vectors["sketch"]["dim"]},
                "template": manifest.get("template")}
    asked = {"settings": options.settings.as_dict(),
             "vectors": {"neuron_type": options.settings.neuron_types[0], "faiss": options.faiss,
                         "sketch dim": options.sketch_dim},
             "template": _template_source(options)}
    changed = differences(recorded, asked)
    backbone = manifest["backbone"]
    if str(options.model or DEFAULT_MODEL) != backbone["name"]:
        identity = load_backbone(options.model, "cpu", options.dtype).identity
        if identity.sha256 != backbone["sha256"]:
            changed.append(f"backbone: {backbone['name']} (sha256 {backbone['sha256'][:12]}), "
                           f"now {identity.name} (sha256 {identity.sha256[:12]})")
    if changed:
        raise IndexStateError(f"{index_path}: already holds this corpus, built with other settings "
                              f"({'; '.join(changed)}); write a new index with -o, or leave the options as they were")


def _header(identity: dict, extractor: Extractor, options: BuildOptions) -> dict:
    """What every shard of an index must share for its codes to be comparable."""
    types = extractor.settings.neuron_types
    return {
        "backbone": identity,
        "dtype": dtype_name(extractor.backbone.dtype),
        "settings": extractor.settings.as_dict(),
        "layers": extractor.num_layers,
        "neurons": dict(extractor.neurons),
        "vectors": {"neuron_type": types[0], "faiss": options.faiss,
                    "sketch": Sketch(extractor.num_layers, extractor.neurons[types[0]], options.sketch_dim).as_dict()},
        "template": _template_source(options),
        "terms": dict(TOKENIZER) if options.terms else None,
        "codes": options.codes,
    }


def _template_source(options: BuildOptions) -> str | None:
    """The template as the index records it (docs/design.md §2.3): its source, None for a text field."""
    return options.template.source if options.template is not None else None


def _check_compatible(index_path: Path, recorded: dict, header: dict) -> None:
    changed = differences(recorded, header)
    if changed:
        raise IndexStateError(
            f"{index_path}: built with other settings than this build asks for ({'; '.join(changed)}); "
            "an index holds one backbone and one set of settings; write a new index with -o")


def _prepare(work: ShardDir, plan: dict) -> None:
    """Start a shard, or check that the unfinished one is the same build (and clear what a kill left)."""
    before = work.read_plan()
    if before is None:
        work.start(plan)
        return
    before, asked = {**before, **comparable(before)}, {**plan, **comparable(plan)}
    if before != asked:
        changed = differences(before, asked)
        raise IndexStateError(
            f"{work.path}: an unfinished build with other settings is here ({'; '.join(changed)}); "
            f"rerun that build to finish it, or delete {work.path} to start over")
    work.clean()


def _named(files: list[dict], shown: int = 3) -> str:
    """The files a message is about: the first few, and how many more."""
    paths = [f["path"] for f in files]
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _extract_windows(records: Iterator[Record], files: list[Path], work: ShardDir, extractor: Extractor,
                     options: BuildOptions, skipped: list[Skipped], resume: Resume) -> int:
    """Write every missing part; return how many documents were already done."""
    parts = PartWriter(work)
    with CorpusBar(files) as bar, phase(f"reading, tokenizing and extracting the NAGs of {bar.describe()}"):
        windows = pending_windows(records, work, options.window, skipped, resume)
        for w, nags in extractor.extract_stream(windows, lambda w: [r.text for r in w.records],
                                                lambda w, texts, tokens: bar.advance(w.records, texts, tokens)):
            window = w.records
            terms = Counts.of(extractor.truncate([r.text for r in window])) if options.terms else None
            parts.write(w.k, Rows(
                ids=[r.id for r in window],
                tokens=nags.tokens,
                source_file=np.fromiter((r.file_index for r in window), np.uint32, len(window)),
                source_offset=np.fromiter((r.offset for r in window), np.int64, len(window)),
                codes=nags.codes,
                impacts=nags.impacts if options.store_impacts else {},
                fields=kept_fields(window, options.keep_fields),
                text_hash=text_hashes(r.text for r in window),
            ), w.end, [r.where for r in window], terms)
        bar.finish()
    return parts.done


def _finish_shard(work: ShardDir, header: dict, plan: dict, skipped: list[Skipped], options: BuildOptions) -> dict:
    """Join the parts into the shard's store, FAISS file and metadata (idempotent)."""
    if work.is_finished:
        meta = work.read_meta()
    else:
        parts = work.parts()
        if not parts:
            raise InputError(f"the corpus holds no usable document: {_named(plan['files'])}"
                             + (f" ({len(skipped)} skipped)" if skipped else ""))
        named = f"{len(parts)} part{'s' if len(parts) != 1 else ''}"
        with phase(f"merging {named} into the code store"), atomic_path(work.codes) as tmp:
            documents = concat_stores(parts, tmp, header["neurons"], header["codes"] or ORDERED)
        if header["terms"]:
            with phase(f"joining the term statistics of {named}"):
                join_parts(parts, work.terms)
        with CodeStore(work.codes) as store:
            tokens = int(store.tokens().sum())
            vec = header["vectors"]
            build_vectors(store, vec["neuron_type"], Sketch.from_dict(vec["sketch"]), vec["faiss"], work.vectors,
                          gpus=options.device != "cpu")
        if skipped:
            write_skipped(work.skipped, skipped)
        meta = work.write_meta({"name": work.name, **header, "documents": documents, "tokens": tokens,
                                "files": plan["files"], "text_field": plan["text_field"], "id_field": plan["id_field"],
                                "fields": plan.get("fields", []), "skipped": len(skipped),
                                "max_record_size": plan["max_record_size"],
                                **({"split": plan["split"]} if "split" in plan else {})})
    for p in work.parts():
        p.unlink()
    work.plan_path.unlink(missing_ok=True)
    return meta

