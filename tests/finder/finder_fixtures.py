"""What every finder test module shares: one torch thread per test, and the warnings tiny fits raise on purpose.

Test modules set ``pytestmark = QUIET`` and import ``one_thread`` (an autouse fixture: importing it
applies it). A conftest.py here would clash with tests/conftest.py under --doctest-modules.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

QUIET = [
    pytest.mark.filterwarnings(expected)
    for expected in (
        "ignore:.*isinstance\\(treespec, LeafSpec\\).*",
        # the range test never validates, while the data modules have a validation split
        "ignore:You passed in a `val_dataloader` but have no `validation_step`.*",
        "ignore:Found 1 module\\(s\\) in eval mode.*",
        "ignore:LightningCLI's args parameter is intended to run from within Python.*",
    )
]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Single-threaded: the models are tiny, and extra intra-op threads only oversubscribe shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
