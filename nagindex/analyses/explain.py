"""Why a target selects what it selects: its profile, its neurons, its ranking.

A profile is readable: per layer, a distribution over neurons. Before training
on a selection, a user wants to know whether a target is carried by a few
neurons or smeared over many (concentration), which neurons are the target's
own rather than common to all text (pool frequency, stored at build time), how
much two targets share (overlap), and what the pool looks like at the top, the
middle and the bottom of the ranking. All of it comes from the codes already in
the index; only the target examples meet the backbone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from query.profile import ScoreSpec
from query.select import ranked_prefix
from query.selector import Selector
from query.targets import Targets

SNIPPET = 100


@dataclass
class Neuron:
    layer: int
    neuron: int
    weight: float         # the profile weight f_l(n) (per layer, weights sum to one), or a signed coefficient
    target_share: float   # share of the target's examples whose NAG holds this slot
    pool_share: float     # share of pool documents whose NAG holds it
    lift: float           # target share over (smoothed) pool share


@dataclass
class Document:
    position: str         # top, middle or bottom of the ranking
    rank: int             # 1 is the best
    id: str
    distance: float
    snippet: str


@dataclass
class TargetReport:
    name: str
    examples: int
    top_share: list[float]      # per layer: (positive) weight held by the K heaviest neurons
    entropy: list[float]        # per layer: entropy of the (positive) weights, in bits
    generic_share: float        # weight on slots in at least half of the pool's NAGs (mean over layers)
    tied: int                   # slots sharing the highest weight
    strongest: list[Neuron]     # by weight
    opposing: list[Neuron]      # by most negative weight (signed weightings: classifier)
    support: int                # examples a slot must be in to count as distinctive
    distinctive: list[Neuron]   # by lift, among slots with enough support
    distance: dict[str, float]  # quantiles of the pool's distances
    documents: list[Document]


@dataclass
class Explanation:
    spec: ScoreSpec
    layers: list[int]
    top_k: int
    neurons: int                 # neurons per layer of the type
    pool: int                    # documents in the pool
    targets: list[TargetReport]
    jaccard: list[list[float]]   # weighted Jaccard between the targets' profiles
    cosine: list[list[float]]
    weights: np.ndarray = field(repr=False)     # [M, L_sel, N], for plots
    distances: np.ndarray = field(repr=False)   # [pool, M], for plots
    weighting_choice: list[dict] | None = None  # --weighting auto: each target's choice and evidence (query.auto)

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["weights"], out["distances"]
        return out


def explain(selector: Selector, targets: Targets, spec: ScoreSpec = ScoreSpec(), *, neurons: int = 10,
            documents: int = 3) -> Explanation:
    """Profiles, characteristic neurons, overlaps and ranking samples of every target."""
    index = selector.index
    profiles = selector.profiles(targets, spec)
    weights = profiles.weights()
    df = index.slot_counts(spec.neuron_type)[profiles.layers]
    pool_share = df / max(index.documents, 1)
    smoothed = (df + 1.0) / (index.documents + 1.0)     # as the idf weighting smooths it
    distances = 1.0 - selector.similarities(profiles, spec.neuron_type)
    reports = []
    for m, name in enumerate(profiles.names):
        w = weights[m]
        share = _positive_shares(w)
        target_share = profiles.counts[m] / profiles.examples[m]
        heaviest = -np.sort(-share, axis=1)[:, :profiles.top_k].sum(1)
        p = np.where(share > 0, share, 1.0)
        entropy = -(share * np.log2(p)).sum(1)
        lift = target_share / smoothed
        columns = np.stack([w, target_share, pool_share, lift])   # the fields of a Neuron, per slot

        # A slot seen in one example of many is noise, however rare in the pool.
        support = max(1, int(np.ceil(profiles.examples[m] / 4)))
        # Ties (common: weights are counts) go to the slots most common in the
        # pool, so that this list and the distinctive one show both sides.
        strongest = _neurons(_top_slots(w, -lift, neurons), profiles.layers, columns)
        opposing = _neurons(_top_slots(-w, lift, neurons), profiles.layers, columns)
        distinctive = _neurons(_top_slots(np.where(profiles.counts[m] >= support, lift, 0), w, neurons),
                               profiles.layers, columns)
        d = distances[:, m]
        quantiles = dict(zip(("min", "p10", "p50", "p90", "max"), map(float, np.quantile(d, [0, .1, .5, .9, 1]))))
        generic = float((share * (pool_share >= 0.5)).sum(1).mean())
        reports.append(TargetReport(name, int(profiles.examples[m]), heaviest.tolist(), entropy.tolist(), generic,
                                    int((w == w.max()).sum()), strongest, opposing, support, distinctive, quantiles,
                                    _samples(selector, d, documents)))
    flat = weights.reshape(len(weights), -1).astype(np.float64)
    positive = np.maximum(flat, 0)
    jaccard = np.minimum(positive[:, None], positive[None]).sum(-1) / np.maximum(positive[:, None], positive[None]).sum(-1)
    norms = np.linalg.norm(flat, axis=1)
    cosine = flat @ flat.T / np.outer(norms, norms)
    return Explanation(spec, profiles.layers.tolist(), profiles.top_k, int(weights.shape[2]), index.documents, reports,
                       jaccard.tolist(), cosine.tolist(), weights, distances, profiles.choices or None)


def _positive_shares(w: np.ndarray) -> np.ndarray:
    """Per layer, the positive part of the weights as shares summing to one: the weights themselves
    for frequency weightings; for signed ones, what pulls documents towards the target."""
    positive = np.maximum(w, 0)
    return positive / np.maximum(positive.sum(1, keepdims=True), np.finfo(np.float64).tiny)


def _top_slots(score: np.ndarray, tie: np.ndarray, count: int) -> list[tuple[int, int]]:
    """``(layer_position, neuron)`` of the ``count`` highest positive scores, ties by ``tie`` (higher first)."""
    flat = score.ravel()
    order = np.lexsort((np.arange(len(flat)), -tie.ravel(), -flat))[:count]
    return [tuple(map(int, np.unravel_index(i, score.shape))) for i in order if flat[i] > 0]


def _neurons(slots: list[tuple[int, int]], layers: np.ndarray, columns: np.ndarray) -> list[Neuron]:
    return [Neuron(int(layers[l]), n, *map(float, columns[:, l, n])) for l, n in slots]


def _samples(selector: Selector, distance: np.ndarray, count: int) -> list[Document]:
    """Documents from the top, the middle and the bottom of one target's ranking."""
    n = len(distance)
    count = min(count, n)
    if count == 0:
        return []
    top = ranked_prefix(distance, selector.index.ids_of, count)
    bottom = ranked_prefix(-distance, selector.index.ids_of, count)[::-1]
    lo = (n - count) // 2
    middle = np.argpartition(distance, np.arange(lo, lo + count))[lo:lo + count]
    picked = [(position, first + j, row) for position, part, first in
              (("top", top, 1), ("middle", middle, lo + 1), ("bottom", bottom, n - count + 1))
              for j, row in enumerate(part)]
    rows = np.array([row for *_, row in picked], dtype=np.int64)
    return [Document(position, rank, str(doc_id), float(distance[row]), _snippet(text))
            for (position, rank, row), doc_id, text in zip(picked, selector.index.ids_of(rows), selector.texts(rows))]


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


