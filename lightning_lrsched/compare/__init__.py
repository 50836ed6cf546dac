"""Compare schedules side by side: schedules × device configs × seeds, a report, W&B runs.

The names below are imported when first used: a worker process (``python -m
lightning_lrsched.compare.worker``) and the standby worker that ``lrsched compare`` starts before it
imports torch (:mod:`.processes`) need none of them.
"""

from __future__ import annotations

from lightning_lrsched.lazy import callable_package, lazy_exports

_EXPORTS = {
    "Comparison": "lightning_lrsched.compare.api",
    "compare": "lightning_lrsched.compare.api",
    "RunSpec": "lightning_lrsched.compare.grid",
    "OutputLayout": "lightning_lrsched.compare.layout",
    "RunRecord": "lightning_lrsched.compare.record",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
# `lightning_lrsched.compare` is this package once a submodule is imported: calling it calls the function.
callable_package(__name__, "compare", "lightning_lrsched.compare.api")
