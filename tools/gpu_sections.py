"""The four measurements of ``tools/gpu_check.py``, one function a section.

Each section takes the run's :class:`Sizes`, the device and a ``keep``
function that it calls with a key and a result as soon as that result is
measured: a section stopped by its time budget still leaves what it had. A
section returns ``None`` when it ran, or the reason it could not run here.
The GPU side of each comparison runs on ``device`` whatever it is, so
``--device cpu`` exercises the same code against the CPU.
"""
from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tools.bench_extract import documents, random_backbone, timed

Keep = Callable[[str, object], None]

#: The extraction benchmark's architectures (``tools.bench_extract.CONFIGS``).
CONFIGS = ("qwen3-0.6b", "qwen3-1.7b")
#: The same kinds of model at a few thousand parameters a layer, for ``--tiny``.
TINY_ARCH = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16)


@dataclass(frozen=True)
class Sizes:
    """How much each section measures: the real sizes, or ``--tiny``'s seconds-long ones."""

    docs: int = 2000                       # extraction: demo documents timed
    token_budget: int | None = None        # extraction: the extractor's default for the device
    arch: dict = field(default_factory=dict)   # extraction: sizes replacing the architectures'
    rounds: int = 2                        # extraction: timed passes, the best counts
    compile_backend: str = "inductor"
    vectors: int = 100_000                 # faiss: database vectors
    dim: int = 2048                        # faiss: the sketch's default dimensions
    queries: int = 256
    k: int = 100
    nlist: int = 256                       # faiss: lists of the IVF index
    scored_docs: int = 1_000_000           # scoring: synthetic documents
    targets: int = 8
    chunk: int = 65536

    @classmethod
    def tiny(cls) -> Sizes:
        # eager: dynamo traces the same graphs (hooks, guards, breaks) without inductor's minutes of C++ builds
        return cls(docs=24, token_budget=1024, arch=TINY_ARCH, rounds=1, compile_backend="eager", vectors=2000, dim=64,
                   queries=16, k=10, nlist=16, scored_docs=3000, targets=3, chunk=1024)


def non_embedding_parameters(backbone) -> int:
    return sum(p.numel() for n, p in backbone.body.named_parameters() if "embed" not in n)


def layer_sets_equal(a: np.ndarray, b: np.ndarray) -> float:
    """Share of (document, layer) top-K lists of ``a`` and ``b`` (``[n, L, K]``) equal as sets."""
    return float((np.sort(a, axis=-1) == np.sort(b, axis=-1)).all(-1).mean())


