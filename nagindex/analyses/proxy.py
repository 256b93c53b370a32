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

- each NAG weighting (``paper``, ``idf``, ``classifier``), from the index;
- ``random``: a uniform sample of the pool under the same budget;
- ``bm25``: BM25 over the pool's texts, read back from the corpus;
- ``embedding``: cosine kNN to the target's mean embedding: the backbone's
  mean-pooled hidden states, or a sentence-embedding model directory;
- ``heldout``: the held-out examples themselves, repeated to the budget; not a
  selection (it trains on the test) but a ceiling, and a check that the
  measurement works: it must beat random.

The recipe is fixed and the same for every method (``Recipe``): AdamW at
``learning_rate``, linear warm-up over the first ``warmup`` share of the steps
and linear decay to zero, ``epochs`` passes over the selection in a seeded
order, one document per sequence truncated to ``sequence_length`` tokens,
``batch_size`` sequences per step, gradients clipped at norm 1; float32
weights, with bfloat16 autocast where the backbone computes in bfloat16 by
default (CUDA, and CPUs with native bfloat16; docs/design.md §1.4); the result
records which. The budget counts each document's tokens as the index counted
them, up to ``sequence_length``: what the proxy trains on. ``seeds`` draws the random sample that many times, each trained in
its own order: the random baseline's spread (over samples and orders) says how
large a gain must be to mean something. The other selections are fixed by the
targets and are trained once, in the first seed's order.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from nagindex.backbone import default_dtype
from nagindex.errors import NagindexError
from query.budget import Budget
from query.profile import WEIGHTINGS, ScoreSpec
from query.select import pick
from query.selector import Selector
from query.targets import Targets

from .ablate import split_targets
from .baselines import Embed, backbone_embedder, bm25_scores, centroid_scores, sentence_embedder

BASELINES = ("random", "bm25", "embedding", "heldout")
METHODS = WEIGHTINGS + BASELINES
DEFAULT_METHODS = ("paper", "classifier", "idf", "random", "bm25", "embedding")


@dataclass(frozen=True)
class Recipe:
    """How every proxy copy is trained (see the module's docstring)."""

    learning_rate: float = 1e-4
    epochs: int = 2
    sequence_length: int = 128
    batch_size: int = 4
    warmup: float = 0.1

    def __post_init__(self):
        if not (self.learning_rate > 0 and self.epochs >= 1 and self.sequence_length >= 2 and self.batch_size >= 1
                and 0 <= self.warmup < 1):
            raise NagindexError("proxy recipe: learning rate > 0, epochs >= 1, sequence length >= 2, "
                                "batch size >= 1 and 0 <= warm-up < 1")


@dataclass
class ProxyResult:
    model: str
    tokens: int                                  # budget per target
    seeds: int
    recipe: Recipe
    targets: list[str]
    methods: list[str]
    held_out: dict[str, int]                     # target -> held-out examples
    before: dict[str, float]                     # target -> held-out loss of the untrained proxy
    after: dict[str, dict[str, list[float]]]     # method -> target -> loss after training (random: per seed)
    trained: dict[str, dict[str, int]]           # method -> target -> tokens trained on per epoch (first seed)
    seconds: float = 0.0
    trained_tokens: int = 0                      # over all runs and epochs
    precision: str = "float32"                   # "bfloat16 autocast" or "float32"
    notes: list[str] = field(default_factory=list)

    def gain(self, method: str, target: str | None = None) -> tuple[float, float]:
        """Held-out loss lowered beyond random's (positive: better than random), and random's spread
        over seeds; ``target`` None: the mean over targets."""
        loss, rand = self._losses(method, target), self._losses("random", target)
        return float(rand.mean() - loss.mean()), float(rand.std())

    def _losses(self, method: str, target: str | None) -> np.ndarray:
        """One per run (random: per seed); averaged over targets when ``target`` is None."""
        names = self.targets if target is None else [target]
        return np.mean([self.after[method][t] for t in names], axis=0)

    def as_dict(self) -> dict:
        out = asdict(self)
        if "random" in self.methods:
            out["gain_over_random"] = {m: {t or "mean": self.gain(m, t) for t in [*self.targets, None]}
                                       for m in self.methods}
        return out


