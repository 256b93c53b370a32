"""What a proxy run costs per 10K trained tokens: one document per padded sequence against packed blocks.

``nagindex proxy`` spends its time in training steps. This trains the proxy
(the default backbone, or ``--model``) on the same docstrings of the Python
standard library (tools/labelled_corpus.py) twice in one run, from the same
initial weights: ``Recipe(pack=False)``, each document its own sequence
truncated to ``--sequence-length`` and padded within its batch (the earlier
recipe), and the packed recipe (nagindex/analyses/proxy_train.py). It prints the seconds per 10K
tokens trained (tokens that carry a loss; padding is not counted) and the
ratio.

    python -m tools.bench_proxy --tokens 5000
"""
from __future__ import annotations

import argparse
import random
import time

from nagindex.analyses import proxy_train
from nagindex.analyses.proxy import Recipe
from nagindex.backbone import DEFAULT_MODEL

from .labelled_corpus import collect


class _Count:
    """A progress bar that only counts."""

    def __init__(self):
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


def _run(trainer: proxy_train.Trainer, texts: list[str], tokens: int) -> tuple[float, int]:
    """Seconds training, tokens trained."""
    sequences = trainer.sequences(texts, tokens)
    count, started = _Count(), time.perf_counter()
    trainer.train(sequences, 0, count)
    seconds = time.perf_counter() - started
    trainer.reset()
    return seconds, count.n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=5000, help="tokens selected per run (the index's count)")
    ap.add_argument("--model", default=None, help="causal LM directory [default: the default backbone]")
    ap.add_argument("--sequence-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    texts = [t for groups in collect().values() for texts in groups.values() for t in texts]
    random.Random(0).shuffle(texts)
    model, tokenizer, name = proxy_train.load_proxy(DEFAULT_MODEL, args.model, args.device)
    counts = [len(i) for i in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    rows = []
    for pack in (False, True):
        recipe = Recipe(epochs=1, sequence_length=args.sequence_length, batch_size=args.batch_size, pack=pack)
        trainer = proxy_train.Trainer(model, tokenizer, recipe)
        # The selection as the budget counts it: up to a sequence per document unpacked, whole documents packed.
        chosen, total = [], 0
        for text, n in zip(texts, counts):
            n = n if pack else min(n, args.sequence_length)
            if total + n > args.tokens:
                break
            chosen.append(text)
            total += n
        seconds, trained = _run(trainer, chosen, args.tokens)
        rows.append(seconds / trained * 10_000)
        print(f"{'packed' if pack else 'padded':>7}: {len(chosen)} documents, {trained:,} tokens trained in "
              f"{seconds:.1f}s: {rows[-1]:.1f}s per 10K tokens ({trainer.precision}, {name})")
    print(f"packed/padded: {rows[1] / rows[0]:.2f}x the time per 10K trained tokens")


if __name__ == "__main__":
    main()