def graphs_compiled() -> int:
    """Graphs torch.compile has made in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- 1. extraction --------------------------------------------------------------------

def extraction(sizes: Sizes, device: str, peak_tflops: float | None, keep: Keep, **_) -> None:
    """bf16 tokens/s and MFU of each architecture: padded batches, packed rows, packed rows compiled.

    MFU counts ``2 x non-embedding parameters`` FLOPs per token against the card's
    bf16 dense peak. Compiling is done last, on each decoder layer (the hooks stay
    on its linear modules), and its codes are checked against the eager ones.
    """
    from nagindex.extract import ExtractSettings, Extractor

    texts = documents(sizes.docs)
    for name in CONFIGS:
        backbone = random_backbone(name, device, "bfloat16", **sizes.arch)
        params = non_embedding_parameters(backbone)
        eager = None
        for label, packing, compiled in (("padded", False, False), ("packed", True, False), ("packed, compiled", True, True)):
            extractor = Extractor(backbone, ExtractSettings(max_length=120), sizes.token_budget, packing=packing)
            ids, _ = extractor.tokenize(texts)
            tokens = sum(len(i) for i in ids)
            before = graphs_compiled()
            if compiled:
                torch._dynamo.reset()       # each model compiled afresh, not within what is left of the recompile limit
                for layer in backbone.layers:
                    layer.compile(backend=sizes.compile_backend, dynamic=True)
            out = {}
            first = timed(lambda: out.update(extractor.extract_ids(ids)[0]), backbone.device)    # warm-up; compiles
            graphs = graphs_compiled()
            seconds = min(timed(lambda: extractor.extract_ids(ids), backbone.device) for _ in range(sizes.rounds))
            row = {"config": name, "layout": label, "compile": sizes.compile_backend if compiled else None,
                   "parameters": params, "documents": len(texts), "tokens": tokens, "seconds": seconds,
                   "first_pass_s": first, "tokens_per_s": tokens / seconds,
                   "mfu": 2 * params * tokens / seconds / (peak_tflops * 1e12) if peak_tflops else None}
            if label == "packed":
                eager = out["fwd_up"]
            elif compiled:
                row["layer_sets_equal_eager"] = layer_sets_equal(out["fwd_up"], eager)
                row["graphs_compiled"] = graphs - before
                row["graphs_compiled_while_timed"] = graphs_compiled() - graphs    # 0 unless batches recompile
            keep(f"{name} {label}", row)
        del backbone, extractor
        release(torch.device(device))


# -- 2. parity ------------------------------------------------------------------------

def parity(sizes: Sizes, device: str, parity_dir: Path | None, keep: Keep, **_) -> str | None:
    """The default backbone in float32 on the device against the reference: features and ranking;
    then bfloat16's layer sets against float32's."""
    import pyarrow.parquet as pq

    from nagindex.backbone import load_backbone
    from nagindex.extract import ExtractSettings, Extractor
    from nagindex.neurons import NEURON_TYPES

    if parity_dir is None:
        return "the parity fixture was not found (give --parity DIR; see docs/scale.md)"
    settings = ExtractSettings(NEURON_TYPES)
    docs = {name: pq.read_table(parity_dir / f"{name}.parquet").to_pylist() for name in ("pool", "target")}
    texts = [d["doc"] for name in ("pool", "target") for d in docs[name]]

    def extract(on: str, dtype: str):
        return Extractor(load_backbone(None, on, dtype), settings).extract(texts)

    here = extract(device, "float32")
    reference = reference_codes(parity_dir, docs)
    n_pool = len(docs["pool"])
    keep("float32", {
        "fwd_up_codes_identical": bool(np.array_equal(here.codes["fwd_up"], reference["fwd_up"])),
        "layer_sets_equal_reference": {t: layer_sets_equal(here.codes[t], reference[t]) for t in NEURON_TYPES},
        **ranking_against(parity_dir, docs, here.codes["fwd_up"][:n_pool], here.codes["fwd_up"][n_pool:]),
    })
    cpu = here if torch.device(device).type == "cpu" else extract("cpu", "float32")   # on a CPU: itself
    keep("float32 vs cpu", {"impacts_max_abs_diff": {t: float(np.abs(here.impacts[t] - cpu.impacts[t]).max())
                                                     for t in NEURON_TYPES},
                            "codes_identical": all(np.array_equal(here.codes[t], cpu.codes[t]) for t in NEURON_TYPES)})
    half = extract(device, "bfloat16")
    keep("bfloat16", {"layer_sets_equal_float32": {t: layer_sets_equal(half.codes[t], here.codes[t])
                                                   for t in NEURON_TYPES}})
    return None


def reference_codes(parity_dir: Path, docs: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """The fixture's codes ``[n, 30, 20]`` per type, pool then targets, in the parquet files' order."""
    from nagindex.neurons import NEURON_TYPES

    out = {t: [] for t in NEURON_TYPES}
    for name in ("pool", "target"):
        by_id = {r["docid"]: r for r in map(json.loads, (parity_dir / f"{name}_features.jsonl").read_text().splitlines())}
        for d in docs[name]:
            for t in NEURON_TYPES:
                out[t].append(np.reshape(by_id[d["docid"]][f"{t}_feature"]["layer_topk_value_index"], (30, 20)))
    return {t: np.stack(v) for t, v in out.items()}


def ranking_against(parity_dir: Path, docs: dict[str, list[dict]], pool: np.ndarray, target: np.ndarray) -> dict:
    """The pool ranked against the whole target set (paper weighting, fwd_up, K = 20), as the
    fixture's ranking was made: is the order the same, and how far apart are the distances."""
    from query.budget import Budget
    from query.profile import ScoreSpec, build_profiles
    from query.select import pick

    ids = np.array([d["docid"] for d in docs["pool"]])
    profiles = build_profiles({"targets": target}, 1536, pool.shape[1], pool.shape[2], ScoreSpec())
    distance = 1.0 - profiles.score(pool)[:, 0]
    reference = json.loads((parity_dir / "ranking_fwd_up_k20.json").read_text())
    chosen = pick(distance, lambda rows: ids[rows], np.ones(len(ids), np.int64), Budget(documents=len(reference)))
    return {"ranking_identical": [r["docid"] for r in reference] == ids[chosen.rows].tolist(),
            "distance_max_abs_diff": float(np.abs(chosen.distance - [r["nag_distance"] for r in reference]).max())}


# -- 3. FAISS -------------------------------------------------------------------------

