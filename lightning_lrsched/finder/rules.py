"""The LR range test's numbers: its LR sweep, its loss smoothing, and the rules that pick an LR from them.

No Lightning import: each rule takes the LRs of the test's steps and the smoothed loss at each
step and returns the LR it suggests. The fastai rules are ports of ``fastai.callback.schedule``
(``minimum``, ``steep``, ``valley``, ``slide``), run on fastai's window of the curve (the first tenth
of the planned steps and the last 5 recorded steps left out, and everything from the first
non-finite loss on); ``lightning`` is the installed Lightning's
``lightning.pytorch.tuner.lr_finder._LRFinder.suggestion`` with its defaults (``skip_begin=10``,
``skip_end=1``): the steepest descent per unit of LR since Lightning 2.5.3, per step before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import torch
from packaging.version import Version

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.validation import check_choice, check_int, check_positive, check_range

SLIDE_LR_DIFF = 15
"""fastai's ``slide`` compares the loss gradient at points this many steps apart."""
SLIDE_THRESHOLD = 0.005
"""fastai's ``slide`` stops where the two gradients differ by no more than this."""
LIGHTNING_SKIP_BEGIN, LIGHTNING_SKIP_END = 10, 1
"""Lightning's ``suggestion(skip_begin=10, skip_end=1)``: steps left out at either end."""
LIGHTNING_GRADIENT_PER_LR = Version(version("lightning")) >= Version("2.5.3")
"""Whether the installed Lightning's ``suggestion()`` takes the loss gradient per unit of LR (2.5.3 on,
Lightning PR #21055) rather than per step."""
MIN_STEPS = 25
"""The fewest steps for which every rule has points to work on (``slide`` needs 16 after fastai's trim)."""


def exponential_lrs(min_lr: float, max_lr: float, num_steps: int) -> np.ndarray:
    r"""The LR of each step of an exponential range test: ``min_lr`` at the first step, ``max_lr`` at the last.

    .. math:: \mathrm{lr}_i = \mathrm{min\_lr}\,(\mathrm{max\_lr}/\mathrm{min\_lr})^{i/(n-1)},\quad i = 0..n-1

    Example:
        >>> exponential_lrs(1e-3, 1e-1, 3).tolist()
        [0.001, 0.01, 0.1]
    """
    check_bounds(min_lr, max_lr)
    check_int("num_steps", num_steps, minimum=2)
    exponent = np.arange(num_steps) / (num_steps - 1)
    lrs = min_lr * (max_lr / min_lr) ** exponent
    lrs[-1] = max_lr  # exact, not off by a rounding error
    return lrs


def check_bounds(min_lr: float, max_lr: float) -> None:
    """Check ``0 < min_lr < max_lr``."""
    check_positive("min_lr", min_lr)
    check_positive("max_lr", max_lr)
    if min_lr >= max_lr:
        raise InvalidValue(f"`min_lr` must be below `max_lr`: got min_lr={min_lr}, max_lr={max_lr}")


def check_range_args(min_lr: float, max_lr: float, num_steps: int) -> None:
    """Check the sweep: ``0 < min_lr < max_lr`` and enough steps for every rule."""
    check_bounds(min_lr, max_lr)
    check_int("num_steps", num_steps, minimum=1)
    if num_steps < MIN_STEPS:
        raise InvalidValue(
            f"`num_steps` must be >= {MIN_STEPS}: got num_steps={num_steps}. The rules leave out the first tenth "
            f"and the last 5 steps, and `slide` compares gradients {SLIDE_LR_DIFF} steps apart"
        )


