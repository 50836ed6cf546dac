"""Stacked runs: K copies of a module trained side by side in one Lightning run, one schedule each.

- :mod:`.module`: :class:`StackedModule`, the copies' vectorised training and what can be stacked;
- :mod:`.copies`: one copy seen as a run of its own (its divergence detector, its logger);
- :mod:`.optimizer`: the copies' optimizer step made once on the stacked tensors;
- :mod:`.seeds`: copies of several seeds in one run, each on its own seed's batches.
"""

from lightning_lrsched.compare.stacked.copies import CopyCallbacks, CopyDetector, CopyLogger, copy_key
from lightning_lrsched.compare.stacked.module import StackedModule, stacked_metrics_of
from lightning_lrsched.compare.stacked.seeds import SeedStackedData, StackedLoader

__all__ = [
    "CopyCallbacks",
    "CopyDetector",
    "CopyLogger",
    "SeedStackedData",
    "StackedLoader",
    "StackedModule",
    "copy_key",
    "stacked_metrics_of",
]
