"""Extraction throughput against the backbone's own forward pass.

Prints, measured in one run over the same documents:

- ``nagindex``: the extractor as ``nagindex build`` runs it (length-sorted
  token-budget batches, hooks, top-K on the device), over pre-tokenized texts
  like the baseline (tokenizing is timed apart);
- ``bare forward``: the decoder body alone over the very same batches, no
  hooks: the ceiling extraction can approach;
- ``reference-style``: what the reference implementation does, emulated with
  the same hooks: random-order batches of 8, the LM head run, all six neuron
  types computed.

``--config NAME`` runs a randomly initialised model of one of the paper's
architectures (sizes in ``CONFIGS``), with the default backbone's tokenizer:
speed does not depend on the weights, so nothing is downloaded.

``--dtype float32,bfloat16`` times the extractor in each dtype, interleaved
over the same batches (one more row a dtype), and prints the throughput ratio;
the other rows run in the first.

With ``--peak-tflops`` it also reports model FLOPs utilisation: ``2 x parameters`` FLOPs per
token (matrix multiplies of the body) against the card's peak (``--peak-tflops``).

    python -m tools.bench_extract --docs 200
    python -m tools.bench_extract --docs 100 --dtype float32,bfloat16 --no-reference
    python -m tools.bench_extract --config qwen3-0.6b --docs 40 --no-reference --peak-tflops 0.19
    python -m tools.bench_extract --docs 20000 --device cuda --peak-tflops 989
"""
from __future__ import annotations

import argparse
import functools
import random
import time

import torch

from nagindex.backbone import Backbone, Identity, default_dtype, dtype_name, load_backbone, resolve_device
from nagindex.extract import ExtractSettings, Extractor
from nagindex.neurons import NEURON_TYPES, layout_for


#: Published sizes of the paper's backbones and of the default one.
CONFIGS = {
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                   num_key_value_heads=3, vocab_size=49152)),
    "qwen3-0.6b": ("qwen3", dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                                 num_key_value_heads=8, head_dim=128, vocab_size=151936)),
    "qwen3-1.7b": ("qwen3", dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                                 num_key_value_heads=8, head_dim=128, vocab_size=151936)),
    "llama-3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                                   num_key_value_heads=8, head_dim=64, vocab_size=128256)),
}


@functools.cache
def default_tokenizer():
    """The default backbone's tokenizer, loaded once however many models use it."""
    return load_backbone(None, "cpu", "float32").tokenizer


def random_backbone(name: str, device: str, dtype: str | None, **resize) -> Backbone:
    """A randomly initialised model of a named architecture, with the default backbone's tokenizer;
    ``resize``: sizes that replace the architecture's (a scaled-down model of the same kind)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, sizes = CONFIGS[name]
    sizes = {**sizes, **resize}
    tokenizer = default_tokenizer()
    dev = resolve_device(device)
    dt = getattr(torch, dtype) if dtype else default_dtype(dev)
    config = AutoConfig.for_model(model_type, tie_word_embeddings=True, max_position_embeddings=4096, **sizes)
    with dev:                                        # initialised where it runs: seconds, not minutes, on a GPU
        model = AutoModelForCausalLM.from_config(config, dtype=dt).eval()
    return Backbone(model, tokenizer, Identity(name, "random", model_type), layout_for(config), dev, dt)


def documents(n: int, seed: int = 0) -> list[str]:
    """The demo generator's mixed-domain documents: realistic lengths, no third-party text."""
    import tempfile
    from pathlib import Path

    from nagindex.corpus import find_files, read_records
    from nagindex.demo import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        make_demo(tmp, docs=max(n, 29), seed=seed)
        texts = [r.text for r in read_records(find_files(Path(tmp) / "corpus"))]
    return texts[:n]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def bare_forward(extractor: Extractor, ids: list[list[int]]) -> None:
    """The body over the extractor's own batches, without hooks or top-K."""
    bb = extractor.backbone
    with torch.inference_mode():
        for batch in extractor.batches(ids):
            rows = [ids[i] for i in batch]
            T = max(len(r) for r in rows)
            x = torch.full((len(rows), T), extractor.pad_id, dtype=torch.long)
            m = torch.zeros((len(rows), T), dtype=torch.long)
            for j, r in enumerate(rows):
                x[j, : len(r)] = torch.as_tensor(r)
                m[j, : len(r)] = 1
            bb.body(input_ids=x.to(bb.device), attention_mask=m.to(bb.device), use_cache=False)


