"""Tune schedules: successive halving over stacked copies (proposals from Optuna), then a confirmation with compare.

Layer: above :mod:`lightning_lrsched.compare` (it imports compare; compare never imports it). The
names below are imported when first used.
"""

from __future__ import annotations

from lightning_lrsched.lazy import callable_package, lazy_exports

_EXPORTS = {
    "Tuning": "lightning_lrsched.tune.api",
    "tune": "lightning_lrsched.tune.api",
    "SearchSpace": "lightning_lrsched.tune.space",
    "TrialResult": "lightning_lrsched.tune.search",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
# `lightning_lrsched.tune` is this package once a submodule is imported: calling it calls the function.
callable_package(__name__, "tune", "lightning_lrsched.tune.api")
