"""The bounded curve a comparison records per run: thinned past its limit, evenly, from the first point on."""

from __future__ import annotations

import pytest

from lightning_lrsched.compare.recorder import Curve


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_a_curve_past_its_limit_keeps_every_stride_th_point_and_never_twice_the_limit(limit):
    curve = Curve(limit)
    for n in range(1, 40 * limit + 1):
        curve.add(n - 1, 10.0 * (n - 1))  # the n-th point of the run
        kept = [x for x, _ in curve.points]
        assert len(kept) < 2 * limit, f"{n} points added"
        assert kept == list(range(0, n, curve.stride)), f"{n} points added: stride {curve.stride}, kept {kept}"
        assert curve.points == [[x, 10.0 * x] for x in kept]
        if n >= 2 * limit:
            assert len(kept) >= limit, "thinned below its limit"
    assert curve.stride >= 32  # the test went well past the limit, several halvings deep


def test_a_curve_within_its_limit_keeps_every_point():
    curve = Curve()
    for step in range(2 * 2000 - 1):
        curve.add(step, 0.1)
    assert curve.stride == 1 and [x for x, _ in curve.points] == list(range(2 * 2000 - 1))