def proxy(selector: Selector, targets: Targets, tokens: int, methods=DEFAULT_METHODS, *, seeds: int = 1,
          recipe: Recipe = Recipe(), spec: ScoreSpec = ScoreSpec(), proxy_model: str | None = None,
          embedding_model: str | None = None, device: str | None = None, progress: bool = True) -> ProxyResult:
    """Train a fresh proxy per method, target and seed on ``tokens`` selected tokens; held-out losses.

    ``selector``: the index; ``targets``: all examples (every second one is held
    out); ``methods``: names from METHODS; ``spec``: scoring options of the NAG
    weightings (its weighting is replaced by each method's); ``proxy_model``: a
    Hugging Face causal LM directory [default: the index's backbone];
    ``embedding_model``: a sentence-embedding directory for ``embedding``
    [default: the backbone's hidden states].
    """
    from tqdm.auto import tqdm

    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise NagindexError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if tokens < 1 or seeds < 1:
        raise NagindexError("--tokens and --seeds must be at least 1")
    started = time.perf_counter()
    chooser, held_out = split_targets(targets)
    names = list(chooser.groups())
    held = {n: [held_out.texts[i] for i in rows] for n, rows in held_out.groups().items()}
    picks = _selections(selector, chooser, held, methods, tokens, seeds, recipe, spec, embedding_model)

    model, tokenizer, label = _load_proxy(selector, proxy_model, device)
    trainer = _Trainer(model, tokenizer, recipe)
    sequences = {m: {t: [trainer.encode(texts) for texts in per_seed] for t, per_seed in by_target.items()}
                 for m, by_target in picks.items()}
    total = sum(sum(map(len, seq)) for by_target in sequences.values() for per_seed in by_target.values()
                for seq in per_seed) * recipe.epochs
    before, after = {}, {m: {t: [] for t in names} for m in methods}
    with tqdm(total=total, unit="tok", unit_scale=True, desc="proxy training", disable=not progress) as bar:
        for t in names:
            tested = trainer.encode(held[t])
            before[t] = trainer.loss(tested)
            for m in methods:
                for seed, sequence in enumerate(sequences[m][t]):
                    trainer.train(sequence, seed, bar)
                    after[m][t].append(trainer.loss(tested))
                    trainer.reset()
    trained = {m: {t: sum(map(len, sequences[m][t][0])) for t in names} for m in methods}
    return ProxyResult(label, tokens, seeds, recipe, names, methods, {t: len(held[t]) for t in names}, before, after,
                       trained, time.perf_counter() - started, total, trainer.precision)


def _selections(selector: Selector, chooser: Targets, held: dict[str, list[str]], methods: list[str], tokens: int,
                seeds: int, recipe: Recipe, spec: ScoreSpec, embedding_model: str | None
                ) -> dict[str, dict[str, list[list[str]]]]:
    """method -> target -> the texts to train on, per seed for random, else once."""
    index = selector.index
    capped = np.minimum(index.tokens, recipe.sequence_length)
    names = list(chooser.groups())
    groups = {n: [chooser.texts[i] for i in rows] for n, rows in chooser.groups().items()}
    budget = Budget(tokens=tokens)
    pool: list[str] | None = None
    out: dict[str, dict[str, list[list[str]]]] = {}
    for method in methods:
        if method == "heldout":
            out[method] = {t: [_repeat(held[t], tokens, selector)] for t in names}
            continue
        if method == "random":
            rows = {t: [pick(np.random.default_rng([seed, m]).permutation(index.documents).astype(np.float64),
                             index.ids_of, capped, budget).rows for seed in range(seeds)]
                    for m, t in enumerate(names)}
        else:
            if method in WEIGHTINGS:
                weighted = replace(spec, weighting=method)
                scores = selector.similarities(selector.profiles(chooser, weighted), spec.neuron_type)
            else:
                pool = pool if pool is not None else selector.texts(np.arange(index.documents))
                if method == "bm25":
                    scores = bm25_scores(pool, groups)
                else:
                    embed: Embed = (sentence_embedder(embedding_model) if embedding_model
                                    else backbone_embedder(selector.extractor))
                    scores = centroid_scores(embed, pool, groups)
            rows = {t: [pick(-scores[:, m], index.ids_of, capped, budget).rows] for m, t in enumerate(names)}
        out[method] = {t: [selector.texts(r) for r in per_seed] for t, per_seed in rows.items()}
    return out


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


