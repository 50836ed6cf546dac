"""Modules we did not write, as they are: Lightning's demo BoringModel and Transformer LM, tiny `transformers` models.

BoringModel cannot be stacked (it does not say how to score a batch): auto trains it sequentially
and says why, stacked is an error before anything trains. The ResNet (BatchNorm) stacks; its
early validation losses in eval mode are not divergence. The demo Transformer stacks, and auto's
probe sees the operators vmap runs as a loop in its validation. BERT's stacked copies (AdamW, two
param groups) equal their solo runs. ``find_lr`` and a resumed ``lrsched``-style fit on each of the
four as it is (the Transformer and BERT with their dropout on).
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_lrsched import find_lr
from lightning_lrsched.compare import compare
from lightning_lrsched.module_contract import own_optimizer, schedule_module
from lightning_lrsched.schedules import get_schedule
from tests.compare import third_party_models
from tests.compare.test_stack_any import assert_copies_equal_solo_runs, grid, stacked_and_solo

ROOT = Path(__file__).resolve().parents[2]
BORING = {"class_path": "tests.compare.third_party_models.LoggingBoringModel", "init_args": {}}
BORING_DATA = {"class_path": "lightning.pytorch.demos.boring_classes.BoringDataModule", "init_args": {}}
RESNET = {"class_path": "tests.compare.third_party_models.TinyResNet", "init_args": {}}
IMAGES = {"class_path": "tests.compare.third_party_models.TinyImages", "init_args": {}}
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(ROOT)


def test_boring_model_as_it_is_trains_sequentially_in_auto_and_is_refused_stacked(tmp_path):
    comparison = compare(
        ["step", "cosine"], max_epochs=1, output=tmp_path / "auto", logger="none", model=BORING, data=BORING_DATA
    )
    # Its own SGD at 0.1 on 32 random inputs a step (lr x |x|^2 ~ 3 > 2) really diverges: its training loss
    # passes 10 x the untrained one within the epoch (the validation loss is ~4e4), and says so.
    assert [(r.mode, r.status) for r in comparison.records] == [("sequential", "diverged")] * 2
    assert all(r.reason.startswith("the mean training loss of the epoch") for r in comparison.records)
    assert all(r.steps == 64 and r.lr_curve[0][1] == 0.1 for r in comparison.records)  # its own SGD's LR
    assert all(r.final_train_loss > 10 for r in comparison.records)  # the epoch it diverged in keeps its loss
    (note,) = comparison.notes
    assert "LoggingBoringModel has no `stacked_metrics(batch)` method" in note
    with pytest.raises(ValueError, match=r"mode='stacked': LoggingBoringModel has no `stacked_metrics"):
        compare(
            ["step", "cosine"],
            max_epochs=1,
            output=tmp_path / "stacked",
            logger="none",
            mode="stacked",
            model=BORING,
            data=BORING_DATA,
        )


def test_a_module_with_loaders_of_its_own_and_no_data_is_refused_before_anything_trains(tmp_path):
    # BoringModel brings its own train_dataloader; without `data` every run was fed the synthetic task's batches
    # and failed (a TypeError each, exit 1).
    with pytest.raises(
        ValueError, match=r"^`data`: LoggingBoringModel has its own train_dataloader \(in BoringModel\)"
    ):
        compare(["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", model=BORING)
    assert not tmp_path.exists() or not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize("mode", ["sequential", "stacked"])
def test_a_batchnorm_resnet_from_transformers_trains_without_false_divergence(mode, tmp_path):
    schedules = ["step", "cosine", {"name": "exponential", "gamma": 0.5}]
    comparison = compare(schedules, max_epochs=2, output=tmp_path, logger="none", mode=mode, model=RESNET, data=IMAGES)
    assert [(r.mode, r.status) for r in comparison.records] == [(mode, "ok")] * 3, [
        r.reason for r in comparison.records
    ]
    assert all(r.lr_curve[0][1] == 0.05 for r in comparison.records)


TRANSFORMER = {"class_path": "tests.compare.third_party_models.LoggingTransformer", "init_args": {"dropout": 0.0}}
DEMO_DROPOUT = {"class_path": "tests.compare.third_party_models.LoggingTransformer", "init_args": {"dropout": 0.2}}
TOKENS = {"class_path": "tests.compare.third_party_models.TinyTokens", "init_args": {}}


@pytest.mark.parametrize(
    "mode, model",
    [("sequential", DEMO_DROPOUT), ("stacked", TRANSFORMER), ("auto", TRANSFORMER), ("auto", DEMO_DROPOUT)],
)
def test_lightnings_demo_transformer_on_tokens_of_ours(mode, model, tmp_path, one_thread):
    comparison = compare(
        ["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", mode=mode, model=model, data=TOKENS
    )
    assert [r.status for r in comparison.records] == ["ok"] * 2, [r.reason for r in comparison.records]
    assert all(r.steps == 8 and r.lr_curve[0][1] == 0.1 for r in comparison.records)  # the demo's own SGD at 0.1
    (trained,) = {r.mode for r in comparison.records}
    if model is DEMO_DROPOUT and mode == "auto":  # its dropout in attention cannot be drawn as a solo run draws it
        assert trained == "sequential"
        (note,) = comparison.notes
        assert "LoggingTransformer draws random numbers in training that its stacked copies cannot draw" in note
    elif mode != "auto":
        assert trained == mode
    elif trained == "sequential":  # the probe's call on a busy machine: its reason names the loops
        (note,) = comparison.notes
        assert "stacking 2 copies does not pay here" in note and "aten::_transformer_encoder_layer_fwd" in note


def stacked_transformer(model, schedules=("step", "cosine"), **trainer):
    from lightning_lrsched.compare.grid import build_grid, class_config, plan_jobs
    from lightning_lrsched.compare.stacked import StackedModule
    from lightning_lrsched.compare.training import seeded_model

    model, data = class_config("model", model, model), class_config("data", TOKENS, TOKENS)
    specs = build_grid(list(schedules), ["cpu:1"], [0], 1, model=model, data=data, trainer=trainer)[0]
    (job,) = plan_jobs(specs, "stacked")
    copies = [seeded_model(spec, scheduled=False) for spec in job]
    return StackedModule(copies, list(schedules), [get_schedule("cosine")] * len(job)), job


def test_auto_probes_the_demo_transformers_validation_where_vmap_runs_a_loop(one_thread):
    from lightning_lrsched.compare.training import _data, probe_stacking

    # The run's own validation settings do not reach the probe, which validates once, after training.
    module, job = stacked_transformer(TRANSFORMER, check_val_every_n_epoch=2, val_check_interval=0.5)
    module.probe(next(iter(_data(job[0]).train_dataloader())))
    probe = probe_stacking(module, _data(job[0]), job[0])
    # nn.Transformer's fast path (eval mode only) has no batching rule: the probe validates, so it sees it.
    assert probe is not None and "aten::_transformer_encoder_layer_fwd" in probe.loops
    assert probe.batches == (8, 2) and all(t > 0 for t in (*probe.stacked, *probe.solo))
    assert "vmap runs aten::_scaled_dot_product_flash_attention_for_cpu, aten::_transformer_encoder_layer_fwd" in (
        probe.reason
    )
    assert module.copies[0].training  # the probe left the module's copies in training mode


def test_stacked_copies_that_cannot_draw_their_solo_runs_dropout_are_refused(one_thread):
    from lightning_lrsched.compare.grid import Unstackable
    from lightning_lrsched.compare.training import _data

    module, job = stacked_transformer(DEMO_DROPOUT)
    batch = next(iter(_data(job[0]).train_dataloader()))
    state = torch.get_rng_state()
    with pytest.raises(Unstackable, match=r"copies' first losses are \[(\S+), \1\], one run's"):
        module.probe(batch)  # the copies draw the same masks, not the ones the demo's attention draws alone
    assert torch.equal(torch.get_rng_state(), state)


BERT = "tests.compare.third_party_models.TinyBert"
SENTENCES = {"class_path": "tests.compare.third_party_models.TinySentences", "init_args": {}}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_a_tiny_berts_stacked_copies_equal_their_solo_runs(dropout, tmp_path, one_thread):
    model = {"class_path": BERT, "init_args": {"dropout": dropout}}
    schedules = ["step", {"name": "exponential", "gamma": 0.1}, {"name": "exponential", "gamma": 0.5}]
    specs = grid(schedules, 2, model, SENTENCES)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)
    assert all(r.lr_curve[0][1] == 1e-3 for r in stacked)  # its own AdamW's LR


def test_the_berts_two_param_groups_are_the_hugging_face_ones():
    optimizer = own_optimizer(third_party_models.TinyBert())
    assert type(optimizer).__name__ == "AdamW" and optimizer.defaults["betas"] == (0.9, 0.98)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert all(len(g["params"]) > 0 for g in optimizer.param_groups)


def resnet_and_data():
    return third_party_models.TinyResNet(), third_party_models.TinyImages()


def boring_and_data():
    return third_party_models.LoggingBoringModel(), None  # its own dataloaders


def transformer_and_data():
    return third_party_models.LoggingTransformer(), third_party_models.TinyTokens()  # the demo's dropout, 0.2


def bert_and_data():
    # BERT's dropout 0.1; batches of 8 make its epoch 8 steps, as the others' (TinySentences has 64 sentences).
    return third_party_models.TinyBert(), third_party_models.TinySentences(batch_size=8)


MAKERS = pytest.mark.parametrize(
    "make",
    [boring_and_data, resnet_and_data, transformer_and_data, bert_and_data],
    ids=["boring", "resnet", "transformer", "bert"],
)


def own_settings(model):
    """Its own optimizer as configure_optimizers builds it: type, defaults, each group's settings and size."""
    optimizer = own_optimizer(model)
    groups = [{**g, "params": len(g["params"])} for g in optimizer.param_groups]
    return type(optimizer), optimizer.defaults, groups


