"""A user trial: modules whose forward may not run (or may run wrongly) under ``vmap``, as a new user brings them.

Each module (tests/compare/vmap_trial_models.py) defines ``stacked_metrics``, so only ``vmap`` stands
between it and stacking. Either it stacks and each copy equals its solo run (same seed: every epoch's
losses within 1e-5 relative), or it is :class:`Unstackable` with a one-line reason, which ``auto``
prints as it trains the runs one after the other and ``stacked`` turns into an error (exit 2 in the CLI).
"""

from __future__ import annotations

import pytest
import torch
from test_stack_any import SYNTHETIC_DATA, assert_copies_equal_solo_runs, grid, stacked_and_solo

from lightning_lrsched.compare.grid import Unstackable
from lightning_lrsched.compare.stacked import StackedModule
from lightning_lrsched.schedules import get_schedule
from tests.compare.vmap_trial_models import CountsCalls, EncoderClassifier, PaddedSentences

MODELS = "tests.compare.vmap_trial_models."
SMALL_DATA = {**SYNTHETIC_DATA, "init_args": {"num_samples": 200}}


def model(name: str, **init_args) -> dict:
    return {"class_path": MODELS + name, "init_args": init_args}


def stacked_copies(cls, k: int = 2, **init_args) -> StackedModule:
    torch.manual_seed(0)
    copies = [cls(**init_args) for _ in range(k)]
    for c in copies[1:]:
        c.load_state_dict(copies[0].state_dict())
    return StackedModule(copies, [f"c{i}" for i in range(k)], [get_schedule("cosine")] * k)


def first_batch(data):
    return next(iter(data.train_dataloader()))


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_a_module_vmap_can_train_but_not_evaluate_is_unstackable_before_anything_trains():
    # nn.TransformerEncoder with a padding mask takes its nested-tensor fast path without gradients only:
    # found by the probe, not by the sanity check of a stacked run that then fails every copy.
    module = stacked_copies(EncoderClassifier)
    reason = r"^vmap cannot run EncoderClassifier in evaluation: .*_nested_tensor_from_mask"
    with pytest.raises(Unstackable, match=reason):
        module.probe(first_batch(PaddedSentences()))
    assert all(c.training for c in module.copies)  # put back in training mode


def test_a_buffer_the_forward_assigns_anew_is_each_copys_after_the_pass():
    # `self.calls = self.calls + 1`: functional_call puts the new tensor on the module, then restores the old one.
    module = stacked_copies(CountsCalls, in_place=False)
    batch = (torch.randn(8, 10), torch.randint(0, 2, (8,)))
    module.scores(batch)
    module.scores(batch)
    assert [int(c.calls) for c in module.copies] == [2, 2]  # as a module of its own counts two calls


def test_a_counting_buffer_stacks_and_each_copy_equals_its_solo_run(tmp_path, one_thread):
    for in_place in (True, False):
        specs = grid(["step", "cosine"], 2, model("CountsCalls", in_place=in_place), SMALL_DATA)
        stacked, solos = stacked_and_solo(specs, tmp_path / str(in_place))
        assert_copies_equal_solo_runs(stacked, solos, 2)