def _load_proxy(selector: Selector, proxy_model: str | None, device: str | None):
    """``(model, tokenizer, name)``: float32 weights on the training device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nagindex.backbone import load_backbone, resolve_device

    dev = resolve_device(device)
    if proxy_model is None:
        backbone = load_backbone(selector.model or selector.index.backbone["name"], str(dev), torch.float32)
        return backbone.model, backbone.tokenizer, backbone.identity.name
    try:
        model = AutoModelForCausalLM.from_pretrained(proxy_model, dtype=torch.float32).to(dev)
        tokenizer = AutoTokenizer.from_pretrained(proxy_model)
    except (OSError, ValueError) as e:
        raise NagindexError(f"--proxy-model {proxy_model}: not a causal language model directory ({e})") from None
    return model, tokenizer, str(proxy_model)


class _Trainer:
    """One proxy model, trained from the same initial weights for every run."""

    def __init__(self, model, tokenizer, recipe: Recipe):
        self.model, self.tokenizer, self.recipe = model, tokenizer, recipe
        self.device = next(model.parameters()).device
        self.autocast = default_dtype(self.device) == torch.bfloat16
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @property
    def precision(self) -> str:
        return "bfloat16 autocast" if self.autocast else "float32"

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, up to the sequence length; texts of fewer than two tokens teach nothing."""
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        return [i[: self.recipe.sequence_length] for i in ids if len(i) >= 2]

    def reset(self) -> None:
        self.model.load_state_dict(self.initial)

    def _batch_loss(self, batch: list[list[int]]) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy of a right-padded batch, and the tokens it covers."""
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="sum")
        return loss, int((labels != -100).sum())

    @torch.no_grad()
    def loss(self, sequences: list[list[int]]) -> float:
        """Mean next-token loss (nats per token) over ``sequences``."""
        if not sequences:
            raise NagindexError("the held-out examples need at least two tokens each for a loss")
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(sequences), self.recipe.batch_size):
            loss, n = self._batch_loss(sequences[start:start + self.recipe.batch_size])
            total, count = total + float(loss), count + n
        return total / count

    def train(self, sequences: list[list[int]], seed: int, bar) -> None:
        """The recipe's continued pretraining on ``sequences``, in an order drawn from ``seed``."""
        from transformers import get_linear_schedule_with_warmup

        r = self.recipe
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        steps = r.epochs * math.ceil(len(sequences) / r.batch_size)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=r.learning_rate, weight_decay=0.0)
        schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(r.warmup * steps), max(steps, 1))
        self.model.train()
        for _ in range(r.epochs):
            shuffled = [sequences[i] for i in torch.randperm(len(sequences), generator=order).tolist()]
            for start in range(0, len(shuffled), r.batch_size):
                batch = shuffled[start:start + r.batch_size]
                loss, n = self._batch_loss(batch)
                (loss / max(n, 1)).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                bar.update(sum(map(len, batch)))


# -- rendering ----------------------------------------------------------------

def format_table(result: ProxyResult) -> str:
    """Per target and on average: loss before, after each method (± over seeds), gain over random ± its spread."""
    r, rc = result, result.recipe
    lines = [f"proxy {r.model}: {r.tokens:,} tokens per target; lr {rc.learning_rate:g}, {rc.epochs} epoch(s), "
             f"sequences of {rc.sequence_length} tokens, batch {rc.batch_size}, warm-up {rc.warmup:.0%}; "
             f"{r.seeds} seed(s); {r.precision}; {r.seconds:.0f}s for {r.trained_tokens:,} training tokens"]
    with_random = "random" in r.methods
    for target in [*r.targets, None]:
        if target is None:
            if len(r.targets) < 2:
                break
            before = float(np.mean(list(r.before.values())))
            lines += ["", f"== mean over {len(r.targets)} targets (loss before training {before:.4f})"]
        else:
            lines += ["", f"== {target} ({r.held_out[target]} held-out examples; loss before training "
                          f"{r.before[target]:.4f})"]
        lines.append(f"{'method':<12}{'loss':>18}{'gain over random':>22}" + (f"{'tokens':>9}" if target else ""))
        for m in r.methods:
            losses = r._losses(m, target)
            cell = f"{losses.mean():.4f}" + (f" ± {losses.std():.4f}" if len(losses) > 1 else "")
            if with_random and m != "random":
                gain, spread = r.gain(m, target)
                g = f"{gain:+.4f}" + (f" ± {spread:.4f}" if r.seeds > 1 else "")
            else:
                g = "—"
            lines.append(f"{m:<12}{cell:>18}{g:>22}" + (f"{r.trained[m][target]:>9,}" if target else ""))
    return "\n".join(lines)


def plot(result: ProxyResult, path) -> None:
    """Held-out loss lowered relative to the untrained proxy, per method and target, with the spread over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result
    groups = r.targets + (["mean"] if len(r.targets) > 1 else [])
    width = 0.8 / len(r.methods)
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.3 * len(groups) * len(r.methods))), 4), layout="constrained")
    for j, m in enumerate(r.methods):
        drops, spreads = [], []
        for g in groups:
            target = None if g == "mean" else g
            before = float(np.mean(list(r.before.values()))) if target is None else r.before[target]
            losses = r._losses(m, target)
            drops.append(before - losses.mean())
            spreads.append(losses.std())
        ax.bar(np.arange(len(groups)) + (j - (len(r.methods) - 1) / 2) * width, drops, width, yerr=spreads,
               capsize=2, label=m)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel("held-out loss lowered by training (nats/token)")
    ax.set_title(f"{r.tokens:,} selected tokens per target, {r.seeds} seed(s), proxy {r.model}", loc="left",
                 fontsize=10)
    ax.legend(frameon=False, fontsize=8, ncols=min(len(r.methods), 4))
    fig.savefig(path, dpi=100)
    plt.close(fig)
