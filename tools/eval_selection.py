"""Selection quality against baselines, on a pool whose right answers are known.

Every pool record carries a ``label``; every target example names, in its
``label`` field (else its ``target`` field), the label its task should
retrieve. Each method ranks the whole pool for each target; the table gives the
precision at several budgets k: the share of a target's k best documents that
carry its label, averaged over the targets. The methods:

- NAG, the paper's weighting, and the ``idf`` variant, from the same index;
- random selection: its expected precision, the share of the label in the pool;
- BM25 (``bm25s``): the mean of the BM25 scores of the target's examples, each
  taken as a query;
- DSIR (``data-selection``): hashed unigram and bigram importance weights, the
  log-likelihood ratio of the target's n-gram distribution over the pool's,
  ranked by weight (DSIR's deterministic top-k);
- the black-box embedding the paper contrasts NAG with: mean-pooled final
  hidden states of the same backbone, ranked by cosine similarity to the mean
  target embedding.

All methods read the same texts truncated to the index's ``max_length`` tokens.

Usage: ``python -m tools.eval_selection DATA_DIR [--index DIR] [--model M] [--dtype D] [--nag-only] [-k 10,50,100,200]``

``DATA_DIR`` holds ``corpus/`` and ``targets.jsonl``, as ``tools/labelled_corpus.py``
writes them; the index (default ``DATA_DIR/nag.index``) is built on first use and
reused afterwards.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from indexer.build import BuildOptions, build
from nagindex.corpus import find_files, read_records
from nagindex.extract import Extractor
from query import ScoreSpec, Selector, read_targets
from query.select import ranked_prefix
from query.targets import Targets

Scorer = Callable[["Task"], np.ndarray]   # -> [pool, M], higher is better


class Task:
    """A labelled pool, its index and its targets, with the texts every baseline reads."""

    def __init__(self, data: Path, index: Path, model: str | None, dtype: str | None = None):
        build(data / "corpus", index, BuildOptions(model=model, dtype=dtype, progress=False))
        self.selector = Selector(index, model=model)
        self.targets: Targets = read_targets(data / "targets.jsonl", target_field="target")
        records = read_records(find_files(data / "corpus"), "text", "id", extra_fields=("label",))
        label_of = {r.id: r.fields["label"] for r in records}
        self.labels = np.array([label_of[i] for i in self.selector.index.ids])
        wanted = {r.fields.get("target"): r.fields.get("label") for r in
                  read_records(find_files(data / "targets.jsonl"), "text", None, extra_fields=("target", "label"))}
        self.names = list(self.targets.groups())
        self.wanted = [str(wanted.get(n) or n) for n in self.names]

    @property
    def extractor(self) -> Extractor:
        return self.selector.extractor

    def truncated(self, texts: list[str]) -> list[str]:
        """The texts as far as the backbone reads them: up to the end of their ``max_length``-th token."""
        enc = self.extractor.backbone.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                                                truncation=True, max_length=self.extractor.settings.max_length)
        return [text[: spans[-1][1]] if spans else "" for text, spans in zip(texts, enc["offset_mapping"])]

    def pool_texts(self) -> list[str]:
        return self.truncated(self.selector.texts(np.arange(self.selector.index.documents)))

    def target_texts(self) -> dict[str, list[str]]:
        texts = self.truncated(self.targets.texts)
        return {name: [texts[i] for i in rows] for name, rows in self.targets.groups().items()}


def nag(weighting: str) -> Scorer:
    def score(task: Task) -> np.ndarray:
        spec = ScoreSpec(weighting=weighting)
        return task.selector.similarities(task.selector.profiles(task.targets, spec), spec.neuron_type)
    return score


def bm25(task: Task) -> np.ndarray:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(task.pool_texts(), stopwords="en", show_progress=False), show_progress=False)
    columns = []
    for texts in task.target_texts().values():
        queries = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        columns.append(np.mean([retriever.get_scores(q) for q in queries], axis=0))
    return np.stack(columns, 1)


def dsir(task: Task) -> np.ndarray:
    from data_selection import HashedNgramDSIR

    pool = task.pool_texts()
    with tempfile.TemporaryDirectory() as tmp:
        def write(name: str, texts: list[str]) -> str:
            path = Path(tmp) / name
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
            return str(path)

        targets = [write(f"target-{m}.jsonl", texts) for m, texts in enumerate(task.target_texts().values())]
        model = HashedNgramDSIR([write("pool.jsonl", pool)], targets, cache_dir=str(Path(tmp) / "cache"),
                                num_proc=1, separate_targets=True)
        with contextlib.redirect_stderr(io.StringIO()):     # its progress bars, one per file
            model.fit_importance_estimator(num_tokens_to_fit="all")
        return np.stack([model.importance_estimator(model.featurizer(t)) for t in pool])


@torch.inference_mode()
def embed(extractor: Extractor, texts: list[str]) -> np.ndarray:
    """Mean over real tokens of the backbone's final hidden states, unit length: ``[n, hidden]``."""
    ids, _ = extractor.tokenize(texts)
    out = np.zeros((len(ids), extractor.backbone.config.hidden_size), np.float32)
    for batch in extractor.batches(ids):
        input_ids, mask = extractor.pad([ids[i] for i in batch])
        hidden = extractor.backbone.body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        out[batch] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def embedding(task: Task) -> np.ndarray:
    pool = embed(task.extractor, task.selector.texts(np.arange(task.selector.index.documents)))
    centres = []
    for rows in task.targets.groups().values():
        mean = embed(task.extractor, [task.targets.texts[i] for i in rows]).mean(0)
        centres.append(mean / np.linalg.norm(mean))
    return pool @ np.stack(centres, 1)


