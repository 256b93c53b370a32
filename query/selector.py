"""The Python API of the query path; the ``nagindex query`` command is a thin layer over it.

::

    from query import Selector, Budget, ScoreSpec, read_targets

    sel = Selector("my.index")
    result = sel.select(read_targets("targets.jsonl"), Budget(documents=1_000_000))
    result.table            # pyarrow: id, target, rank, similarity, distance, tokens
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
import pyarrow as pa

from nagindex.cluster import check_engine
from nagindex.corpus import MAX_RECORD_SIZE, Indexed, check_source, fetch_texts, fetch_values, reroot
from nagindex.errors import InputError, NagindexError
from nagindex.index import Index
from nagindex.progress import bar, phase
from nagindex.settings import ExtractSettings
from nagindex.store import SETS

from .approx import DEFAULT_OVERSAMPLE, ApproxSearch, check_search, resolve
from .auto import AUTO, choose_profiles, describe
from .bm25 import Bm25, check_terms
from .budget import Budget
from .classifier import sample_rows
from .profile import Profiles, ScoreSpec, build_profiles
from .scoring import damage_reported, score_chunks
from .scoring_torch import cuda_available, score_chunks_torch
from .select import Pick, Stream, pick, pick_each
from .targets import Targets, cache_key, cached_codes

SEARCHES = ("auto", "exact", "approx")


@dataclass
class Selection:
    """The selected documents, target by target, best first."""

    table: pa.Table
    summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)    # each target's share, in target order
    weightings: list[dict] = field(default_factory=list)   # --weighting auto: each target's choice and evidence


class Selector:
    """Scores and selects from one index; loads the backbone only when targets need it."""

    def __init__(self, index: Index | str | os.PathLike, *, device: str | None = None, model: str | None = None,
                 engine: str = "local", ray_address: str | None = None,
                 corpus_root: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = ()):
        """``corpus_root``: ``(old, new)`` pairs, for a corpus moved from ``old`` to ``new`` since it was
        indexed; texts are fetched from the new place and checked as from the old."""
        check_engine(engine, ray_address)
        if isinstance(index, Index):
            self.index = index
        else:
            with phase(f"loading the index {index}"):
                self.index = Index(index)
        self.device = device
        self.model = model
        self.engine = engine                  # "ray": one Ray task per shard (query.ray_query)
        self.ray_address = ray_address
        self.corpus_root = [(os.path.abspath(old), os.path.abspath(new)) for old, new in corpus_root]
        self.notes: list[str] = []            # what fetching texts had to say, for the next Selection

    @cached_property
    def extractor(self):
        """The index's own backbone and settings: targets must be seen as the pool was.

        Imported here: a query whose target NAGs are cached never needs torch.
        """
        from nagindex.backbone import load_recorded
        from nagindex.extract import Extractor

        with phase(f"loading the backbone {self.index.backbone['name']} and hashing its weights"):
            backbone = load_recorded(self.index.backbone, self.model, self.device, self.dtype,
                                     what=str(self.index.path))
        return Extractor(backbone, ExtractSettings.from_dict(self.index.settings))

    @property
    def dtype(self) -> str:
        """The precision the pool's NAGs were computed in; indexes that do not record it were float32."""
        return self.index.manifest.get("dtype", "float32")

    # -- NAGs and profiles --------------------------------------------------

    def target_codes(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Codes of target texts per neuron type, cached across queries."""
        key = cache_key(self.index.backbone, {**self.index.settings, "dtype": self.dtype}, texts)
        return cached_codes(key, self.index.neuron_types, lambda: self._forward(texts))

    def _forward(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The backbone's forward pass over target texts (the cache had not seen them), with a bar."""
        extractor = self.extractor
        with phase(f"computing the NAGs of {len(texts):,} target examples"), \
                bar(total=len(texts), unit="text", desc="targets' forward pass", leave=False) as done:
            return extractor.extract(texts, lambda n, _tokens: done.update(n)).codes

    def profiles(self, targets: Targets, spec: ScoreSpec = ScoreSpec(), bm25: bool = True) -> Profiles:
        """The targets' profiles under ``spec``; ``bm25``: ``--weighting auto`` may choose a fusion with BM25,
        where the index keeps term statistics (not for what scores weight tables alone: FAISS, Ray, saved
        profiles)."""
        self._check_type(spec.neuron_type)
        self._check_top_k(spec)
        codes = self.target_codes(targets.texts)[spec.neuron_type]
        groups = {name: codes[rows] for name, rows in targets.groups().items()}
        if spec.weighting == AUTO:
            texts = self._texts_of(targets) if bm25 and self.index.manifest.get("terms") else None
            return choose_profiles(self.index, groups, spec, texts)
        if spec.weighting == "bm25":
            return self._bm25_profiles(targets, groups, spec)
        df = self.index.slot_counts(spec.neuron_type) if spec.weighting == "idf" else None
        negatives = None
        if spec.weighting == "classifier":
            negatives = self.index.codes_of(spec.neuron_type, sample_rows(self.index.documents, spec.negatives, spec.seed))
        return build_profiles(groups, self.index.neurons[spec.neuron_type], self.index.num_layers,
                              self.index.top_k, spec, df, self.index.documents, negatives)

    def _bm25_profiles(self, targets: Targets, groups: dict[str, np.ndarray], spec: ScoreSpec) -> Profiles:
        """``--weighting bm25``: the targets' BM25 scores alone; the codes weigh nothing (docs/design.md §2.4)."""
        check_terms(self.index)
        names = list(groups)
        shape = build_profiles(groups, self.index.neurons[spec.neuron_type], self.index.num_layers,
                               self.index.top_k, dataclasses.replace(spec, weighting="paper"))
        return dataclasses.replace(shape, scale=np.zeros(len(names)), codes=False, bm25=self.bm25(targets),
                                   bm25_scale=np.ones(len(names)))

    def bm25(self, targets: Targets) -> Bm25:
        """BM25 of the pool against each target, its examples read as far as the backbone reads them."""
        return Bm25(self.index, self._texts_of(targets))

    def _texts_of(self, targets: Targets) -> dict[str, list[str]]:
        """Each target's examples as far as the backbone reads them: the texts BM25 reads."""
        texts = self.extractor.truncate(targets.texts)
        return {name: [texts[i] for i in rows] for name, rows in targets.groups().items()}

    def _check_type(self, neuron_type: str) -> None:
        if neuron_type not in self.index.neuron_types:
            raise NagindexError(f"--neuron-type {neuron_type}: {self.index.path} holds only {', '.join(self.index.neuron_types)}")

    def _check_top_k(self, spec: ScoreSpec) -> None:
        """K' < K needs codes in impact order: a sets index keeps each layer's K as a set (docs/design.md §2.1)."""
        if spec.top_k not in (None, self.index.top_k) and self.index.code_layout == SETS \
                and 1 <= spec.top_k < self.index.top_k:
            raise NagindexError(f"--top-k {spec.top_k}: {self.index.path} keeps each layer's K = {self.index.top_k} "
                                "neurons as a set (build --codes sets), so every query uses all of them; K' < K "
                                "needs an index built with --codes ordered")

    # -- scoring ------------------------------------------------------------

    @cached_property
    def approx(self) -> ApproxSearch:
        """The index's FAISS files, opened on the first approximate query and kept for the next."""
        return ApproxSearch(self.index, gpus=self.device != "cpu")

    def similarities(self, profiles: Profiles, neuron_type: str = "fwd_up") -> np.ndarray:
        """Exact similarity of every pool document to every target: ``[n, M]`` float64.

        For analyses that need every score; a selection keeps only what it can
        select (:meth:`select`). On a machine with CUDA (and ``device`` not
        ``cpu``) the sums run on the GPU.
        """
        out = np.empty((self.index.documents, len(profiles.names)))
        for first_row, sims in self._similarities(profiles, neuron_type):
            out[first_row:first_row + len(sims)] = sims
        return out

    def _similarities(self, profiles: Profiles, neuron_type: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, float64 similarities [rows, M])`` over the whole pool, chunk by chunk: the codes'
        table, plus the targets' BM25 where the profiles hold it (docs/design.md §1.3)."""
        if not profiles.codes:
            with phase(f"BM25 of {self.index.documents:,} documents against {len(profiles.names)} "
                       f"target{'s' if len(profiles.names) != 1 else ''}"):
                for shard in self.index.shards:
                    yield shard.offset, profiles.bm25.shard_scores(shard) * profiles.bm25_scale
            return
        for first_row, sums in self._scored(profiles, neuron_type):
            sims = profiles.similarity(sums)
            if profiles.bm25 is not None:
                sims += profiles.bm25.rows(first_row, len(sims)) * profiles.bm25_scale
            yield first_row, sims

    def _scored(self, profiles: Profiles, neuron_type: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, float32 raw sums [rows, M])`` over the whole pool, chunk by chunk."""
        self._check_type(neuron_type)
        scan = score_chunks
        if self.device != "cpu" and cuda_available():
            scan = functools.partial(score_chunks_torch, device=self.device if self.device not in (None, "auto") else "cuda")
        with damage_reported(lambda e: self.index.damaged_code(e, neuron_type)), \
                phase(f"scoring {self.index.documents:,} documents against {len(profiles.names)} "
                      f"target{'s' if len(profiles.names) != 1 else ''}"), \
                bar(total=self.index.documents, unit="doc", unit_scale=True, desc="scoring", leave=False) as scored:
            for first_row, sums in scan(self.index.iter_stored(neuron_type), profiles.table, profiles.layers,
                                        profiles.top_k):
                scored.update(len(sums))
                yield first_row, sums

    def score_texts(self, texts: list[str], profiles: Profiles, neuron_type: str = "fwd_up") -> np.ndarray:
        """Similarity of arbitrary texts (not in the pool) to each target: ``[len(texts), M]``."""
        sims = profiles.score(self.extractor.extract(texts).codes[neuron_type])
        if profiles.bm25 is not None:
            sims += profiles.bm25.texts_scores(self.extractor.truncate(texts)) * profiles.bm25_scale
        return sims

    # -- selection ----------------------------------------------------------

    def select(self, targets: Targets, budget: Budget, spec: ScoreSpec = ScoreSpec(), *, search: str = "auto",
               dedup: bool = False, weights: dict[str, float] | None = None, quality: np.ndarray | None = None,
               invert_quality: bool = False, with_text: bool = False, with_fields: Sequence[str] | str = (),
               oversample: int = DEFAULT_OVERSAMPLE,
               nprobe: int | None = None) -> Selection:
        """Rank the pool against each target and select within ``budget``.

        Args:
            targets: the target examples, grouped by task (:func:`read_targets`).
            budget: documents, tokens or a share of the pool's tokens, for all targets together.
            spec: how documents are scored: neuron type, layers, K', power, weighting.
            search: ``exact`` scans every code, ``approx`` re-scores FAISS candidates exactly,
                ``auto`` chooses by the budget against the pool (docs/design.md §4).
            dedup: keep a document once even if several targets select it; each target then
                fills its share with the next best documents of its own ranking.
            weights: relative budget per task name (default: equal shares).
            quality: per pool document, a quality value (``Selector.quality``; NaN ranks worst),
                min-max normalised and added to the normalised distance.
            invert_quality: lower quality values are better (e.g. perplexity).
            with_text: fetch each selected document's text back from the corpus.
            with_fields: corpus fields to fetch back likewise (``"all"``: every field but the text and the id).
            oversample, nprobe: approximate search's candidates per selected document and IVF lists.

        Returns:
            A :class:`Selection`: the table (id, target, rank, similarity, distance, tokens,
            with ``quality`` the quality and the ``combined`` score it is ranked by, and text
            and fields if asked), a summary per target, each target's budget and notes for the user.

        Raises:
            NagindexError: an option this index or engine cannot honour.
            IndexStateError: the index is damaged, or was built with another backbone.
        """
        if search not in SEARCHES:
            raise NagindexError(f"--search {search}: choose from {', '.join(SEARCHES)}")
        if self.engine == "ray" and (quality is not None or search == "approx"):
            raise NagindexError("--engine ray scores each shard apart, exactly; --quality-field (normalised over "
                                "the whole pool) and --search approx need --engine local")
        check_search(search, self.index, spec.neuron_type, quality is not None)
        if spec.weighting == "bm25":
            check_terms(self.index)
            if search == "approx" or self.engine == "ray":
                raise NagindexError("--weighting bm25: approximate search (--search approx) and --engine ray score "
                                    "the codes' weight tables alone; use --search exact and --engine local")
        # FAISS and Ray score weight tables alone: there, auto leaves its BM25 fusions out (docs/design.md §1.3).
        profiles = self.profiles(targets, spec, bm25=search != "approx" and self.engine != "ray")
        if profiles.bm25 is not None:
            search = "exact"
        names = profiles.names
        share = [float((weights or {}).get(n, 1.0)) for n in names]
        unknown = sorted(set(weights or {}) - set(names))
        if unknown:
            raise NagindexError(f"--weight: no target named {', '.join(unknown)}; targets are {', '.join(names)}")
        budgets = budget.split(share, self.index.total_tokens)
        notes: list[str] = [describe(profiles.choices)] if profiles.choices else []
        extra: dict[str, list[np.ndarray]] = {}
        if self.engine == "ray":
            from .ray_query import fan_out

            with phase(f"scoring {len(self.index.shards)} shards on Ray"):
                picks, similarity, depths = fan_out(self.index, profiles, spec.neuron_type, budgets, dedup,
                                                    self.ray_address)
        elif resolve(search, self.index, budgets, spec.neuron_type, quality is not None, oversample) == "approx":
            with phase("approximate search: FAISS candidates, re-scored exactly"):
                picks, similarity, depths, scored = self.approx.select(profiles, budgets, oversample, nprobe, dedup)
            notes.append(f"approximate search: {scored:,} FAISS candidates re-scored exactly (--search exact scans all)")
        elif quality is None and not dedup:
            picks, similarity = self._stream_select(profiles, spec.neuron_type, budgets)
            depths = [len(p.rows) for p in picks]
        else:
            # The quality mixture normalises over the whole pool, and --dedup may read a
            # ranking past its budget: both keep every score.
            sims = self.similarities(profiles, spec.neuron_type)
            ranking = 1.0 - sims
            if quality is not None:
                if np.isnan(quality).any():
                    notes.append(f"{int(np.isnan(quality).sum()):,} documents have no quality value and rank as the worst")
                ranking = combine_quality(ranking, quality if invert_quality else -quality)
            rankings = [functools.partial(pick, ranking[:, m], self.index.ids_of, self.index.tokens)
                        for m in range(len(names))]
            picks, depths = pick_each(rankings, budgets, self.index.tokens.__getitem__, dedup)
            similarity = [sims[p.rows, m] for m, p in enumerate(picks)]
            if quality is not None:
                extra = {"quality": [quality[p.rows] for p in picks], "combined": [p.distance for p in picks]}
        passed = sum(depths) - sum(len(p.rows) for p in picks)
        if passed:
            notes.append(f"--dedup passed over {passed:,} documents that an earlier target had taken; "
                         "each target took the next best of its own ranking instead")
        selection = self._assemble(names, picks, similarity, budget, with_text, with_fields, notes, extra)
        selection.budgets, selection.weightings = budgets, profiles.choices
        return selection

    def _stream_select(self, profiles: Profiles, neuron_type: str, budgets: list[Budget]) -> tuple[list[Pick], list[np.ndarray]]:
        """The exact selection in one pass over the pool, keeping per target only what it can still select."""
        streams = [Stream(b, self.index.tokens_of, self.index.documents, self.index.total_tokens) for b in budgets]
        for first_row, sims in self._similarities(profiles, neuron_type):
            for m, stream in enumerate(streams):
                stream.add(first_row, sims[:, m])
        picked = [stream.pick(self.index.ids_of) for stream in streams]
        return [p for p, _ in picked], [s for _, s in picked]

    def _assemble(self, names: list[str], picks: list[Pick], similarity: list[np.ndarray], budget: Budget,
                  with_text: bool, with_fields: Sequence[str] | str, notes: list[str],
                  extra: dict[str, list[np.ndarray]]) -> Selection:
        """The output table; ``similarity[m]`` holds the similarities of ``picks[m].rows``, and
        ``extra[name][m]`` the values of a further column for them."""
        rows = np.concatenate([p.rows for p in picks])
        sims = np.concatenate(similarity)
        target = np.concatenate([np.full(len(p.rows), m) for m, p in enumerate(picks)]).astype(np.int64)
        rank = np.concatenate([np.arange(1, len(p.rows) + 1) for p in picks])
        if any(p.exhausted for p in picks):
            notes.append(f"the budget ({budget.describe()}) covers the whole pool of {self.index.documents:,} "
                         "documents: everything is selected")
        tokens = self.index.tokens_of(rows)
        columns = {
            "id": pa.array(self.index.ids_of(rows).tolist(), pa.string()),
            "target": pa.array([names[t] for t in target], pa.string()),
            "rank": pa.array(rank, pa.int64()),
            "similarity": pa.array(sims),
            "distance": pa.array(1.0 - sims),
            "tokens": pa.array(tokens, pa.int64()),
            **{name: pa.array(np.concatenate(parts), from_pandas=True) for name, parts in extra.items()},
        }
        if with_text:
            columns["text"] = pa.array(self.texts(rows), pa.string())
        if with_fields:
            for name, values in self.fields(rows, with_fields).items():
                if name in columns:
                    raise NagindexError(f"--with-fields {name}: the output has a column {name!r} already")
                columns[name] = values
        summary = []
        for m, name in enumerate(names):
            mine = target == m
            d = 1.0 - sims[mine]
            summary.append({"target": name, "documents": int(mine.sum()), "tokens": int(tokens[mine].sum()),
                            "best": float(d.min()) if len(d) else None, "worst": float(d.max()) if len(d) else None})
        notes += [n for n in self.notes if n not in notes]
        return Selection(pa.table(columns), summary, notes)

    def texts(self, rows: np.ndarray) -> list[str]:
        """The texts of global rows, fetched back from the corpus files."""
        with phase(f"fetching {len(rows):,} texts from the corpus"):
            return self._fetch(rows, None, None)

    def fields(self, rows: np.ndarray, names: Sequence[str] | str = "all") -> dict[str, pa.Array]:
        """Corpus fields of global rows, in the order of ``rows``, read in one pass per file.

        ``names``: the fields to carry, or ``"all"`` for every field the records
        have but their text and id. A record without a field gets null; a field
        no record has is an error.
        """
        with phase(f"fetching the fields of {len(rows):,} records from the corpus"):
            records = [r if isinstance(r, dict) else {} for r in self._fetch(rows, None, _any, record=True)]
        if names == "all":
            own = {s.meta[k] for s in self.index.shards for k in ("text_field", "id_field")}
            names = [k for k in dict.fromkeys(k for r in records for k in r) if k not in own]
        out = {}
        for name in names:
            values = [r.get(name) for r in records]
            if records and all(v is None for v in values):
                raise InputError(f"--with-fields {name}: none of the selected records has a field {name!r}")
            try:
                out[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise InputError(f"--with-fields {name}: the records' values do not make one column ({e})") from None
        return out

    def quality(self, field_name: str) -> np.ndarray:
        """A numeric field of every pool record (``--quality-field``), NaN where a record lacks it.

        Read from the index where the build kept it (``--keep-field``), else from
        every record of the corpus files: a pass over the whole corpus. A value
        that is not a number (a string, an object, a boolean) is an error naming
        its file, place and document, and so is a field no document holds.
        """
        values = self.index.kept_field(field_name)
        where = f"kept in {self.index.path}" if values is not None else "in the corpus records"
        if values is None:
            with phase(f"reading {field_name!r} from all {self.index.documents:,} corpus records"):
                values = np.array(self._fetch(np.arange(self.index.documents), field_name, _any,
                                              functools.partial(_quality_value, field_name)), np.float64)
        if not np.isfinite(values).any():
            raise InputError(f"--quality-field {field_name}: no document has a number {where} "
                             f"(fields kept in the index: {', '.join(self.index.kept_fields) or 'none'})")
        return values

    def _fetch(self, rows: np.ndarray, field_name: str | None, check, convert=None, record: bool = False) -> list:
        """Texts (or values of ``field_name``, or with ``record`` whole records) of the corpus records of global
        ``rows``, each record checked to be the one indexed; ``convert(value, file, offset, id)`` turns each value
        into its use."""
        rows = np.asarray(rows, dtype=np.int64)
        out: list = [None] * len(rows)
        for shard, mask in self.index.locate(rows):
            local = rows[mask] - shard.offset
            files, offsets = shard.store.sources()
            indexed = Indexed(shard.store.ids_of(local), shard.store.text_hashes(local), shard.meta["id_field"],
                              shard.meta.get("max_record_size", MAX_RECORD_SIZE))
            paths = [reroot(f["path"], self.corpus_root) for f in shard.meta["files"]]
            for i in np.unique(files[local]).tolist():
                check_source(paths[i], shard.meta["files"][i], by_time=indexed.hashes is None)
            if indexed.hashes is None:
                note = (f"shard {shard.name} predates text hashes: its texts were checked by file size and time "
                        "only; build it again to have each text checked")
                self.notes += [note] if note not in self.notes else []
            text_field = shard.meta["text_field"]
            if field_name is None and not record:
                values = fetch_texts(paths, files[local], offsets[local], text_field, template=shard.template,
                                     indexed=indexed)
            else:
                values = fetch_values(paths, files[local], offsets[local], field_name, check,
                                      text_field=text_field, template=shard.template, indexed=indexed)
            if convert is not None:
                values = [convert(v, paths[f], o, lambda r=r: shard.store.ids_of(np.array([r]))[0])
                          for v, f, o, r in zip(values, files[local], offsets[local], local)]
            for i, v in zip(np.flatnonzero(mask), values):
                out[i] = v
        return out


def _any(value) -> None:
    """Accept every value: a missing field is not an error here."""


def _quality_value(field_name: str, value, path, offset: int, doc_id) -> float:
    """A quality value as a number: NaN where the record lacks it (a plain-text file has no fields);
    anything but a number is refused."""
    if value is None or str(path).endswith(".txt"):
        return float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    unit = "row" if str(path).endswith(".parquet") else "byte"
    raise InputError(f"{path}, {unit} {offset} (document {doc_id()!r}): --quality-field {field_name!r} is "
                     f"{type(value).__name__} {value!r:.40}, not a number")


def combine_quality(distance: np.ndarray, badness: np.ndarray) -> np.ndarray:
    """Min-max normalised distance plus min-max normalised badness (both lower is better)."""
    return _minmax(distance) + np.nan_to_num(_minmax(badness), nan=1.0)[:, None]


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)