def reference_style(backbone, texts: list[str], max_length: int) -> None:
    """Random order, batches of 8, LM head and all six types: the reference's way."""
    ex = Extractor(backbone, ExtractSettings(NEURON_TYPES, 20, max_length))
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    tok = backbone.tokenizer
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with torch.inference_mode():
        for i in range(0, len(order), 8):
            batch = [texts[j] for j in order[i:i + 8]]
            enc = tok(batch, add_special_tokens=False, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            weights = (enc["attention_mask"] / enc["attention_mask"].sum(1, keepdim=True)).to(backbone.dtype).unsqueeze(1).to(backbone.device)
            impact = {t: torch.empty((len(batch), ex.num_layers, n), device=backbone.device) for t, n in ex.neurons.items()}
            handles = [layer.get_submodule(backbone.layout.modules[t]).register_forward_hook(
                ex._hook(t, li, weights, impact[t], stop=False))
                for li, layer in enumerate(backbone.layers) for t in NEURON_TYPES]
            try:
                backbone.model(**{k: v.to(backbone.device) for k, v in enc.items()})
                for t in NEURON_TYPES:
                    impact[t].topk(20, dim=-1)
            finally:
                for h in handles:
                    h.remove()


def agreement(extractor: Extractor, args, texts: list[str], docs: int = 1000) -> float:
    """Share of (document, layer) NAGs identical as sets to a CPU float32 extraction."""
    texts = texts[:docs]
    here = extractor.extract(texts).codes["fwd_up"]
    cpu = Extractor(load_backbone(args.model, "cpu", "float32"), extractor.settings).extract(texts).codes["fwd_up"]
    same = [set(a) == set(b) for a, b in zip(here.reshape(-1, here.shape[-1]).tolist(), cpu.reshape(-1, cpu.shape[-1]).tolist())]
    return sum(same) / len(same)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--model", default=None)
    ap.add_argument("--config", choices=sorted(CONFIGS), default=None,
                    help="a randomly initialised model of this architecture instead of --model")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default=None,
                    help="the backbone's dtype; several, comma separated, to compare the extractor in each")
    ap.add_argument("--token-budget", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=120)
    ap.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the reference-style extraction (slow on CPU)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best time of each variant counts")
    ap.add_argument("--check-fp32", action="store_true",
                    help="also extract on the CPU in float32 and report how many layer sets agree")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, for utilisation")
    args = ap.parse_args()

    if torch.device(args.device if args.device != "auto" else "cpu").type == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    dtypes = args.dtype.split(",") if args.dtype else [None]
    args.dtype = dtypes[0]
    backbone = random_backbone(args.config, args.device, args.dtype) if args.config else load_backbone(args.model, args.device, args.dtype)
    extractor = Extractor(backbone, ExtractSettings(max_length=args.max_length), args.token_budget)
    others = {dt: Extractor(random_backbone(args.config, args.device, dt) if args.config
                            else load_backbone(args.model, args.device, dt), extractor.settings, extractor.token_budget)
              for dt in dtypes[1:]}
    texts = documents(args.docs)
    ids, _ = extractor.tokenize(texts)
    tokens = sum(len(i) for i in ids)
    padded = sum(len(b) * max(len(ids[i]) for i in b) for b in extractor.batches(ids))
    dev = backbone.device

    first = f"nagindex (fwd_up, {dtype_name(backbone.dtype)})" if others else "nagindex (fwd_up)"
    variants = {first: lambda: extractor.extract_ids(ids)}
    for dt, other in others.items():
        variants[f"nagindex (fwd_up, {dt})"] = lambda other=other: other.extract_ids(ids)
    for ex in (extractor, *others.values()):
        ex.extract(texts[: min(16, len(texts))])          # warm-up
    variants["bare forward, same batches"] = lambda: bare_forward(extractor, ids)
    if args.reference:
        variants["reference-style"] = lambda: reference_style(backbone, texts, args.max_length)
    # Interleaved rounds, best of each: a shared machine's noise hits every variant alike.
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], timed(fn, dev))
    rows = list(best.items())
    t_tok = timed(lambda: extractor.tokenize(texts), dev)
    t_nag, t_bare = best[first], best["bare forward, same batches"]

    params = sum(p.numel() for n, p in backbone.body.named_parameters() if "embed" not in n)
    print(f"model {args.config or backbone.identity.name}, {params / 1e6:,.0f}M non-embedding parameters; device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"dtype {backbone.dtype}, {len(texts)} documents, {tokens:,} tokens (max_length {args.max_length}), "
          f"padding {padded / tokens - 1:.1%}, token budget {extractor.token_budget}")
    print(f"{'':30} {'docs/s':>10} {'tokens/s':>12} {'vs bare':>8}")
    for name, t in rows:
        print(f"{name:30} {len(texts) / t:>10,.1f} {tokens / t:>12,.0f} {t_bare / t:>8.2f}")
    print(f"tokenizing (not in the rows above): {tokens / t_tok:,.0f} tokens/s")
    for dt in others:
        print(f"nagindex {dt} / {dtype_name(backbone.dtype)}: {t_nag / best[f'nagindex (fwd_up, {dt})']:.2f}x the tokens/s")
    if args.reference:
        print(f"nagindex / reference-style: {best['reference-style'] / t_nag:.2f}x")
    if args.check_fp32:
        print(f"layer sets equal to CPU float32 (first 1000 documents): {agreement(extractor, args, texts):.2%}")
    if args.peak_tflops:
        flops = 2 * params * tokens / t_nag
        print(f"model FLOPs (2 x non-embedding parameters per token): {flops / 1e9:,.1f} GFLOP/s = {flops / (args.peak_tflops * 1e12):.1%} of {args.peak_tflops} TFLOP/s peak")


if __name__ == "__main__":
    main()
