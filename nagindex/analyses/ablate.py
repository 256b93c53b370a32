"""The paper's deactivation analysis: silence a target's NAG neurons, watch the loss.

If the neurons that a target's NAGs point at are a functional backbone of the
model for that target, zeroing them should hurt the language model on unseen
examples of the target far more than zeroing as many random neurons per layer,
and more than it hurts unrelated text. Zeroing is done with forward hooks on
the stock model, so the model is never modified and is whole again afterwards.

The target's examples are split so that the neurons are never chosen from the
text they are tested on: every second example of each task (the 2nd, 4th, ...)
is held out for the loss, the others build the profile.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from query.profile import ScoreSpec
from query.select import ranked_prefix
from query.selector import Selector
from query.targets import Targets

from nagindex.errors import NagindexError
from nagindex.extract import Extractor

#: Tokens per batch for the loss; the LM head's logits are tokens x vocabulary floats.
LOSS_TOKEN_BUDGET = 1024


def split_targets(targets: Targets) -> tuple[Targets, Targets]:
    """``(profile part, held-out part)``: every second example of each task is held out."""
    keep: list[int] = []
    held: list[int] = []
    for name, rows in targets.groups().items():
        if len(rows) < 2:
            raise NagindexError(f"target {name}: needs at least 2 examples (one to choose with, one held out to test)")
        keep += rows[0::2].tolist()
        held += rows[1::2].tolist()

    def part(rows: list[int]) -> Targets:
        return Targets([targets.texts[i] for i in rows], [targets.names[i] for i in rows])

    return part(sorted(keep)), part(sorted(held))


Neurons = dict[int, np.ndarray]   # layer -> NAG neuron ids of the chosen type


def nag_neurons(weights: np.ndarray, layers: Sequence[int], per_layer: int) -> Neurons:
    """Per layer, the ``per_layer`` neurons of highest profile weight (ties: lower id).

    ``weights`` is one target's ``[len(layers), N]`` from ``Profiles.weights()``;
    under the paper's weighting these are the neurons most frequent in the
    target's NAGs, the paper's choice.
    """
    top = np.argsort(-weights, axis=1, kind="stable")[:, :per_layer]
    return {int(layer): row for layer, row in zip(layers, top)}


def random_neurons(width: int, like: Neurons, rng: np.random.Generator) -> Neurons:
    """As many neurons in each layer as ``like`` holds, drawn uniformly from the others."""
    return {layer: rng.choice(np.setdiff1d(np.arange(width), taken), size=len(taken), replace=False)
            for layer, taken in like.items()}


def channels(extractor: Extractor, neuron_type: str, neurons: np.ndarray) -> np.ndarray:
    """The module's output channels behind NAG neuron ids, sorted, each once.

    Grouped key/value neurons count each key/value channel once per query head
    that shares it; zeroing one means zeroing the channel they all read.
    """
    neurons = np.asarray(neurons, dtype=np.int64)
    if neuron_type in extractor.backbone.layout.grouped:
        hd, group = extractor.head_dim, extractor.num_heads // extractor.kv_heads
        neurons = (neurons // hd // group) * hd + neurons % hd
    return np.unique(neurons)


@contextlib.contextmanager
def zeroed(extractor: Extractor, neuron_type: str, neurons: Neurons) -> Iterator[Neurons]:
    """Zero the given neurons while inside; yields the output channels zeroed in each layer."""
    module_path = extractor.backbone.layout.modules[neuron_type]
    chans = {layer: channels(extractor, neuron_type, ids) for layer, ids in neurons.items()}
    handles = []

    def hook_for(idx: torch.Tensor):
        def hook(module, inputs, output):
            output[..., idx] = 0
            return output
        return hook

    try:
        for layer, idx in chans.items():
            module = extractor.backbone.layers[layer].get_submodule(module_path)
            idx = torch.as_tensor(idx, dtype=torch.long, device=extractor.backbone.device)
            handles.append(module.register_forward_hook(hook_for(idx)))
        yield chans
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def lm_loss(extractor: Extractor, texts: Sequence[str]) -> float:
    """Mean next-token cross-entropy (nats) over all tokens of ``texts``, with the full model and LM head."""
    ids, _ = extractor.tokenize(texts)
    ids = [i for i in ids if len(i) >= 2]
    if not ids:
        raise NagindexError("the loss needs texts of at least two tokens")
    model = extractor.backbone.model
    total, count = 0.0, 0
    for batch in extractor.batches(ids):
        input_ids, mask = extractor.pad([ids[i] for i in batch])
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        labels = input_ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total += float(torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="sum"))
        count += int((labels != -100).sum())
    return total / count


@dataclass
class Row:
    name: str
    target: list[float]      # one loss per run (several for random seeds)
    control: list[float]


@dataclass
class Ablation:
    target: str
    profile_examples: int
    held_out: int
    control: str              # where the control text came from
    neuron_type: str
    weighting: str            # the profile weighting the neurons were chosen by
    layers: int
    width: int                # neurons of the type in one layer
    per_layer: int            # neurons zeroed in each layer
    channels: int             # output channels zeroed over all layers (grouped neurons share channels)
    rows: list[Row]


def ablate(selector: Selector, targets: Targets, spec: ScoreSpec = ScoreSpec(), *, per_layer: int | None = None,
           seeds: int = 3, control_texts: list[str] | None = None, control_docs: int = 32) -> list[Ablation]:
    """Zero each target's NAG neurons, then random ones, and measure the loss on held-out and control text.

    The neurons are those of highest weight in the target's profile under
    ``spec``: the most frequent under the paper's weighting, the most
    characteristic of the target against the pool under ``idf``. Without
    ``control_texts``, each target's control is the pool documents least
    similar to it: text the target's neurons should matter little for.
    """
    profile_part, held_out = split_targets(targets)
    profiles = selector.profiles(profile_part, spec)
    weights = profiles.weights()
    extractor = Extractor(selector.extractor.backbone, selector.extractor.settings, LOSS_TOKEN_BUDGET)
    width = selector.index.neurons[spec.neuron_type]
    per_layer = per_layer or profiles.top_k
    if not 1 <= per_layer <= width:
        raise NagindexError(f"--per-layer {per_layer}: choose 1..{width}")
    sims = None if control_texts is not None else selector.similarities(profiles, spec.neuron_type)
    held = held_out.groups()
    out = []
    for m, name in enumerate(profiles.names):
        tested = [held_out.texts[i] for i in held[name]]
        if control_texts is None:
            # Ascending similarity: the bottom of the target's ranking first.
            rows = ranked_prefix(sims[:, m], selector.index.ids_of, control_docs)
            control, where = selector.texts(rows), f"the {len(rows)} pool documents least similar to {name}"
        else:
            control, where = control_texts, f"{len(control_texts)} given texts"

        chosen = nag_neurons(weights[m], profiles.layers, per_layer)
        none = _losses(extractor, tested, control)
        with zeroed(extractor, spec.neuron_type, chosen) as chans:
            nag = _losses(extractor, tested, control)
        rand = []
        for seed in range(seeds):
            with zeroed(extractor, spec.neuron_type, random_neurons(width, chosen, np.random.default_rng(seed))):
                rand.append(_losses(extractor, tested, control))
        out.append(Ablation(name, int(profiles.examples[m]), len(tested), where, spec.neuron_type, spec.weighting,
                            len(profiles.layers), width, per_layer, sum(len(c) for c in chans.values()), [
                                Row("none", [none[0]], [none[1]]),
                                Row("NAG neurons", [nag[0]], [nag[1]]),
                                Row(f"random ({seeds} seeds)", [r[0] for r in rand], [r[1] for r in rand])]))
    return out


def _losses(extractor: Extractor, tested: list[str], control: list[str]) -> tuple[float, float]:
    return lm_loss(extractor, tested), lm_loss(extractor, control)


def format_table(result: Ablation) -> str:
    """One target's table: rows none / NAG neurons / random, losses and their change against none."""
    r = result
    lines = [(f"{r.target}: profile from {r.profile_examples} examples, loss on {r.held_out} held-out examples "
              f"(every second one); control: {r.control}"),
             (f"zeroed per run: {r.per_layer} of the {r.width:,} {r.neuron_type} neurons in each of {r.layers} layers "
              f"({r.per_layer / r.width:.2%} of them; {r.channels:,} output channels), "
              f"the NAG ones by highest {r.weighting} weight"),
             f"{'':<18}{'target loss':>16}{'change':>10}{'control loss':>16}{'change':>10}"]
    base_t, base_c = r.rows[0].target[0], r.rows[0].control[0]
    for row in r.rows:
        cells = []
        for values, base in ((row.target, base_t), (row.control, base_c)):
            mean = float(np.mean(values))
            loss = f"{mean:.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")
            change = "—" if row is r.rows[0] else f"{(mean - base) / base:+.1%}"
            cells += [f"{loss:>16}", f"{change:>10}"]
        lines.append(f"{row.name:<18}" + "".join(cells))
    return "\n".join(lines)
