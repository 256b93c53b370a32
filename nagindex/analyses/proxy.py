"""Does the selection train better? The paper's experiment in miniature, on the user's own targets.

A selection is only as good as what training on it teaches. For every method,
each target gets the same token budget of pool documents; a fresh copy of a
small proxy language model is continued-pretrained on them, and its loss is
measured on held-out examples of the target: lower held-out loss means the
selection teaches more about the target. At this scale a continuous likelihood
metric ranks data choices more reliably than task accuracy would.

The target's examples are split as ``nagindex ablate`` splits them: every
second example of each task is held out for the loss, the others choose the
data. The methods:

- each NAG weighting (``paper``, ``idf``, ``classifier``), from the index, and
  ``auto``, the query's default, choosing among them per task from the
  examples that choose the data (docs/design.md §1.3; the result records what
  it chose);
- ``random``: a uniform sample of the pool under the same budget, the floor
  every gain is measured against;
- ``bm25``: BM25 over the pool's texts, read back from the corpus;
- ``embedding``: cosine kNN to the target's mean embedding: the backbone's
  mean-pooled hidden states, or a sentence-embedding model directory;
- ``heldout``: the held-out examples themselves, repeated to the budget; not a
  selection (it trains on the test) but a ceiling, and a check that the
  measurement works: it must beat random.

The recipe is fixed and the same for every method (``Recipe``): AdamW at
``learning_rate``, linear warm-up over the first ``warmup`` share of the steps
and linear decay to zero, ``epochs`` passes over the selection in a seeded
order, documents packed into blocks of ``sequence_length`` tokens
(proxy_train.py), ``batch_size`` blocks per step, gradients clipped at norm 1;
float32 weights, with bfloat16 autocast where the backbone computes in
bfloat16 by default (CUDA, and CPUs with native bfloat16; docs/design.md
§1.4); the result records which. The budget counts each document's tokens as
the index counted them (without packing: up to ``sequence_length``, what is
trained on).

Seed ``s`` draws the random sample and the training order of every method, so
each method's gain over random is a set of pairs, one per seed, and its
interval (bootstrap.py) covers the training order's effect as well as the
random sample's. Several budgets are one run: each method's selection for a
budget is a prefix of its ranking (random: of its seed's permutation), and
every budget trains fresh copies, since the order of methods can change with
the budget.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from nagindex.errors import NagindexError
from query.budget import Budget
from nagindex.settings import SELECTION_WEIGHTINGS
from query.profile import ScoreSpec
from query.select import pick
from query.selector import Selector
from query.targets import Targets

from .ablate import split_targets
from .baselines import Embed, backbone_embedder, bm25_scores, centroid_scores, sentence_embedder
from .bootstrap import LEVEL, Interval, paired_intervals
from .proxy_train import Trainer, load_proxy

BASELINES = ("random", "bm25", "embedding", "heldout")
#: The index's weightings; ``bm25`` is the baseline over the pool's texts, which needs no term statistics.
WEIGHTED = tuple(w for w in SELECTION_WEIGHTINGS if w not in BASELINES)
METHODS = WEIGHTED + BASELINES
DEFAULT_METHODS = ("auto", "paper", "classifier", "idf", "random", "bm25", "embedding")


@dataclass(frozen=True)
class Recipe:
    """How every proxy copy is trained (see the module's docstring)."""

    learning_rate: float = 1e-4
    epochs: int = 2
    sequence_length: int = 128
    batch_size: int = 4
    warmup: float = 0.1
    pack: bool = True         # documents packed into blocks; False: one (truncated, padded) document per sequence

    def __post_init__(self):
        if not (self.learning_rate > 0 and self.epochs >= 1 and self.sequence_length >= 2 and self.batch_size >= 1
                and 0 <= self.warmup < 1):
            raise NagindexError("proxy recipe: learning rate > 0, epochs >= 1, sequence length >= 2, "
                                "batch size >= 1 and 0 <= warm-up < 1")


@dataclass
class ProxyResult:
    """One budget's losses; every list of losses holds one per seed, paired across methods."""

    model: str
    tokens: int                                  # budget per target
    seeds: int
    recipe: Recipe
    targets: list[str]
    methods: list[str]
    held_out: dict[str, int]                     # target -> held-out examples
    before: dict[str, float]                     # target -> held-out loss of the untrained proxy
    after: dict[str, dict[str, list[float]]]     # method -> target -> loss after training, per seed
    trained: dict[str, dict[str, int]]           # method -> target -> tokens trained on per epoch (first seed)
    seconds: float = 0.0                         # of the whole run, every budget
    trained_tokens: int = 0                      # this budget's, over all runs and epochs
    precision: str = "float32"                   # "bfloat16 autocast" or "float32"
    notes: list[str] = field(default_factory=list)
    chosen: dict[str, str] = field(default_factory=dict)   # target -> the weighting auto chose (with auto)

    def gains(self, method: str) -> np.ndarray:
        """Held-out loss lowered beyond random's (positive: better than random), shape (seeds, targets)."""
        return np.array([self.after["random"][t] for t in self.targets]).T - \
            np.array([self.after[method][t] for t in self.targets]).T

    def intervals(self, method: str) -> dict[str, Interval]:
        """Target (and ``"mean"``) -> the paired gain over random with its bootstrap interval."""
        each, mean = paired_intervals(self.gains(method))
        return {**dict(zip(self.targets, each)), "mean": mean}

    def as_dict(self) -> dict:
        out = asdict(self)
        out["gain_over_random"] = {m: {t: asdict(i) for t, i in self.intervals(m).items()} for m in self.methods}
        out["interval"] = {"level": LEVEL, "method": "paired percentile bootstrap over seeds (and targets for "
                                                    "the mean)"}
        return out


def proxy(selector: Selector, targets: Targets, tokens: list[int], methods=DEFAULT_METHODS, *, seeds: int = 1,
          recipe: Recipe = Recipe(), spec: ScoreSpec = ScoreSpec(), proxy_model: str | None = None,
          embedding_model: str | None = None, device: str | None = None, progress: bool = True
          ) -> list[ProxyResult]:
    """Train a fresh proxy per budget, method, target and seed on the selected tokens; held-out losses.

    ``selector``: the index; ``targets``: all examples (every second one is held
    out); ``tokens``: the budgets per target, one result each; ``methods``:
    names from METHODS, ``random`` among them; ``seeds``: how many, each the
    random sample's and every method's training order; ``recipe``: the
    training; ``spec``: scoring options of the NAG weightings (its weighting is
    replaced by each method's); ``proxy_model``: a Hugging Face causal LM
    directory [default: the index's backbone]; ``embedding_model``: a
    sentence-embedding directory for ``embedding`` [default: the backbone's
    hidden states]; ``device``: where to train.
    """
    from tqdm.auto import tqdm

    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise NagindexError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if "random" not in methods:
        raise NagindexError(f"--methods {','.join(methods)}: add random, the baseline every gain is measured against")
    budgets = sorted(dict.fromkeys(tokens))
    if not budgets or budgets[0] < 1 or seeds < 1:
        raise NagindexError("--tokens and --seeds must be at least 1")
    started = time.perf_counter()
    chooser, held_out = split_targets(targets)
    names = list(chooser.groups())
    held = {n: [held_out.texts[i] for i in rows] for n, rows in held_out.groups().items()}
    picks, chosen = _selections(selector, chooser, held, methods, budgets, seeds, recipe, spec, embedding_model)

    model, tokenizer, label = load_proxy(selector.model or selector.index.backbone["name"], proxy_model, device)
    trainer = Trainer(model, tokenizer, recipe)
    sequences = {b: {m: {t: [trainer.sequences(texts, b) for texts in per_seed] for t, per_seed in by_target.items()}
                     for m, by_target in by_method.items()} for b, by_method in picks.items()}
    per_budget = {b: sum(sum(map(len, seq)) for by_target in by_method.values() for per_seed in by_target.values()
                         for seq in per_seed) * recipe.epochs for b, by_method in sequences.items()}
    tested = {t: trainer.encode(held[t]) for t in names}
    before = {t: trainer.loss(tested[t]) for t in names}
    after = {b: {m: {t: [] for t in names} for m in methods} for b in budgets}
    with tqdm(total=sum(per_budget.values()), unit="tok", unit_scale=True, desc="proxy training",
              disable=not progress) as bar:
        for b in budgets:
            for t in names:
                for m in methods:
                    for seed, sequence in enumerate(sequences[b][m][t]):
                        trainer.train(sequence, seed, bar)
                        after[b][m][t].append(trainer.loss(tested[t]))
                        trainer.reset()
    seconds = time.perf_counter() - started
    return [ProxyResult(label, b, seeds, recipe, names, methods, {t: len(held[t]) for t in names}, before, after[b],
                        {m: {t: sum(map(len, sequences[b][m][t][0])) for t in names} for m in methods}, seconds,
                        per_budget[b], trainer.precision, chosen=chosen) for b in budgets]


def _selections(selector: Selector, chooser: Targets, held: dict[str, list[str]], methods: list[str],
                budgets: list[int], seeds: int, recipe: Recipe, spec: ScoreSpec, embedding_model: str | None
                ) -> tuple[dict[int, dict[str, dict[str, list[list[str]]]]], dict[str, str]]:
    """budget -> method -> target -> the texts to train on, per seed (the same texts but for random);
    and target -> the weighting ``auto`` chose, where it is a method."""
    index = selector.index
    counted = np.minimum(index.tokens, recipe.sequence_length) if not recipe.pack else index.tokens
    names = list(chooser.groups())
    groups = {n: [chooser.texts[i] for i in rows] for n, rows in chooser.groups().items()}
    pool: list[str] | None = None
    rankings: dict[str, dict[str, list[np.ndarray]]] = {}     # method -> target -> distances (random: per seed)
    chosen: dict[str, str] = {}
    for method in methods:
        if method == "heldout":
            continue
        if method == "random":
            rankings[method] = {t: [np.random.default_rng([seed, m]).permutation(index.documents).astype(np.float64)
                                    for seed in range(seeds)] for m, t in enumerate(names)}
            continue
        if method in WEIGHTED:
            profiles = selector.profiles(chooser, replace(spec, weighting=method))
            chosen.update({c["target"]: c["weighting"] for c in profiles.choices or []})
            scores = selector.similarities(profiles, spec.neuron_type)
        else:
            pool = pool if pool is not None else selector.texts(np.arange(index.documents))
            if method == "bm25":
                scores = bm25_scores(pool, groups)
            else:
                embed: Embed = (sentence_embedder(embedding_model) if embedding_model
                                else backbone_embedder(selector.extractor))
                scores = centroid_scores(embed, pool, groups)
        rankings[method] = {t: [-scores[:, m]] for m, t in enumerate(names)}
    out: dict[int, dict[str, dict[str, list[list[str]]]]] = {}
    for b in budgets:
        budget = Budget(tokens=b)
        out[b] = {m: ({t: [_repeat(held[t], b, selector)] for t in names} if m == "heldout" else
                      {t: [selector.texts(pick(r, index.ids_of, counted, budget).rows) for r in per_seed]
                       for t, per_seed in rankings[m].items()}) for m in methods}
    # A selection fixed by the targets is the same texts in every seed's order.
    return {b: {m: {t: per if len(per) == seeds else per * seeds for t, per in by_target.items()}
                for m, by_target in by_method.items()} for b, by_method in out.items()}, chosen


def _repeat(texts: list[str], tokens: int, selector: Selector) -> list[str]:
    """``texts`` cycled until their tokens (as the backbone counts them) reach the budget."""
    counts = [max(1, len(i)) for i in selector.extractor.backbone.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    out, total = [], 0
    while total < tokens:
        for text, count in zip(texts, counts):
            if total + count > tokens and out:
                return out
            out.append(text)
            total += count
    return out


# -- rendering ----------------------------------------------------------------

def _cell(i: Interval) -> str:
    return f"{i.estimate:+.4f} [{i.low:+.4f}, {i.high:+.4f}]"


def format_table(result: ProxyResult) -> str:
    """Per target and on average: loss before, after each method (± over seeds), gain over random [95% interval]."""
    r, rc = result, result.recipe
    lines = [f"proxy {r.model}: {r.tokens:,} tokens per target; lr {rc.learning_rate:g}, {rc.epochs} epoch(s), "
             f"{'packed blocks' if rc.pack else 'sequences'} of {rc.sequence_length} tokens, batch {rc.batch_size}, "
             f"warm-up {rc.warmup:.0%}; {r.seeds} seed(s) (sample and order), gains paired by seed with "
             f"{LEVEL:.0%} bootstrap intervals; {r.precision}; {r.trained_tokens:,} training tokens"]
    intervals = {m: r.intervals(m) for m in r.methods}
    for target in [*r.targets, "mean"]:
        if target == "mean":
            if len(r.targets) < 2:
                break
            before = float(np.mean(list(r.before.values())))
            lines += ["", f"== mean over {len(r.targets)} targets (loss before training {before:.4f})"]
        else:
            chose = f"; auto chose {r.chosen[target]}" if target in r.chosen else ""
            lines += ["", f"== {target} ({r.held_out[target]} held-out examples; loss before training "
                          f"{r.before[target]:.4f}{chose})"]
        lines.append(f"{'method':<12}{'loss':>18}{'gain over random [95%]':>32}"
                     + (f"{'tokens':>9}" if target != "mean" else ""))
        for m in r.methods:
            names = r.targets if target == "mean" else [target]
            losses = np.mean([r.after[m][t] for t in names], axis=0)
            cell = f"{losses.mean():.4f}" + (f" ± {losses.std():.4f}" if len(losses) > 1 else "")
            g = "—" if m == "random" else _cell(intervals[m][target])
            lines.append(f"{m:<12}{cell:>18}{g:>32}" + (f"{r.trained[m][target]:>9,}" if target != "mean" else ""))
    return "\n".join(lines)


def format_tables(results: list[ProxyResult]) -> str:
    """Every budget's table, smallest first, and the time of the whole run."""
    return "\n\n".join(map(format_table, results)) + f"\n\n{results[0].seconds:.0f}s in all"


def plot(results: list[ProxyResult], path) -> None:
    """Each method's gain over random with its 95% interval, per target and on average; a panel per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = results[0]
    methods = [m for m in first.methods if m != "random"]
    groups = first.targets + (["mean"] if len(first.targets) > 1 else [])
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(len(results), 1, squeeze=False, layout="constrained",
                             figsize=(min(14.0, max(6.0, 0.3 * len(groups) * len(methods))), 3.2 * len(results)))
    for ax, r in zip(axes[:, 0], results):
        for j, m in enumerate(methods):
            cells = r.intervals(m)
            gain = np.array([cells[g].estimate for g in groups])
            error = np.array([[cells[g].estimate - cells[g].low, cells[g].high - cells[g].estimate] for g in groups]).T
            ax.bar(np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width, gain, width, yerr=error, capsize=2,
                   label=m)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylabel("gain over random (nats/token)")
        ax.set_title(f"{r.tokens:,} selected tokens per target, {r.seeds} seed(s), {LEVEL:.0%} paired bootstrap "
                     f"intervals, proxy {r.model}", loc="left", fontsize=10)
    axes[0, 0].legend(frameon=False, fontsize=8, ncols=min(len(methods), 4))
    fig.savefig(path, dpi=100)
    plt.close(fig)
