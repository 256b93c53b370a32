"""``explain``, ``ablate`` and ``proxy``: the commands that look inside a selection."""
from __future__ import annotations

import json
from pathlib import Path

import click
import cloup

from ..errors import NagindexError
from ..index import default_index_path
from ..settings import WEIGHTINGS
from . import options


@cloup.command("explain")
@click.argument("targets", nargs=-1, required=True)
@options.read_index
@cloup.option_group("Scoring", *options.scoring())
@click.option("--neurons", type=click.IntRange(min=0), default=10, show_default=True, help="Characteristic neurons listed per target.")
@click.option("--documents", type=click.IntRange(min=0), default=3, show_default=True, help="Pool documents shown from the top, the middle and the bottom of each ranking.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None, help="Also draw the profiles and score distributions into this PNG (needs matplotlib).")
@options.as_json("the explanation")
@cloup.option_group("Targets", *options.TARGETS)
@options.verbosity
def explain_command(targets, index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed, neurons,
                    documents, plot_path, as_json, text_field, template, target_field, split, device, model):
    """Show why TARGETS rank the pool as they do.

    Per target: how concentrated its profile is in each layer, its strongest
    and its most distinctive neurons, and pool documents from the top, the
    middle and the bottom of its ranking; between targets: how much their
    profiles overlap.
    """
    from query import Selector
    from ..analyses.explain import explain, format_text, plot

    parsed = options.read_targets(targets, text_field, template, target_field, split)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = options.score_spec(selector.index, layers, top_k, neuron_type, power, weighting, negatives, negatives_seed)
    result = explain(selector, parsed, spec,
                     neurons=neurons, documents=documents)
    click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False) if as_json else format_text(result))
    if plot_path:
        try:
            plot(result, plot_path)
        except ImportError:
            raise NagindexError("--plot needs matplotlib: pip install 'nagindex[explain]'") from None
        click.echo(f"plot written to {plot_path}", err=True)


@cloup.command("ablate")
@click.argument("targets", nargs=-1, required=True)
@options.read_index
@options.neuron_type
@options.layers("Layers whose neurons are zeroed: all, last, 0-14, ...")
@click.option("--per-layer", type=click.IntRange(min=1), default=None, help="Neurons zeroed in each layer [default: the index's K].")
@click.option("--weighting", type=click.Choice(WEIGHTINGS), default="paper", show_default=True,
              help="Which neurons: paper: the most frequent in the target's NAGs; idf: the most frequent relative "
                   "to the pool; classifier: the largest positive coefficients against a sample of the pool.")
@click.option("--seeds", type=click.IntRange(min=0), default=3, show_default=True, help="Draws of random neurons to compare with.")
@click.option("--control", "control", default=None, help="File of control texts (JSONL/Parquet/txt), read as the targets are, by --text-field or --template "
                   "[default: the pool documents least similar to each target].")
@click.option("--control-split", default=None, metavar="NAME",
              help="Read only this split of a --control that holds several, as --split does for the targets.")
@click.option("--control-docs", type=click.IntRange(min=1), default=32, show_default=True, help="Pool documents used as control text.")
@cloup.option_group("Targets", *options.TARGETS)
@options.verbosity
def ablate_command(targets, index, neuron_type, layers, per_layer, weighting, seeds, control, control_split, control_docs,
                   text_field, template, target_field, split, device, model):
    """Zero each target's NAG neurons and measure the loss.

    Per layer, the target's most frequent NAG neurons (with --weighting idf,
    its most characteristic ones) are zeroed, and the language-model loss is
    measured on held-out target examples and on control text, against zeroing
    as many random neurons. Every second example of each task is held out for
    the loss; the others choose the neurons.
    """
    from query import Selector

    from ..analyses.ablate import ablate, format_table

    if control_split and not control:
        raise click.UsageError("--control-split chooses a split of --control: give --control too")
    parsed = options.read_targets(targets, text_field, template, target_field, split)
    # Control text is read as the targets are: with their --text-field or --template.
    control_texts = (options.read_targets([control], text_field, template, target_field, control_split, "--control-split").texts
                     if control else None)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = options.score_spec(selector.index, layers, None, neuron_type, 1.0, weighting)
    results = ablate(selector, parsed, spec, per_layer=per_layer,
                     seeds=seeds, control_texts=control_texts, control_docs=control_docs)
    click.echo("\n\n".join(format_table(r) for r in results))


@cloup.command("proxy")
@click.argument("targets", nargs=-1, required=True)
@options.read_index
@click.option("--tokens", default="50K", show_default=True,
              help="Selected tokens each method trains on, per target; comma separated to sweep budgets (1K,3K,10K).")
@click.option("--methods", default="paper,classifier,idf,random,bm25,embedding", show_default=True,
              help="Comma separated: auto, paper, idf, classifier (NAG weightings), random, bm25, embedding, and "
                   "heldout (the held-out examples themselves: a ceiling).")
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
@options.layers("Layers the NAG weightings score.")
@options.top_k("NAG weightings: the first K' <= K neurons of each layer.")
@options.neuron_type
@options.negatives
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Also draw each method's gain over random with its interval into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@cloup.option_group("Targets", *options.TARGETS)
@options.verbosity
def proxy_command(targets, index, tokens, methods, seeds, proxy_model, embedding_model, learning_rate, epochs,
                  sequence_length, batch_size, warmup, layers, top_k, neuron_type, negatives, plot_path, as_json,
                  text_field, template, target_field, split, device, model):
    """Check which selection trains best: continued-pretrain a proxy model on each, measure held-out loss.

    Every second example of each task is held out; the others choose the
    data. Each method selects --tokens tokens per target; a fresh copy of the
    proxy is trained on them with one fixed recipe, once per seed, and the
    language-model loss on the held-out examples is compared with the loss
    before training and with random data of the same size.
    """
    from query import Selector
    from query.budget import parse_size

    from ..analyses.proxy import Recipe, format_tables, plot, proxy
    from ..progress import shown

    parsed = options.read_targets(targets, text_field, template, target_field, split)
    selector = Selector(index or default_index_path(), device=device, model=model)
    spec = options.score_spec(selector.index, layers, top_k, neuron_type, 1.0, "paper", negatives)
    recipe = Recipe(learning_rate, epochs, sequence_length, batch_size, warmup)
    budgets = [parse_size(b, "--tokens") for b in tokens.split(",") if b.strip()]
    results = proxy(selector, parsed, budgets, [m.strip() for m in methods.split(",") if m.strip()], seeds=seeds,
                    recipe=recipe, spec=spec, proxy_model=proxy_model, embedding_model=embedding_model,
                    device=device, progress=shown())
    click.echo(json.dumps([r.as_dict() for r in results], indent=2) if as_json else format_tables(results))
    if plot_path:
        plot(results, plot_path)
        click.echo(f"plot written to {plot_path}", err=True)

