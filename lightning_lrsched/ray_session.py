"""Ray for ``compare`` and ``tune``: whether it is installed, and a local session that keeps the terminal ours.

Ray Tune's default output engine prints an experiment table, the results folder and a TensorBoard
hint even at ``verbose=0`` (``TuneTerminalReporter.experiment_started``), and ``ray.init`` logs the
start of its local instance at INFO: lines in the middle of our progress bar that say nothing the
report does not. Inside :func:`ray_session` Tune uses its legacy engine (``RAY_AIR_NEW_OUTPUT=0``,
silent at ``verbose=0``) and Ray logs warnings only; the variable is restored on the way out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_OUTPUT_ENGINE = "RAY_AIR_NEW_OUTPUT"


def ray_available(*modules: str) -> str | None:
    """Why Ray Tune (and ``modules``, e.g. ``"ray.tune.search.optuna"``) cannot be used here, or ``None``."""
    import importlib

    try:
        for name in ("ray", "ray.tune", *modules):
            importlib.import_module(name)
    except ImportError:
        return "Ray Tune is not installed: pip install 'lightning-lrsched[ray]'"
    return None


@contextmanager
def ray_session(**init: Any) -> Iterator[None]:
    """A Ray session for the block: started here (``ray.init(**init)``) unless one runs, shut down if started here.

    Tune's output is silent at ``verbose=0`` inside the block, and Ray logs warnings and errors only.
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **init)
    before = os.environ.get(_OUTPUT_ENGINE)
    os.environ[_OUTPUT_ENGINE] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_OUTPUT_ENGINE, None)
        else:
            os.environ[_OUTPUT_ENGINE] = before
        if started_here:
            ray.shutdown()