class Smoother:
    r"""The debiased exponential moving average of a loss, one value at a time (fastai's and Lightning's).

    .. math:: a_i = \beta a_{i-1} + (1-\beta)\,\ell_i,\quad a_{-1} = 0,\qquad s_i = a_i / (1-\beta^{i+1})

    A non-finite loss makes every later value non-finite (the rules stop there).

    Args:
        beta: the weight of the past, in [0, 1).
    """

    def __init__(self, beta: float = 0.98) -> None:
        self.beta = check_range("beta", beta, 0.0, 1.0)
        if self.beta == 1.0:
            raise InvalidValue(f"`beta` must be below 1 (1 would ignore every loss): got beta={beta}")
        self._average, self._count = 0.0, 0

    def update(self, loss: float) -> float:
        """Take the next loss and return the smoothed value after it."""
        self._average = self.beta * self._average + (1.0 - self.beta) * float(loss)
        self._count += 1
        return self._average / (1.0 - self.beta**self._count)


def smooth(losses: Sequence[float], beta: float = 0.98) -> np.ndarray:
    """Every value of :class:`Smoother` over ``losses``.

    Example:
        >>> smooth([1.0, 1.0, 4.0], beta=0.5).tolist()
        [1.0, 1.0, 2.7142857142857144]
    """
    smoother = Smoother(beta)
    return np.array([smoother.update(loss) for loss in losses], dtype=np.float64)


class TooFewPoints(InvalidValue):
    """A rule had too few finite points of the curve to work on."""