METHODS: dict[str, Scorer] = {
    "NAG (paper)": nag("paper"),
    "NAG (idf)": nag("idf"),
    "BM25": bm25,
    "DSIR (hashed n-grams)": dsir,
    "embedding (mean hidden state)": embedding,
}


def precision(task: Task, scores: np.ndarray, ks: list[int]) -> list[float]:
    """Precision at each k, averaged over targets; ties ranked by document id, as a query ranks them."""
    out = np.zeros(len(ks))
    for m, label in enumerate(task.wanted):
        best = ranked_prefix(-scores[:, m], task.selector.index.ids_of, max(ks))
        out += [np.mean(task.labels[best[:k]] == label) for k in ks]
    return (out / len(task.wanted)).tolist()


def evaluate(data: Path, index: Path, model: str | None, ks: list[int], dtype: str | None = None,
             methods: list[str] | None = None) -> dict[str, list[float]]:
    """Method -> precision at each k; ``methods`` limits the scored methods (default: all)."""
    task = Task(data, index, model, dtype)
    share = np.mean([np.mean(task.labels == label) for label in task.wanted])
    table = {"random (expected)": [float(share)] * len(ks)}
    for name, scorer in METHODS.items():
        if methods is None or name in methods:
            table[name] = precision(task, scorer(task), ks)
    return table


def format_table(table: dict[str, list[float]], ks: list[int]) -> str:
    width = max(map(len, table))
    lines = [f"{'method':<{width}}" + "".join(f"{f'P@{k}':>8}" for k in ks)]
    lines += [f"{name:<{width}}" + "".join(f"{v:>8.3f}" for v in values) for name, values in table.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="directory with corpus/ and targets.jsonl")
    ap.add_argument("--index", type=Path, default=None, help="index directory [default: DATA/nag.index]")
    ap.add_argument("--model", default=None, help="backbone [default: the default backbone]")
    ap.add_argument("-k", default="10,50,100,200", help="budgets, documents per target, comma separated")
    ap.add_argument("--dtype", default=None, help="precision of the index built on first use [default: the build's]")
    ap.add_argument("--nag-only", action="store_true", help="score the NAG methods only, not the baselines")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    methods = [m for m in METHODS if m.startswith("NAG")] if args.nag_only else None
    table = evaluate(args.data, args.index or args.data / "nag.index", args.model, ks, args.dtype, methods)
    print(format_table(table, ks))


if __name__ == "__main__":
    main()