@MAKERS
def test_find_lr_on_the_module_as_it_is_leaves_it_as_it_was(make, one_thread):
    torch.manual_seed(0)
    model, data = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    own = own_settings(model)
    rng = torch.get_rng_state()
    result = find_lr(model, data, num_steps=25, accelerator="cpu")
    assert len(result.lrs) > 1 and result.suggestion("valley") > 0
    assert all(lr is not None and 0 < lr < float("inf") for lr in result.suggestions.values()), result.reasons
    # Every tensor as it was: compared with the module before the test, not with a rerun, so the masks the
    # Transformer's and BERT's dropout drew in the test do not enter the comparison.
    assert before.keys() == model.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # The generator too (find_lr promises training after it is bit-identical to training without it): the
    # dropout modules draw from it in every step of the test, BoringModel's train_dataloader its data.
    assert torch.equal(torch.get_rng_state(), rng)
    # Its own optimizer, as configure_optimizers builds it, afterwards too (and its own scheduler);
    # BERT's two groups with their own weight decay.
    assert own_settings(model) == own
    assert "configure_optimizers" not in vars(model)


class LRTrace(Callback):
    """Every param group's LR at each batch, and at the end of training the step count, the scheduler's
    state and the optimizer's per-parameter step counts (Adam's; SGD keeps none)."""

    def __init__(self) -> None:
        self.lrs: list[tuple[int, tuple[float, ...]]] = []
        self.end: dict = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        lrs = tuple(g["lr"] for g in trainer.optimizers[0].param_groups)
        self.lrs.append((trainer.global_step, lrs))

    def on_train_end(self, trainer, pl_module):
        (config,) = trainer.lr_scheduler_configs
        state = trainer.optimizers[0].state_dict()["state"]
        self.end = {
            "global_step": trainer.global_step,
            "scheduler": config.scheduler.state_dict(),
            "optimizer_steps": {i: float(s["step"]) for i, s in state.items() if "step" in s},
        }


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True


