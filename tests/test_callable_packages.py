"""``lightning_lrsched.compare`` and ``.tune`` are functions and subpackages: both names call the function."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import inspect
import lightning_lrsched.compare.grid, lightning_lrsched.tune.space  # the import system sets the subpackages
import lightning_lrsched
from lightning_lrsched import compare, tune
from lightning_lrsched.compare import api as compare_api
from lightning_lrsched.tune import api as tune_api

assert compare is lightning_lrsched.compare and tune is lightning_lrsched.tune
assert list(inspect.signature(compare).parameters)[:2] == ["schedules", "devices"]
assert list(inspect.signature(tune).parameters)[:2] == ["space", "budget"]
compare_api.compare = lambda *args, **kwargs: ("compare", args, kwargs)
tune_api.tune = lambda *args, **kwargs: ("tune", args, kwargs)
print(compare(["cosine"], seeds=[1]), tune({"lr": [0.1]}, budget=3))
"""


def test_compare_and_tune_call_their_function_after_a_submodule_was_imported():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (
        "('compare', (['cosine'],), {'seeds': [1]}) ('tune', ({'lr': [0.1]},), {'budget': 3})"
    )
