"""The warmup family, ``wsd`` and ``inverse_sqrt`` against Hugging Face ``transformers.get_scheduler``.

Each case runs ``total`` (>= 1000) steps and a few past it, on two param groups with different LRs,
and compares ``get_last_lr()`` after every step to 1e-9 of the group's initial LR.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import get_scheduler

from lightning_lrsched.schedules import get_schedule

PAST = 7  # steps past `total`
SETTINGS = settings(max_examples=25, deadline=None)

# our name -> (HF name, {our argument: HF scheduler_specific_kwargs key})
HF_NAMES = {
    "warmup_constant": ("constant_with_warmup", {}),
    "warmup_linear": ("linear", {}),
    "warmup_cosine": ("cosine", {"num_cycles": "num_cycles"}),
    "warmup_cosine_min_lr": ("cosine_with_min_lr", {"num_cycles": "num_cycles", "min_lr_ratio": "min_lr_rate"}),
    "warmup_cosine_restarts": ("cosine_with_restarts", {"num_cycles": "num_cycles"}),
    "warmup_polynomial": ("polynomial", {"lr_end": "lr_end", "power": "power"}),
    "inverse_sqrt": ("inverse_sqrt", {"timescale": "timescale"}),
    "wsd": (
        "warmup_stable_decay",
        {
            "decay": "num_decay_steps",
            "warmup_type": "warmup_type",
            "decay_type": "decay_type",
            "min_lr_ratio": "min_lr_ratio",
            "num_cycles": "num_cycles",
        },
    ),
}


def _compare(make_optimizer, record, assert_tracks, case, warmup, total, **params):
    """Our ``case`` schedule vs HF's over ``total + PAST`` steps; returns our LRs (rows: steps)."""
    hf_name, keys = HF_NAMES[case]
    name = "warmup_cosine" if case == "warmup_cosine_min_lr" else case
    # These two have no end: `total` only sets how long the comparison runs.
    endless = name in ("inverse_sqrt", "warmup_constant")
    ours_params = {"warmup": warmup, **params} if endless else {"warmup": warmup, "total": total, **params}
    ours_opt, hf_opt = make_optimizer(), make_optimizer()
    steps = total + PAST
    ours, _ = record(ours_opt, get_schedule(name, **ours_params).build(ours_opt), steps)
    hf_scheduler = get_scheduler(
        hf_name,
        hf_opt,
        num_warmup_steps=warmup,
        num_training_steps=total,
        scheduler_specific_kwargs={keys[k]: v for k, v in params.items()},
    )
    ref, _ = record(hf_opt, hf_scheduler, steps)
    assert ours.shape == (steps + 1, 2)
    assert_tracks(ours, ref)
    return ours


