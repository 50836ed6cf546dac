"""`find_lr` under 2-process CPU DDP: every rank records the same curve and returns the same suggestions.

The run happens in a subprocess (``ddp_find_run.py``, ``strategy="ddp"``), killed with its workers if
it outlives the timeout, so a hang fails the test instead of blocking CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ddp_find_run import run
from harness import run_script

SCRIPT = Path(__file__).with_name("ddp_find_run.py")
TIMEOUT_S = 300

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_rank_gets_the_same_suggestions_from_the_global_batch_loss(tmp_path):
    returncode, output = run_script(SCRIPT, str(tmp_path), timeout=TIMEOUT_S)
    assert returncode == 0, output[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    assert ranks[0] == ranks[1]  # curve, suggestions, divergence step: all bit-identical
    assert ranks[0]["restored"] and ranks[0]["diverged_at"] is not None and len(ranks[0]["losses"]) > 20

    # Each rank trains on half of every global batch; the recorded loss is their mean, which is the
    # loss of the global batch that one process sees (up to float rounding, amplified by high LRs).
    single = run(tmp_path / "single")
    steps = 20
    np.testing.assert_allclose(ranks[0]["losses"][:steps], single["losses"][:steps], rtol=1e-4)
    assert single["diverged_at"] == ranks[0]["diverged_at"]
