"""The options several commands share, declared once so that each means the same wherever it appears."""
from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator

import click

from ..cluster import ENGINES
from ..errors import NagindexError
from ..index import DEFAULT_NAME, ENV_VAR
from ..settings import SELECTION_WEIGHTINGS

INDEX_HELP = f"Index directory [default: ${ENV_VAR}, else ./{DEFAULT_NAME}]."
READ_INDEX_HELP = INDEX_HELP[:-1] + "; a URL (s3://...) is read through a local cache copy."

#: ``-i/--index`` of the commands that read an index: a local path or a URL.
read_index = click.option("-i", "--index", default=None, help=READ_INDEX_HELP)


def as_json(what: str):
    """``--json``: print ``what`` as JSON instead of lines for a reader."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


@contextlib.contextmanager
def told(quiet: bool, verbose: bool) -> Iterator[None]:
    """Progress shown unless ``quiet`` (or quiet already); with ``verbose``, each step logged and timed.

    A scope, not a setting: what was shown and logged before comes back after,
    even when the command line fails to parse.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..progress import showing, shown

    with contextlib.ExitStack() as stack:
        if verbose:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
            root = logging.getLogger()
            stack.callback(root.setLevel, root.level)
            root.setLevel(logging.INFO)
            # Log lines go above a progress bar, not through it.
            stack.enter_context(logging_redirect_tqdm())
        stack.enter_context(showing(shown() and not quiet))
        yield


def verbosity_flags(f):
    """``-q/--quiet`` and ``-v/--verbose`` as parameters ``quiet`` and ``verbose`` of ``f``."""
    f = click.option("-q", "--quiet", is_flag=True,
                     help="No progress lines or bars on stderr (the results are still told).")(f)
    return click.option("-v", "--verbose", is_flag=True,
                        help="Log what happens, step by step, with the time of each step.")(f)


def verbosity(f):
    """``-q`` and ``-v`` of a command, the same as the group's: they hold while the command runs."""
    @functools.wraps(f)
    def run(*args, quiet: bool, verbose: bool, **kwargs):
        with told(quiet, verbose):
            return f(*args, **kwargs)

    return verbosity_flags(run)


def shard(ctx, param, value):
    """``--shard i/N`` as the pair ``(i, N)``."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or int(m[1]) >= int(m[2]):
        raise click.BadParameter(f"{value!r}: write i/N with 0 <= i < N, e.g. 3/8")
    return int(m[1]), int(m[2])


_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def byte_size(ctx, param, value):
    """A size such as ``16MB`` in bytes."""
    m = re.fullmatch(r"(\d+)\s*([KMG]?B?)", str(value).strip().upper())
    if not m or int(m[1]) == 0:
        raise click.BadParameter(f"{value!r}: write a size such as 16MB, 512KB or 1GB")
    return int(m[1]) * _UNITS[m[2] if m[2] in _UNITS else m[2] + "B"]


def layers(help: str = "Layers to score: all, last, 0-14, 3,7,9 ..."):
    """``--layers``: which of the index's layers count."""
    return click.option("--layers", default="all", show_default=True, help=help)


def top_k(help: str = "Use only the first K' <= K neurons of each layer (an index built with --codes ordered)."):
    """``--top-k``: a prefix of each layer's stored neurons, where they are stored by descending impact
    (docs/design.md §2.1)."""
    return click.option("--top-k", type=click.IntRange(min=1), default=None, help=help)


#: ``--negatives``: the classifier's pool sample.
negatives = click.option("--negatives", type=click.IntRange(min=1), default=None,
                         help="classifier: pool documents sampled uniformly as negatives [default: 4096; "
                              "auto: at most 1024].")


def scoring(top_k_help: str = "Use only the first K' <= K neurons of each layer (an index built with --codes ordered)."):
    """The options that say how documents are scored, shared by the commands that score."""
    return (
        layers(),
        top_k(top_k_help),
        neuron_type,
        click.option("--power", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                     help="Raise profile weights to this power (renormalised)."),
        click.option("--weighting", type=click.Choice(SELECTION_WEIGHTINGS), default="auto", show_default=True,
                     help="paper: target frequency; idf: target frequency over pool frequency per neuron; "
                          "classifier: logistic regression of the target against a sample of the pool; "
                          "auto: per task, the one of these or of their pairwise fusions that ranks held-out "
                          "target examples highest among a pool sample (paper under 8 examples)."),
        negatives,
        click.option("--negatives-seed", type=int, default=0, show_default=True,
                     help="classifier and auto: seed of the pool sample (auto: and of its folds)."),
    )


#: ``--neuron-type`` of the commands that read one neuron type of an index.
neuron_type = click.option("--neuron-type", default=None,
                           help="Neuron type among those the index holds [default: the first].")


def template_option(what: str):
    """``--template``, compiled as the command line is read."""
    from ..template import READY

    return click.option("--template", default=None, metavar="SPEC", callback=_template,
                        help=f"{what}'s text made from its fields by a Jinja2 template: a ready one "
                             f"({', '.join(READY)}) or the template itself, e.g. "
                             "'{{question}} {{choices.text|join(\" \")}}'; instead of --text-field.")


def _template(ctx, param, value):
    """Compiled as the command line is read: a syntax error is reported before anything is loaded."""
    from ..template import Template

    return None if value is None else Template(value)


def text_source(text_field: str | None, template):
    """``--text-field`` and ``--template``, one of which says how a record reads as text."""
    if template is not None and text_field is not None:
        raise NagindexError("--text-field and --template both say where a record's text is: give one of them")
    return text_field or "text", template


def read_targets(targets, text_field: str | None, template, target_field: str, split: str | None,
                 split_option: str = "--split"):
    """The target examples of the files ``targets``, read as ``--text-field``/``--template`` and the option
    ``split_option`` (``split``) say."""
    from query import read_targets as read

    field, template = text_source(text_field, template)
    return read(list(targets), field, target_field, template=template, split=split, split_option=split_option)


TARGETS = (
    click.option("--text-field", default=None, help="Field holding the text of a target example [default: text]."),
    template_option("A target example"),
    click.option("--target-field", default="target", show_default=True, help="Field naming the task of a target example."),
    click.option("--split", default=None, metavar="NAME",
                 help="Read only this split of targets that hold several (test/, validation-*.parquet ...); "
                      "several without it are an error."),
    click.option("--device", default="auto", show_default=True, help="Device for the target examples' forward pass."),
    click.option("--model", default=None, metavar="PATH",
                 help="Where the index's backbone is now, if its weights moved (checked by their hash) "
                      "[default: where the build found them]."),
)


def engine(ray_does: str):
    """``--engine`` and ``--ray-address``; ``ray_does`` says what Ray runs for this command."""
    return (
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help=f"local: in this process; ray: {ray_does} (needs nagindex[ray])."),
        click.option("--ray-address", default=None, metavar="ADDRESS",
                     help="Ray cluster for --engine ray, e.g. 10.0.0.1:6379 [default: $RAY_ADDRESS, "
                          "else the cluster `ray start` began on this machine, else a new local one]."),
    )


def score_spec(idx, layers, top_k, neuron_type, power, weighting, negatives=None, seed=0):
    """The ScoreSpec the shared scoring options describe, checked against the index."""
    from query import ScoreSpec
    from query.profile import parse_layers

    sample = {} if negatives is None else {"negatives": negatives}
    return ScoreSpec(neuron_type=neuron_type or idx.neuron_types[0], layers=parse_layers(layers, idx.num_layers),
                     top_k=top_k, power=power, weighting=weighting, seed=seed, **sample)