def faiss_search(sizes: Sizes, device: str, keep: Keep, **_) -> str | None:
    """Flat and IVF indexes built and searched on the GPUs against FAISS on the CPU, same vectors."""
    import faiss

    from nagindex.faiss_index import clustering_on_gpus, gpus, ivf_of, set_nprobe, to_gpus

    on_gpu = torch.device(device).type == "cuda"
    if on_gpu and not gpus():
        return f"faiss {faiss.__version__} here has no GPU support (faiss-gpu is not the module imported)"
    base, queries = clustered_vectors(sizes)
    nprobe = max(1, sizes.nlist // 16)
    for spec in ("Flat", f"IVF{sizes.nlist},Flat"):
        build_s, search_s, found = {}, {}, {}
        for side in ("cpu", "device"):
            gpu = side == "device" and on_gpu
            index = faiss.index_factory(sizes.dim, spec, faiss.METRIC_INNER_PRODUCT)
            t = time.perf_counter()
            with clustering_on_gpus(ivf_of(index), enabled=gpu):
                index.train(base)
            index.add(base)
            search = to_gpus(index) if gpu else index                 # the copy is part of a GPU build
            build_s[side] = time.perf_counter() - t
            if search is None:
                raise RuntimeError(f"FAISS could not copy a {spec} index of {sizes.vectors:,} vectors to the GPUs")
            if ivf_of(index) is not None and gpu:
                set_nprobe(search, nprobe)
            elif ivf_of(index) is not None:
                ivf_of(index).nprobe = nprobe
            search.search(queries[:1], sizes.k)                     # warm-up
            t = time.perf_counter()
            _, found[side] = search.search(queries, sizes.k)
            search_s[side] = time.perf_counter() - t
        recall = np.mean([len(np.intersect1d(a, b)) / sizes.k for a, b in zip(found["device"], found["cpu"])])
        keep(spec, {"vectors": sizes.vectors, "dim": sizes.dim, "queries": sizes.queries, "k": sizes.k,
                    "nprobe": nprobe if spec != "Flat" else None, "gpus": gpus() if on_gpu else 0,
                    "recall_at_k_vs_cpu": float(recall), "build_s": build_s, "search_s": search_s,
                    "search_speedup": search_s["cpu"] / search_s["device"],
                    "build_speedup": build_s["cpu"] / build_s["device"]})
    return None


def clustered_vectors(sizes: Sizes, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``nlist`` random centres (an IVF has lists to find), and queries drawn alike."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((sizes.nlist, sizes.dim), dtype=np.float32)

    def draw(n):
        x = centres[rng.integers(0, sizes.nlist, n)] + 0.5 * rng.standard_normal((n, sizes.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(sizes.vectors), draw(sizes.queries)


# -- 4. exact scoring -----------------------------------------------------------------

def scoring(sizes: Sizes, device: str, keep: Keep, **_) -> None:
    """``query.scoring_torch`` on the device against the CPU scan, same synthetic codes and targets."""
    from nagindex.synthetic import Pool
    from query.budget import Budget
    from query.profile import ScoreSpec, build_profiles
    from query.scoring import score_stream
    from query.scoring_torch import score_stream_torch
    from query.select import pick

    pool = Pool.make(0)
    codes = pool.codes(0, sizes.scored_docs)
    groups = {f"topic-{t}": pool.codes((1 << 40) + t * 64, 64, topic=t) for t in range(sizes.targets)}
    profiles = build_profiles(groups, pool.neurons, codes.shape[1], pool.top_k, ScoreSpec())
    n = len(codes)

    def chunks():
        return ((first, codes[first:first + sizes.chunk]) for first in range(0, n, sizes.chunk))

    scans = {"cpu": lambda: score_stream(chunks(), n, profiles.table, profiles.layers, profiles.top_k),
             "device": lambda: score_stream_torch(chunks(), n, profiles.table, profiles.layers, profiles.top_k, device)}
    sums, seconds = {}, {}
    for side, scan in scans.items():
        scan()                                                       # compiles the kernels, warms the device
        t = time.perf_counter()
        sums[side] = scan()
        seconds[side] = time.perf_counter() - t
    k = min(1000, n)
    rows = np.arange(n)
    same_ranking = all(np.array_equal(*(pick(1.0 - profiles.similarity(sums[side])[:, m], lambda r: rows[r],
                                             np.ones(n, np.int64), Budget(documents=k)).rows for side in scans))
                       for m in range(len(profiles.names)))
    keep("scan", {"documents": n, "targets": len(profiles.names), "k": k,
                  "scores_identical": bool(np.array_equal(sums["cpu"], sums["device"])),
                  "scores_max_abs_diff": float(np.abs(sums["cpu"] - sums["device"]).max()),
                  "ranking_identical": same_ranking,
                  "seconds": seconds, "docs_per_s": {s: n / t for s, t in seconds.items()},
                  "speedup": seconds["cpu"] / seconds["device"]})
