"""``info`` and ``verify``: the commands that tell what an index holds and whether it is whole."""
from __future__ import annotations

import json
from pathlib import Path

import click
import cloup

from ..index import default_index_path
from . import options


@cloup.command("info")
@click.argument("index", required=False)
@options.as_json("the manifest and sizes")
@options.verbosity
def info_command(index, as_json):
    """Show what an index holds: backbone, settings, documents, tokens, size on disk."""
    from ..index import Index
    from ..info import describe

    idx = Index(index or default_index_path())
    facts = describe(idx)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key, value in facts["lines"]:
        click.echo(f"{key:<18} {value}")


@cloup.command("verify")
@click.argument("index", type=click.Path(path_type=Path), required=False)
@options.verbosity
def verify_command(index):
    """Read every file of an index and name whatever is damaged (exit 1 if anything is).

    Checks each file's sha256 against the one recorded at build time, every
    dataset of every code store, and every FAISS file; a query checks only
    what it reads.
    """
    from ..verify import verify

    report = verify(index or default_index_path())
    for problem in report.problems:
        click.echo(problem, err=True)
    if not report.ok:
        raise click.ClickException(f"{report.index}: {len(report.problems)} damaged "
                                   f"{'thing' if len(report.problems) == 1 else 'things'} found")
    click.echo(f"{report.index}: {report.shards} shards, {report.documents:,} documents: every file checked, "
               "nothing damaged", err=True)