TABLE = [
    pytest.param("warmup_constant", 100, 1000, {}, id="constant_with_warmup"),
    pytest.param("warmup_constant", 0, 1000, {}, id="constant_with_warmup-no-warmup"),
    pytest.param("warmup_linear", 100, 1000, {}, id="linear"),
    pytest.param("warmup_linear", 0, 1200, {}, id="linear-no-warmup"),
    pytest.param("warmup_linear", 999, 1000, {}, id="linear-warmup-almost-all"),
    pytest.param("warmup_cosine", 50, 1000, {}, id="cosine"),
    pytest.param("warmup_cosine", 10, 1100, {"num_cycles": 2.5}, id="cosine-2.5-cycles"),
    pytest.param("warmup_cosine_min_lr", 100, 1000, {"min_lr_ratio": 0.1}, id="cosine_with_min_lr"),
    pytest.param("warmup_cosine_min_lr", 0, 1000, {"min_lr_ratio": 0.5, "num_cycles": 1.0}, id="cosine_with_min_lr-1"),
    pytest.param("warmup_cosine_restarts", 100, 1000, {"num_cycles": 3}, id="cosine_with_restarts"),
    pytest.param("warmup_cosine_restarts", 7, 1013, {}, id="cosine_with_restarts-1"),
    pytest.param("warmup_polynomial", 100, 1000, {"lr_end": 1e-4, "power": 2.0}, id="polynomial"),
    pytest.param("warmup_polynomial", 0, 1000, {}, id="polynomial-defaults"),
    pytest.param("warmup_polynomial", 300, 1500, {"lr_end": 0.05, "power": 0.5}, id="polynomial-sqrt"),
    pytest.param("inverse_sqrt", 100, 1000, {}, id="inverse_sqrt"),
    pytest.param("inverse_sqrt", 100, 1000, {"timescale": 30}, id="inverse_sqrt-timescale"),
    pytest.param("inverse_sqrt", 0, 1000, {}, id="inverse_sqrt-no-warmup"),
    pytest.param("wsd", 100, 1000, {"decay": 200}, id="wsd"),
    pytest.param(
        "wsd",
        100,
        1000,
        {"decay": 300, "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1},
        id="wsd-cosine-1-sqrt",
    ),
    pytest.param(
        "wsd",
        50,
        1000,
        {"decay": 950, "warmup_type": "1-sqrt", "decay_type": "linear", "min_lr_ratio": 0.3},
        id="wsd-no-stable",
    ),
    pytest.param("wsd", 0, 1000, {"decay": 400, "num_cycles": 1.5, "min_lr_ratio": 0.2}, id="wsd-cycles"),
    pytest.param("wsd", 200, 1200, {"decay": 0}, id="wsd-no-decay"),
]


@pytest.mark.parametrize(("case", "warmup", "total", "params"), TABLE)
def test_matches_hugging_face(make_optimizer, record, assert_tracks, case, warmup, total, params):
    ours = _compare(make_optimizer, record, assert_tracks, case, warmup, total, **params)
    # The warmup really ramps (a constant schedule matching a constant one would prove little).
    if warmup > 1:
        assert ours[1, 0] < ours[warmup, 0]


# -- Hypothesis-drawn arguments -------------------------------------------------------------------
@st.composite
def phases(draw, min_total=1000, max_total=1400):
    total = draw(st.integers(min_total, max_total))
    return draw(st.integers(0, total - 1)), total


@SETTINGS
@given(phase=phases())
def test_warmup_constant_matches_drawn(make_optimizer, record, assert_tracks, phase):
    _compare(make_optimizer, record, assert_tracks, "warmup_constant", *phase)


@SETTINGS
@given(phase=phases())
def test_warmup_linear_matches_drawn(make_optimizer, record, assert_tracks, phase):
    _compare(make_optimizer, record, assert_tracks, "warmup_linear", *phase)


@SETTINGS
@given(phase=phases(), num_cycles=st.floats(0.1, 4.0), min_lr_ratio=st.floats(0.0, 1.0))
def test_warmup_cosine_matches_drawn(make_optimizer, record, assert_tracks, phase, num_cycles, min_lr_ratio):
    _compare(
        make_optimizer,
        record,
        assert_tracks,
        "warmup_cosine_min_lr",
        *phase,
        num_cycles=num_cycles,
        min_lr_ratio=min_lr_ratio,
    )


@SETTINGS
@given(phase=phases(), num_cycles=st.integers(1, 10))
def test_warmup_cosine_restarts_matches_drawn(make_optimizer, record, assert_tracks, phase, num_cycles):
    _compare(make_optimizer, record, assert_tracks, "warmup_cosine_restarts", *phase, num_cycles=num_cycles)


@SETTINGS
@given(phase=phases(), lr_end=st.floats(0.0, 0.09), power=st.floats(0.25, 4.0))
def test_warmup_polynomial_matches_drawn(make_optimizer, record, assert_tracks, phase, lr_end, power):
    _compare(make_optimizer, record, assert_tracks, "warmup_polynomial", *phase, lr_end=lr_end, power=power)


@SETTINGS
@given(phase=phases(), timescale=st.one_of(st.none(), st.integers(1, 2000)))
def test_inverse_sqrt_matches_drawn(make_optimizer, record, assert_tracks, phase, timescale):
    params = {} if timescale is None else {"timescale": timescale}
    _compare(make_optimizer, record, assert_tracks, "inverse_sqrt", *phase, **params)


@st.composite
def wsd_phases(draw):
    warmup, total = draw(phases())
    return warmup, total, draw(st.integers(0, total - warmup))


shapes = st.sampled_from(["linear", "cosine", "1-sqrt"])


@SETTINGS
@given(
    phase=wsd_phases(),
    warmup_type=shapes,
    decay_type=shapes,
    min_lr_ratio=st.floats(0.0, 1.0),
    num_cycles=st.floats(0.1, 3.0),
)
def test_wsd_matches_drawn(
    make_optimizer, record, assert_tracks, phase, warmup_type, decay_type, min_lr_ratio, num_cycles
):
    warmup, total, decay = phase
    _compare(
        make_optimizer,
        record,
        assert_tracks,
        "wsd",
        warmup,
        total,
        decay=decay,
        warmup_type=warmup_type,
        decay_type=decay_type,
        min_lr_ratio=min_lr_ratio,
        num_cycles=num_cycles,
    )