# -- rendering ----------------------------------------------------------------

def format_text(ex: Explanation) -> str:
    spec = ex.spec
    names = [t.name for t in ex.targets]
    k = ex.top_k
    lines = [f"{len(names)} target(s) against {ex.pool:,} pool documents; {spec.neuron_type}, "
             f"{len(ex.layers)} layers x {ex.neurons} neurons, weighting {spec.weighting}"
             + (f", power {spec.power:g}" if spec.power != 1 else ""), ""]
    if ex.weighting_choice:
        lines += _choice_lines(ex.weighting_choice)
    lines.append(f"concentration per layer: share of weight in the top-{k} neurons / entropy in bits "
                 f"(uniform over {ex.neurons} neurons: {np.log2(ex.neurons):.1f})")
    width = max(14, *(len(n) for n in names))
    lines.append("layer  " + "  ".join(f"{n:>{width}}" for n in names))
    for i, layer in enumerate(ex.layers):
        cells = [f"{t.top_share[i]:.2f} / {t.entropy[i]:4.1f}" for t in ex.targets]
        lines.append(f"{layer:>5}  " + "  ".join(f"{c:>{width}}" for c in cells))
    cells = [f"{np.mean(t.top_share):.2f} / {np.mean(t.entropy):4.1f}" for t in ex.targets]
    lines.append(f"{'mean':>5}  " + "  ".join(f"{c:>{width}}" for c in cells))
    for t in ex.targets:
        lines += ["", f"== {t.name} ({t.examples} examples)",
                  (f"  {t.generic_share:.0%} of the profile's weight is on slots in at least half of the pool's "
                   f"NAGs; slots tied at the highest weight: {t.tied}")]
        groups = [("strongest neurons (highest weight; ties: most common in the pool first)", t.strongest),
                  ("strongest negative neurons (most negative weight: they count against the target)", t.opposing),
                  ((f"distinctive neurons (highest lift = target share / pool share; in at least "
                    f"{t.support} of {t.examples} examples)"), t.distinctive)]
        for title, group in groups:
            if not group:
                continue
            lines.append(f"  {title}:")
            lines.append("    layer  neuron  weight  in targets  in pool    lift")
            lines += [f"    {n.layer:>5}  {n.neuron:>6}  {n.weight:.4f}  {n.target_share:>10.0%}  {n.pool_share:>7.1%}"
                      f"  {n.lift:>6.1f}" for n in group]
        q = t.distance
        lines.append(f"  pool distances: min {q['min']:.4f}  p10 {q['p10']:.4f}  median {q['p50']:.4f}  "
                     f"p90 {q['p90']:.4f}  max {q['max']:.4f}")
        lines.append("  ranking samples:")
        for d in t.documents:
            lines.append(f"    {d.position:<6} #{d.rank:<7} {d.distance:.4f}  {d.id}  {d.snippet}")
    if len(names) > 1:
        lines += ["", "overlap between targets: weighted Jaccard / cosine of profiles"]
        lines.append(" " * width + "  " + "  ".join(f"{n:>{width}}" for n in names))
        for i, n in enumerate(names):
            cells = [f"{ex.jaccard[i][j]:.2f} / {ex.cosine[i][j]:.2f}" for j in range(len(names))]
            lines.append(f"{n:>{width}}  " + "  ".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def _choice_lines(choices: list[dict]) -> list[str]:
    """What --weighting auto chose per target, with each candidate's held-out score (docs/design.md §1.3)."""
    lines = ["weighting auto, per target: the choice, then each candidate's mean rank percentile of held-out "
             "examples among the pool sample (behind the best / standard error)"]
    for c in choices:
        if "candidates" not in c:
            lines.append(f"  {c['target']}: {c['weighting']} ({c['examples']} examples: {c['reason']})")
            continue
        lines.append(f"  {c['target']}: {c['weighting']} ({c['examples']} examples, {c['folds']} folds, "
                     f"among {c['planted_among']:,} pool documents)")
        lines += [f"    {s['weighting']:<18} {s['score']:.4f}  ({s['behind_best']:.4f} / {s['standard_error']:.4f})"
                  for s in c["candidates"]]
    return lines + [""]


def plot(ex: Explanation, path) -> None:
    """Profiles as layer x neuron heatmaps on one shared neuron order, and the pool's similarity histograms.

    Each layer's neurons are sorted by their weight summed over all targets,
    so one column is one neuron in every panel: bright columns shared between
    panels are neurons shared between targets.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    M, L, N = ex.weights.shape
    shown = min(N, 4 * ex.top_k)
    order = np.argsort(-ex.weights.sum(0), axis=1, kind="stable")[:, :shown]
    # Signed weights (classifier) are drawn by their positive part: what pulls documents in.
    sorted_w = np.take_along_axis(np.maximum(ex.weights, 0), order[None], axis=2)
    fig = plt.figure(figsize=(11, 2.3 * M + 3.2), layout="constrained")
    grid = fig.add_gridspec(M + 1, 2, width_ratios=[40, 1], height_ratios=[1] * M + [1.25])
    # A square-root scale keeps the many small weights visible beside a few large ones (idf).
    norm = matplotlib.colors.PowerNorm(0.5, vmin=0, vmax=float(sorted_w.max()) or 1.0)
    for m, t in enumerate(ex.targets):
        ax = fig.add_subplot(grid[m, 0])
        image = ax.imshow(sorted_w[m], aspect="auto", interpolation="nearest", cmap="magma_r", norm=norm,
                          extent=(0.5, shown + 0.5, L - 0.5, -0.5))
        ax.set_title(f"{t.name}: profile from {t.examples} examples "
                     f"(top-{ex.top_k} share {np.mean(t.top_share):.2f}, "
                     f"entropy {np.mean(t.entropy):.1f} bits)", loc="left", fontsize=10)
        ax.set_ylabel("layer")
        ticks = np.arange(0, L, max(1, 5 * round(L / 30)))
        ax.set_yticks(ticks, [str(ex.layers[i]) for i in ticks])
        if m == M - 1:
            ax.set_xlabel(f"neuron rank within its layer, by weight summed over all targets "
                          f"(first {shown} of {N} {ex.spec.neuron_type} neurons)")
        else:
            ax.tick_params(labelbottom=False)
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[:M, 1]))
    bar.set_label("profile weight (sums to 1 per layer; square-root scale)")
    ax = fig.add_subplot(grid[M, :])
    sims = 1.0 - ex.distances
    bins = np.linspace(float(sims.min()), float(sims.max()) or 1.0, 50)
    for m, t in enumerate(ex.targets):
        ax.hist(sims[:, m], bins=bins, histtype="step", linewidth=1.8, label=t.name)
    ax.set_yscale("log")
    ax.set_xlabel("similarity to the target (1 - distance); higher is selected first")
    ax.set_ylabel("pool documents")
    ax.set_title(f"pool scores per target ({ex.pool:,} documents, weighting {ex.spec.weighting})", loc="left",
                 fontsize=10)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=100)
    plt.close(fig)