@MAKERS
def test_a_resumed_fit_of_the_module_as_it_is_keeps_its_schedule(make, tmp_path, one_thread):
    def fit(root, *callbacks, ckpt_path=None, max_epochs=2) -> LRTrace:
        L.seed_everything(0, verbose=False)
        model, data = make()
        schedule_module(model, get_schedule("warmup_cosine", warmup="25%"))
        trace = LRTrace()
        trainer = quiet_trainer(root, trace, *callbacks, max_epochs=max_epochs, limit_train_batches=8)
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        return trace

    whole = fit(tmp_path / "whole")
    saved = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1, filename="{step}")
    first = fit(tmp_path / "first", saved, StopAt(5))
    (checkpoint,) = (tmp_path / "ckpt").iterdir()
    assert checkpoint.name == "step=5.ckpt"
    assert torch.load(checkpoint, weights_only=False)["lr_schedulers"][0]["last_epoch"] == 5
    rest = fit(tmp_path / "rest", ckpt_path=checkpoint)
    # What a resume guarantees: the LR of every group at every step, the step count, the schedule's state
    # and the optimizer's own step counts (AdamW's) equal an uninterrupted run's. Not the weights: the
    # checkpoint holds no random generator state, so the Transformer's and BERT's dropout draws other masks
    # from step 5 on than the uninterrupted run draws; and Lightning starts the resumed epoch's (not
    # stateful) loader over, so steps 5-7 train on the epoch's batches 0-2 (even the ResNet's weights
    # differ, by 0.15). None of the checks below depends on either.
    assert [s for s, _ in first.lrs + rest.lrs] == list(range(16))
    assert first.lrs + rest.lrs == whole.lrs
    assert len({lr for _, lr in whole.lrs}) > 8  # the schedule moved the LR (its own StepLR would not, in 16 steps)
    assert all(len(set(lrs)) == 1 for _, lrs in whole.lrs)  # each group follows the schedule from its own 1e-3
    assert first.end["global_step"] == 5 and rest.end["global_step"] == whole.end["global_step"] == 16
    assert rest.end == whole.end
