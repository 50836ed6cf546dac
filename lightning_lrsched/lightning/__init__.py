"""The Lightning layer: everything ``schedules/`` needs from a ``Trainer``, and nothing else.

``schedules/`` is pure math and torch; it takes :class:`~lightning_lrsched.schedules.run.RunPlan`
values, never a Trainer. This layer reads the plan from a Trainer (:func:`plan_from_trainer`),
builds Lightning's scheduler dict (:func:`lightning_config`, :func:`groups_lightning_config`,
:func:`scheduler_config`), and feeds ``plateau`` schedules the monitored metric at each validation
end, averaged across processes (:class:`PlateauDriver`, :func:`rank_means`). ``models/``,
``callbacks/`` and ``compare/`` sit above it.
"""

from lightning_lrsched.lightning.config import groups_lightning_config, lightning_config, scheduler_config
from lightning_lrsched.lightning.plateau_driver import PlateauDriver, local_value, logged_keys, rank_means
from lightning_lrsched.lightning.run_plan import plan_from_trainer

__all__ = [
    "PlateauDriver",
    "groups_lightning_config",
    "lightning_config",
    "local_value",
    "logged_keys",
    "plan_from_trainer",
    "rank_means",
    "scheduler_config",
]