# -- fastai ------------------------------------------------------------------------------------------
def fastai_window(
    lrs: np.ndarray, losses: np.ndarray, num_steps: int, skipped: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The part of the curve fastai's ``lr_find`` suggests from.

    It leaves out the first ``num_steps // 10`` steps (``num_steps`` as planned, not as run) and the
    last 5 recorded, the ``skipped`` steps (no loss: ``training_step`` returned ``None``), and
    everything from the first non-finite loss on.
    """
    kept = np.ones(len(losses), dtype=bool)
    kept[list(skipped)] = False
    window = slice(num_steps // 10, -5)
    lrs, losses = lrs[window][kept[window]], losses[window][kept[window]]
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        lrs, losses = lrs[: bad[0]], losses[: bad[0]]
    return lrs, losses


def _need(rule: str, points: int, needed: int) -> None:
    if points < needed:
        raise TooFewPoints(f"`{rule}` needs {needed} points of the loss curve and got {points}")


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai ``minimum``: a tenth of the LR at which the smoothed loss was lowest.

    Example:
        >>> minimum(np.array([0.1, 1.0, 10.0]), np.array([2.0, 1.0, 3.0]))
        0.1
    """
    _need("minimum", len(losses), 1)
    return float(lrs[int(np.argmin(losses))]) / 10


def steep(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai ``steep``: the LR at which the loss falls fastest per unit of log LR (forward difference).

    Example:
        >>> steep(np.array([1.0, 2.0, 4.0, 8.0]), np.array([3.0, 2.9, 2.0, 1.9]))
        2.0
    """
    _need("steep", len(losses), 2)
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai ``valley``: two thirds of the way down the longest valley of the loss.

    The valley is the longest decreasing subsequence of the losses (``lds``, quadratic as in fastai,
    kept literal because its bookkeeping of where the valley starts is part of the rule); the
    suggestion is the point ``int(s) + int(s / 2)`` into it, ``s`` a third of its length. fastai's
    start index can be -1 when the valley begins at the first point, which would wrap around to the
    last LR; here it is clipped to the first.

    Example:
        >>> valley(np.array([1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3]), np.array([3.0, 3.0, 2.5, 2.0, 1.0, 0.5, 4.0]))
        0.01
    """
    _need("valley", len(losses), 2)
    values = [float(x) for x in losses]
    n = len(values)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if values[i] < values[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    index = max(0, max_start + int(sections) + int(sections / 2))
    return float(lrs[index])


def slide(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai ``slide``: walking down from the highest LR, the first LR where the loss stops changing slope.

    Compares the loss gradient at two points ``SLIDE_LR_DIFF`` steps apart, moving both one step to
    lower LRs while they differ by more than ``SLIDE_THRESHOLD``; the suggestion is the lower point.
    """
    _need("slide", len(losses), SLIDE_LR_DIFF + 1)
    gradient = np.gradient(losses)
    right = -1
    left = right - SLIDE_LR_DIFF
    local_min_lr = lrs[left]
    while left >= -len(losses) and abs(gradient[right] - gradient[left]) > SLIDE_THRESHOLD:
        local_min_lr = lrs[left]
        right -= 1
        left -= 1
    return float(local_min_lr)


# -- Lightning ---------------------------------------------------------------------------------------
def lightning(lrs: np.ndarray, losses: np.ndarray, per_lr: bool = LIGHTNING_GRADIENT_PER_LR) -> float:
    r"""Lightning's ``suggestion()``: the LR where the loss falls fastest, as the installed Lightning finds it.

    Leaves out the first ``LIGHTNING_SKIP_BEGIN`` and the last ``LIGHTNING_SKIP_END`` recorded steps
    and the non-finite losses, then takes the LR where the loss gradient is lowest: per unit of LR
    (``torch.gradient(losses, spacing=[lrs])``, second-order differences on the uneven LR grid) with
    ``per_lr`` (Lightning 2.5.3 on, the default when it is installed), else per step (unit spacing).
    Computed in float32 as Lightning's tensors are, so that near-ties break alike; the position among
    the finite losses maps back to the step (as Lightning does since 2.5.3; before, it indexed the LRs
    with that position, which points at the wrong step once a loss was dropped).

    Example:
        >>> lrs = np.geomspace(1e-6, 1.0, 20)
        >>> losses = np.r_[np.full(10, 2.0), [1.9, 1.8, 1.7, 1.6, 1.0, 0.4, 0.3, 0.3, 0.5, 0.9]]
        >>> [int(np.flatnonzero(lrs == lightning(lrs, losses, per_lr=p))[0]) for p in (True, False)]
        [10, 14]
    """
    steps = np.arange(len(losses))[LIGHTNING_SKIP_BEGIN:-LIGHTNING_SKIP_END]
    steps = steps[np.isfinite(losses[steps])]
    _need("lightning", len(steps), 2)
    values = torch.tensor(losses[steps].tolist())  # float32, from Python floats: Lightning's tensors
    spacing = [torch.tensor(lrs[steps].tolist())] if per_lr else 1.0
    gradients = torch.gradient(values, spacing=spacing)[0]
    return float(lrs[steps[int(torch.argmin(gradients))]])


@dataclass(frozen=True)
class Rule:
    """A suggestion rule: its name, where it comes from, and how it picks an LR."""

    name: str
    source: str
    pick: Callable[[np.ndarray, np.ndarray], float]
    fastai_window: bool


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("valley", "fastai valley (default since fastai 2.4)", valley, True),
        Rule("slide", "fastai slide", slide, True),
        Rule("steep", "fastai steep", steep, True),
        Rule("minimum", "fastai minimum / 10", minimum, True),
        Rule("lightning", f"Lightning {version('lightning')} suggestion()", lightning, False),
    )
}
"""Every rule by name, in the order tables and figures show them."""


def suggest(
    lrs: np.ndarray,
    smoothed: np.ndarray,
    num_steps: int,
    rules: Sequence[str] = tuple(RULES),
    skipped: Sequence[int] = (),
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each rule's suggestion from the range test's LRs and smoothed losses.

    Args:
        lrs: the LR of each recorded step.
        smoothed: the smoothed loss after each recorded step (see :func:`smooth`).
        num_steps: the steps the test planned (fastai's window is relative to it).
        rules: names from :data:`RULES`.
        skipped: the steps without a loss (``training_step`` returned ``None``; NaN in ``smoothed``).

    Returns:
        ``(suggestions, reasons)``: the LR per rule, ``None`` where the rule had too few points, and
        for those the reason.
    """
    for name in rules:
        check_choice("rules", name, tuple(RULES))
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    window = fastai_window(lrs, smoothed, num_steps, skipped)
    suggestions: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name in rules:
        rule = RULES[name]
        try:
            suggestions[name] = rule.pick(*window) if rule.fastai_window else rule.pick(lrs, smoothed)
        except TooFewPoints as error:
            suggestions[name], reasons[name] = None, str(error)
    return suggestions, reasons
