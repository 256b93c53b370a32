"""How small an index's codes could be: the entropy of its neuron ids, from the pool statistics it keeps.

Each shard's ``df/<type>`` counts, per layer, the documents whose NAG holds each
neuron (docs/index-format.md); over the index that is the distribution of a
stored id in each layer. Its entropy is what an ideal code of each id, taken
alone, costs in bits, against the ``ceil(log2 N)`` of a fixed-width one and the
16 of today's uint16 codes. Per document, ``L K`` ids in impact order cost about
``L K H`` bits; as sets (the order forgotten, which K' < K needs) ``log2 K!``
bits a layer fewer. Ids within one document are not independent, so these are
estimates of what entropy coding would reach, not bounds.

    python -m tools.code_entropy my.index [--neuron-type fwd_up]
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from nagindex.index import Index


def entropy_bits(df: np.ndarray) -> np.ndarray:
    """Per layer, the entropy in bits of a stored id, from its ``[L, N]`` document counts."""
    p = df / np.maximum(df.sum(axis=1, keepdims=True), 1)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index")
    ap.add_argument("--neuron-type", default=None, help="[default: the index's first]")
    args = ap.parse_args()
    index = Index(args.index)
    neuron_type = args.neuron_type or index.neuron_types[0]
    df = index.slot_counts(neuron_type).astype(np.float64)
    layers, neurons = df.shape
    k = index.top_k
    h = entropy_bits(df)
    fixed = max(1, (neurons - 1).bit_length())
    order = math.log2(math.factorial(k))
    print(f"{index.documents:,} documents, {layers} layers, N = {neurons}, K = {k} ({neuron_type})")
    print(f"bits an id: entropy {h.mean():.2f} (layers {h.min():.2f} to {h.max():.2f}), fixed width {fixed}, "
          f"uniform {math.log2(neurons):.2f}, uint16 16")
    print(f"bytes a document of codes: uint16 {layers * k * 2:,}, fixed width {math.ceil(layers * k * fixed / 8):,}, "
          f"entropy-coded in impact order about {layers * k * h.mean() / 8:,.0f}, "
          f"as sets about {(layers * (k * h.mean() - order)) / 8:,.0f}")


if __name__ == "__main__":
    main()
