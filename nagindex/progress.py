"""Naming the long steps of a command as they run, so that none of them is silent.

Loading and hashing a backbone, joining parts or training FAISS can each take
minutes on a large build; a line when a step starts and one when it ends (on
stderr, beside the progress bar) tell the user what is happening, and ``-v``
logs the same steps with their times.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time

from tqdm.auto import tqdm

log = logging.getLogger("nagindex")


@contextlib.contextmanager
def phase(what: str, show: bool = True):
    """Announce ``what`` on stderr (when ``show``) and in the log, then its duration."""
    log.info("%s …", what)
    if show:
        tqdm.write(f"{what} …", file=sys.stderr)
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    log.info("%s: done in %.1fs", what, seconds)
    if show:
        tqdm.write(f"{what}: done in {seconds:.1f}s", file=sys.stderr)
