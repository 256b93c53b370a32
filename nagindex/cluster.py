"""Ray, for builds and queries spread over a cluster: an optional dependency.

Everything in nagindex runs without Ray; only ``--engine ray`` imports it, so a
missing install is reported as a one-line fix rather than an import failure.
"""
from __future__ import annotations

import contextlib
import logging

from .errors import NagindexError

ENGINES = ("local", "ray")


def check_engine(engine: str, ray_address: str | None) -> None:
    if engine not in ENGINES:
        raise NagindexError(f"--engine {engine}: choose from {', '.join(ENGINES)}")
    if ray_address and engine != "ray":
        raise NagindexError("--ray-address is for --engine ray")
    if engine == "ray":
        _ray()


def _ray():
    try:
        import ray
    except ImportError:
        raise NagindexError("--engine ray needs Ray: pip install 'nagindex[ray]'") from None
    return ray


def connect(address: str | None = None):
    """The ``ray`` module, connected to a cluster.

    Without an address Ray's own rules apply: ``$RAY_ADDRESS``, else the
    cluster that ``ray start`` began on this machine, else a new one inside
    this process. A session that is already open (a test, a notebook) is used
    as it is.
    """
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise NagindexError(f"{err}; is the cluster up (`ray status` on its head node), "
                                "and does this machine hold its token if it uses token authentication?") from None
    return ray


@contextlib.contextmanager
def worker_errors():
    """Report a user's mistake found on a worker (a bad record, a missing model) as if found here."""
    try:
        yield
    except Exception as err:
        # Ray wraps a worker's exception, sometimes twice, with the remote traceback in its message.
        found, cause = None, err
        while cause is not None:
            if isinstance(cause, NagindexError):
                found = cause
            cause = getattr(cause, "cause", None) or cause.__cause__
        if found is None or found is err:
            raise
        raise found.with_traceback(None) from None
