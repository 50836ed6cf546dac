"""Moved to :mod:`lightning_lrsched.lightning.plateau_driver`; this path keeps working."""

from lightning_lrsched.lightning.plateau_driver import PlateauDriver, local_value, logged_keys, rank_means

__all__ = ["PlateauDriver", "local_value", "logged_keys", "rank_means"]
