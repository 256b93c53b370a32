"""What an index holds, and what each document costs on disk."""
from __future__ import annotations

from .index import Index
from .store import SETS
from .template import READY


def describe(idx: Index) -> dict:
    sizes = {"codes": 0, "impacts": 0, "df": 0, "metadata": 0, "vectors": 0, "terms": 0}
    total = 0
    for shard in idx.shards:
        for kind, size in shard.store.stored_bytes().items():
            kind = "codes" if kind == "sets" else kind
            sizes[kind if kind in sizes else "metadata"] += size
        for kind, path in (("vectors", shard.dir.vectors), ("terms", shard.dir.terms)):
            if path.exists():
                sizes[kind] += path.stat().st_size
        total += sum(f["bytes"] for f in shard.meta["stored"].values())
    n = max(idx.documents, 1)
    tokens = int(idx.manifest["tokens"])
    b = idx.backbone
    s = idx.settings
    per_doc = {k: v / n for k, v in sizes.items()}
    lines = [
        ("index", str(idx.path)),
        ("backbone", f"{b['name']} ({b['architecture']}, sha256 {b['sha256'][:16]}…)"),
        ("neuron types", ", ".join(f"{t} (N={idx.neurons[t]})" for t in idx.neuron_types)),
        ("layers x K", f"{idx.num_layers} x {s['top_k']}, " + ("each layer's K kept as a set (every query uses all K)"
                                                                if idx.code_layout == SETS else "in impact order")),
        ("max length", f"{s['max_length']} tokens"),
        ("vectors", _vectors(idx.manifest["vectors"])),
        ("record text", _record_text(idx)),
        ("kept fields", ", ".join(idx.kept_fields) or "none"),
        ("term statistics", "bm25s tokens, English stopwords (--weighting bm25)" if idx.manifest.get("terms")
         else "none (build with --terms for --weighting bm25)"),
        ("shards", str(len(idx.shards))),
        ("documents", f"{idx.documents:,}"),
        ("tokens", f"{tokens:,} ({tokens / n:,.1f} per document)"),
        ("size on disk", _human(total)),
        ("bytes/document", f"{total / n:,.0f} (codes {per_doc['codes']:,.0f}, vectors {per_doc['vectors']:,.0f}, "
                           f"metadata {per_doc['metadata']:,.0f}" + (f", impacts {per_doc['impacts']:,.0f}" if sizes["impacts"] else "")
                           + (f", terms {per_doc['terms']:,.0f}" if sizes["terms"] else "")
                           + f"; pool statistics {_human(sizes['df'])} in all)"),
    ]
    return {"manifest": idx.manifest, "bytes": {**sizes, "total": total}, "bytes_per_document": per_doc, "lines": lines}


def _record_text(idx: Index) -> str:
    """Where the documents' texts come from: a field, or a template (by its ready name where it has one)."""
    source = idx.manifest.get("template")
    if source is None:
        return "field " + ", ".join(sorted({s.meta.get("text_field", "text") for s in idx.shards}))
    name = next((n for n, ready in READY.items() if ready == source), None)
    return f"template {name}" if name else f"template {source!r}"


def _vectors(vectors: dict | None) -> str:
    if vectors is None:
        return "none: exact search only (--search approx needs vectors)"
    return f"FAISS {vectors['faiss']} over {vectors['sketch']['dim']}-d sketches"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024
    return ""
