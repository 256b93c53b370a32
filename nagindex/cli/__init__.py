"""The ``nagindex`` command: build an index once, query it for every new task.

One module per group of commands (``build``, ``query``, ``inspect``,
``analyses``); the options they share are declared once in ``options``.
"""
from __future__ import annotations

import click
import cloup

from ..errors import NagindexError
from . import analyses, build, inspect, options, query


class _Group(cloup.Group):
    """The command group; a user's mistake (a NagindexError) in any command is one line, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NagindexError as e:
            raise click.ClickException(str(e)) from None


@cloup.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                                          "align_option_groups": False})
@click.version_option(package_name="nagindex")
@options.verbosity_flags
@click.pass_context
def main(ctx, quiet: bool, verbose: bool):
    """Select pretraining data for a target task with Neuron-Activated Graphs.

    \b
    nagindex build corpus/                  # once: run the backbone over the pool
    nagindex query targets.jsonl -k 1M      # per task: rank the pool, keep the best
    """
    ctx.with_resource(options.told(quiet, verbose))


main.section("Build an index, once per pool", build.build_command, build.merge_command, inspect.info_command,
             inspect.verify_command)
main.section("Select data, once per task", query.query_command, query.profile_command)
main.section("Look inside a selection", analyses.explain_command, analyses.ablate_command, analyses.proxy_command)
