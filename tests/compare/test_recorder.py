"""The bounded series a comparison records per run: thinned past its limit, evenly, from the first point on."""

from __future__ import annotations

import pytest

from lightning_lrsched.compare.recorder import BoundedSeries


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_a_bounded_series_past_its_limit_keeps_every_stride_th_point_and_never_twice_the_limit(limit):
    series = BoundedSeries(limit)
    for n in range(1, 40 * limit + 1):
        series.add(n - 1, 10.0 * (n - 1))  # the n-th point of the run
        kept = [x for x, _ in series.points]
        assert len(kept) < 2 * limit, f"{n} points added"
        assert kept == list(range(0, n, series.stride)), f"{n} points added: stride {series.stride}, kept {kept}"
        assert series.points == [[x, 10.0 * x] for x in kept]
        if n >= 2 * limit:
            assert len(kept) >= limit, "thinned below its limit"
    assert series.stride >= 32  # the test went well past the limit, several halvings deep


def test_a_bounded_series_within_its_limit_keeps_every_point():
    series = BoundedSeries()
    for step in range(2 * 2000 - 1):
        series.add(step, 0.1)
    assert series.stride == 1 and [x for x, _ in series.points] == list(range(2 * 2000 - 1))
