"""``query`` and ``profile``: the commands that rank the pool against target examples, once per task."""
from __future__ import annotations

import time

import click
import cloup

from ..errors import NagindexError
from ..index import default_index_path
from . import options


@cloup.command("query")
@click.argument("targets", nargs=-1, required=True)
@cloup.option_group(
    "How much to select (one of)",
    click.option("-k", "documents", default=None, metavar="DOCS",
                 help="Documents to select in all, split across the targets, e.g. 50000, 500K, 1M."),
    click.option("--tokens", default=None, metavar="N", help="Tokens to select in all (the backbone's tokens), e.g. 2B."),
    click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
                 help="Share of the pool's tokens to select (the paper's r_f, e.g. 0.2)."),
    click.option("--weight", "weights", multiple=True, metavar="TARGET=W",
                 help="Relative budget of a target (repeatable) [default: equal]."),
    click.option("--dedup", is_flag=True, help="Keep a document once even if several targets select it."),
)
@cloup.option_group(
    "Index and output",
    options.read_index,
    click.option("-o", "--output", default=None,
                 help="FILE.jsonl, .jsonl.gz, .jsonl.zst or .parquet, or DIR/ for a directory of shards with a "
                      "manifest; a local path or an fsspec URL (s3://…) [default: JSON lines to stdout]."),
    click.option("--format", "fmt", type=click.Choice(["jsonl", "jsonl.gz", "jsonl.zst", "parquet"]), default=None,
                 help="Format of a directory's shards [default: parquet]; a file's name says its own."),
    click.option("--shard-size", default=None, metavar="SIZE",
                 help="Size of each shard of -o DIR/ on disk, e.g. 500MB, 2GB [default: 500MB]."),
    click.option("--shuffle", is_flag=True, help="Write the rows in a random order (--seed), as training reads them."),
    click.option("--seed", default=0, show_default=True, help="Seed of --shuffle."),
    click.option("--with-text", is_flag=True, help="Include each document's text, fetched back from the corpus files."),
    click.option("--corpus-root", "corpus_roots", multiple=True, metavar="OLD=NEW",
                 help="The corpus indexed under OLD is now under NEW (repeatable); texts read from there are "
                      "checked as from the old place."),
    click.option("--with-fields", default=None, metavar="A,B|all",
                 help="Include these corpus fields (url, date, …; all: every field but text and id), fetched back "
                      "from the corpus files."),
)
@cloup.option_group("Scoring", *options.scoring())
@cloup.option_group(
    "Quality score",
    click.option("--quality-field", default=None,
                 help="Numeric corpus field combined with the distance (min-max normalised sum); read from the "
                      "index if the build kept it (--keep-field), else from every corpus record."),
    click.option("--invert-quality", is_flag=True, help="Lower quality values are better (e.g. perplexity)."),
)
@cloup.option_group(
    "Search",
    click.option("--search", type=click.Choice(["auto", "exact", "approx"]), default="auto", show_default=True,
                 help="exact: scan every code; approx: FAISS candidates re-scored exactly; auto: by k against the pool."),
    click.option("--oversample", type=click.IntRange(min=1), default=None,
                 help="approx: FAISS candidates per selected document, per target and shard [default: 10]."),
    click.option("--nprobe", type=click.IntRange(min=1), default=None,
                 help="approx over an IVF index: lists each search visits [default: a quarter, or enough for twice "
                      "the candidates]."),
    *options.engine("one Ray task per shard, merged exactly (the index must be on a file system all workers see)"),
)
@cloup.option_group("Targets", *options.TARGETS)
@options.verbosity
def query_command(targets, index, documents, tokens, fraction, output, fmt, shard_size, shuffle, seed, with_text,
                  with_fields, corpus_roots, dedup, weights, search, oversample, nprobe, layers, top_k, neuron_type,
                  power, weighting, negatives, negatives_seed, quality_field, invert_quality, text_field, template,
                  target_field, split, device, model, engine, ray_address):
    """Rank the index against TARGETS and write the selected documents.

    TARGETS are JSONL or Parquet files (or directories, globs) with one target
    example per record; records naming different tasks in --target-field are
    the multi-target case: each task gets an equal share of the budget.
    """
    from query import Budget, Selector
    from query.approx import DEFAULT_OVERSAMPLE, check_search
    from query.budget import parse_size
    from query.card import selection_card
    from query.output import destination

    from ..progress import phase

    if documents is tokens is fraction is None:
        raise NagindexError("say how much to select: -k DOCS, --tokens N or --fraction F")
    started = time.perf_counter()
    where = destination(output, fmt, shard_size)
    fields = _fields(with_fields)
    budget = Budget(documents=parse_size(documents, "-k") if documents else None,
                    tokens=parse_size(tokens, "--tokens") if tokens else None, fraction=fraction)
    parsed = options.read_targets(targets, text_field, template, target_field, split)
    selector = Selector(index or default_index_path(), device=device, model=model, engine=engine,
                        ray_address=ray_address, corpus_root=_roots(corpus_roots))
    spec = options.score_spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
    check_search(search, selector.index, spec.neuron_type, quality_field is not None)
    quality = selector.quality(quality_field) if quality_field else None
    result = selector.select(parsed, budget, spec, search=search, dedup=dedup, weights=_weights(weights),
                             quality=quality, invert_quality=invert_quality, with_text=with_text, with_fields=fields,
                             oversample=oversample or DEFAULT_OVERSAMPLE, nprobe=nprobe)
    # How the targets' texts were made: a data card must say what the selection was chosen for.
    target_text = {"template": template.source} if template is not None else {"field": text_field or "text"}
    card = selection_card(selector, result, parsed, spec, budget, target_files=list(targets), target_text=target_text,
                          search=search, dedup=dedup, weights=_weights(weights), quality_field=quality_field,
                          invert_quality=invert_quality, with_text=with_text, with_fields=fields) if where.directory else None
    with phase(f"writing {result.table.num_rows:,} rows to {where.url or 'stdout'}"):
        shards = where.write(result.table, shuffle=shuffle, seed=seed, manifest=card)
    if where.directory:
        click.echo(f"{where.url}: {len(shards)} {where.fmt} shards, {sum(s.bytes for s in shards):,} bytes", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _summary(selector.index, result.table, time.perf_counter() - started)
    for s in result.summary:
        span = f"distance {s['best']:.4f} .. {s['worst']:.4f}" if s["documents"] else "nothing selected"
        click.echo(f"{s['target']}: {s['documents']:,} documents, {s['tokens']:,} tokens, {span}", err=True)


def _roots(items) -> list[tuple[str, str]]:
    pairs = [item.partition("=") for item in items]
    for item, (old, eq, new) in zip(items, pairs):
        if not (old and eq and new):
            raise NagindexError(f"--corpus-root {item}: write OLD=NEW, the corpus's directory when indexed and now")
    return [(old, new) for old, _, new in pairs]


def _summary(index, table, seconds: float) -> None:
    """Pool, share selected, distance quantiles per target and time: enough to judge a selection at a glance."""
    import numpy as np

    tokens = int(table.column("tokens").to_numpy().sum()) if table.num_rows else 0
    pool_tokens = index.total_tokens
    click.echo(f"selected {table.num_rows:,} rows of a pool of {index.documents:,} documents "
               f"({table.num_rows / max(index.documents, 1):.1%} of documents, {tokens / max(pool_tokens, 1):.1%} "
               f"of {pool_tokens:,} tokens) in {seconds:.1f}s", err=True)
    targets = np.array(table.column("target").to_pylist(), dtype=object)
    distance = table.column("distance").to_numpy()
    for name in dict.fromkeys(targets.tolist()):
        q = np.quantile(distance[targets == name], [0, 0.25, 0.5, 0.75, 1])
        click.echo(f"  {name}: distance min {q[0]:.4f}, quartiles {q[1]:.4f} / {q[2]:.4f} / {q[3]:.4f}, "
                   f"max {q[4]:.4f}", err=True)


def _fields(spec: str | None) -> tuple[str, ...] | str:
    """``--with-fields``: ``all`` or a comma-separated list of corpus fields."""
    if spec is None:
        return ()
    if spec.strip() == "all":
        return "all"
    names = tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise NagindexError(f"--with-fields {spec!r}: name fields, comma separated, or all")
    return names


def _weights(items) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise NagindexError(f"--weight {item}: write TARGET=NUMBER") from None
        if not name or out[name] <= 0:
            raise NagindexError(f"--weight {item}: write TARGET=NUMBER with a positive number")
    return out


@cloup.command("profile")
@click.argument("targets", nargs=-1, required=True)
@options.read_index
@click.option("-o", "--output", required=True, help="The profiles file to write (.npz; a local path or an fsspec URL).")
@cloup.option_group("Scoring", *options.scoring())
@cloup.option_group("Targets", *options.TARGETS)
@options.verbosity
def profile_command(targets, index, output, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed,
                    text_field, template, target_field, split, device, model):
    """Save the profiles of TARGETS for scoring documents outside the index.

    The file holds each target's profile, the index's backbone identity and
    settings, and the quantiles of the pool's similarities to each target:
    what `nagindex.datatrove.NAGScorer` needs to rank documents in a
    datatrove pipeline as the index would.
    """
    from query import Selector
    from query.export import export_profiles

    if not output.lower().endswith(".npz"):
        raise NagindexError(f"-o {output}: profiles are written as one .npz file; name it PROFILES.npz")
    parsed = options.read_targets(targets, text_field, template, target_field, split)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = options.score_spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
    saved = export_profiles(selector, parsed, spec)
    saved.save(output)
    click.echo(f"{output}: {len(saved.names)} target profiles ({', '.join(saved.names)}) for backbone "
               f"{saved.backbone['name']}", err=True)

