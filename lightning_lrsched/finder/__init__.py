"""The LR finder: an exponential range test that restores the model, with several suggestion rules.

:func:`find_lr` runs the test on a real Trainer and returns an :class:`LRFinderResult` (the curve,
one suggestion per rule, a figure, and :meth:`LRFinderResult.apply` to put a suggestion into a
model's schedule). ``lrsched find`` (:func:`find_command`) does the same from a ``lrsched fit`` config.
"""

from lightning_lrsched.finder.peak import peak_key, with_peak_lr
from lightning_lrsched.finder.rules import RULES
from lightning_lrsched.finder.sweep import DEFAULT_RULE, LRFinderResult, RangeTest, find_lr

__all__ = ["DEFAULT_RULE", "RULES", "LRFinderResult", "RangeTest", "find_lr", "peak_key", "with_peak_lr"]
