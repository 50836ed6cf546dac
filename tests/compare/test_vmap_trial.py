"""A user trial: modules whose forward may not run (or may run wrongly) under ``vmap``, as a new user brings them.

Each module (tests/compare/vmap_trial_models.py) defines ``stacked_metrics``, so only ``vmap`` stands
between it and stacking. Either it stacks and each copy equals its solo run (same seed: every epoch's
losses within 1e-5 relative), or it is :class:`Unstackable` with a one-line reason, which ``auto``
prints as it trains the runs one after the other and ``stacked`` turns into an error (exit 2 in the CLI).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_stack_any import SYNTHETIC_DATA, assert_copies_equal_solo_runs, grid, stacked_and_solo

from lightning_lrsched.cli import main
from lightning_lrsched.compare import compare
from lightning_lrsched.compare.grid import RunSettings, Unstackable, plan_jobs
from lightning_lrsched.compare.stacked import StackedModule
from lightning_lrsched.compare.training import train_stacked
from lightning_lrsched.models import SyntheticDataModule
from lightning_lrsched.schedules import get_schedule
from tests.compare import vmap_trial_models as trial

ROOT = Path(__file__).resolve().parents[2]
MODELS = "tests.compare.vmap_trial_models."
SMALL_DATA = {**SYNTHETIC_DATA, "init_args": {"num_samples": 200}}
SENTENCES = {"class_path": MODELS + "PaddedSentences", "init_args": {}}
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap's loops: the probe reports them


def model(name: str, **init_args) -> dict:
    return {"class_path": MODELS + name, "init_args": init_args}


def stacked_copies(cls, k: int = 2, **init_args) -> StackedModule:
    torch.manual_seed(0)
    copies = [cls(**init_args) for _ in range(k)]
    for c in copies[1:]:
        c.load_state_dict(copies[0].state_dict())
    return StackedModule(copies, [f"c{i}" for i in range(k)], [get_schedule("cosine")] * k)


def sentences_batch():
    return next(iter(trial.PaddedSentences().train_dataloader()))


def features_batch():
    data = SyntheticDataModule(num_samples=100, batch_size=16)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


@pytest.mark.parametrize(
    ("cls", "init_args", "batch", "reason"),
    [
        (trial.RecurrentClassifier, {"cell": "lstm"}, sentences_batch, r": Batching rule .* for aten::lstm"),
        (trial.RecurrentClassifier, {"cell": "gru"}, sentences_batch, r": Batching rule .* for aten::gru"),
        (trial.ItemClassifier, {}, features_batch, r": .*calling \.item\(\) on a Tensor"),
        (trial.IfPositiveClassifier, {}, features_batch, r": .*data-dependent control flow"),
        (trial.NonzeroClassifier, {}, features_batch, r": .*dynamic shape\. Attempted to vmap over aten::nonzero"),
        (trial.EncoderClassifier, {}, sentences_batch, r" in evaluation: .*aten::_nested_tensor_from_mask"),
    ],
)
def test_a_module_vmap_cannot_run_is_unstackable_in_one_line_and_left_as_it_was(cls, init_args, batch, reason):
    module = stacked_copies(cls, **init_args)
    before = [p.detach().clone() for p in module.stacked]
    with pytest.raises(Unstackable, match=rf"^vmap cannot run {cls.__name__}{reason}") as error:
        module.probe(batch())
    assert "\n" not in str(error.value)
    assert all(torch.equal(p, q) and p.grad is None for p, q in zip(module.stacked, before, strict=True))
    assert all(c.training for c in module.copies)


def test_the_probe_puts_back_each_submodules_own_mode():
    # nn.TransformerEncoder trains under vmap but its no-grad fast path (nested tensors) does not: the probe
    # evaluates the copies too, then gives each submodule back its mode (one the user keeps in eval stays so).
    module = stacked_copies(trial.EncoderClassifier)
    for c in module.copies:
        c.embed.eval()
    with pytest.raises(Unstackable):
        module.probe(sentences_batch())
    assert [(c.training, c.embed.training, c.out.training) for c in module.copies] == [(True, False, True)] * 2


def test_a_buffer_the_forward_assigns_anew_is_each_copys_after_the_pass():
    # `self.calls = self.calls + 1`: functional_call puts the new tensor on the module, then restores the old one.
    module = stacked_copies(trial.CountsCalls, in_place=False)
    batch = features_batch()
    module.probe(batch)  # leaves the count as it was
    module.scores(batch)
    module.scores(batch)
    assert [int(c.calls) for c in module.copies] == [2, 2]  # as a module of its own counts two calls


@pytest.mark.parametrize(
    ("name", "init_args", "data"),
    [
        ("CentresInputInPlace", {}, SMALL_DATA),  # (c) x.sub_(...) on the batch
        ("ClipsWeightViewInPlace", {}, SMALL_DATA),  # (c) clamp_ of a view of a parameter, under no_grad
        ("HalvesInputInPlace", {}, SMALL_DATA),  # (c) x.mul_(0.5), and dropout: the probe's draws check
        ("MaskedTokensClassifier", {}, SENTENCES),  # (d) a boolean mask of the (shared) tokens
        ("ReseedsInForward", {}, SMALL_DATA),  # (e) torch.manual_seed, then randn_like, in forward
        ("RandintClassifier", {}, SMALL_DATA),  # (e) torch.randint
        ("PerExampleRandintClassifier", {}, SMALL_DATA),  # (e) torch.randint shaped like the activations
        ("NoisyEvaluation", {}, SMALL_DATA),  # (e) draws in evaluation only: found by the probe's evaluation pass
        ("MaxNormEmbedding", {}, SENTENCES),  # (f) max_norm renormalises the weight in place
        ("NormCNN", {"norm": "group"}, SMALL_DATA),  # (g)
        ("NormCNN", {"norm": "layer"}, SMALL_DATA),  # (g)
        ("AttentionClassifier", {}, SENTENCES),  # (h) nn.MultiheadAttention with key_padding_mask
        ("CountsCalls", {"in_place": True}, SMALL_DATA),  # (i) self.calls += 1
        ("CountsCalls", {"in_place": False}, SMALL_DATA),  # (i) self.calls = self.calls + 1
        ("CountsCallsInPython", {}, SMALL_DATA),  # (i) a Python int, self.calls += 1: the probe must not count
        ("CountsLazilyInPython", {}, SMALL_DATA),  # the same, created by the forward: the probe must not leave it
        ("NoisyCounts", {"in_place": True}, SMALL_DATA),  # (i) and dropout: the probe compares its draws with a run's
        ("NoisyCounts", {"in_place": False}, SMALL_DATA),
        ("NoisyCountsInPython", {}, SMALL_DATA),
    ],
)
def test_a_module_that_stacks_equals_its_solo_runs(name, init_args, data, tmp_path, one_thread):
    specs = grid(["step", "cosine"], 2, model(name, **init_args), data)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)
    for ours, solo in zip(stacked, solos, strict=True):
        assert abs(ours.best_val_loss - solo.best_val_loss) <= 1e-5 * solo.best_val_loss


def test_a_module_whose_epoch_hook_changes_its_forward_is_not_stacked(tmp_path):
    # Not vmap's doing: on_train_epoch_start sets the temperature its forward divides by, and a stacked run calls
    # none of its copies' hooks: stacked, its copies came out 5% off their solo runs at epoch 2, silently.
    (job,) = plan_jobs(grid(["step", "cosine"], 2, model("WarmsTemperatureByEpoch"), SMALL_DATA), "stacked")
    with pytest.raises(Unstackable, match=r"^WarmsTemperatureByEpoch overrides `on_train_epoch_start`"):
        train_stacked(job, RunSettings(output=str(tmp_path), logger="none"), lambda runs: None)


def test_copies_of_two_seeds_whose_masks_differ_fall_back_with_the_reason(tmp_path, monkeypatch, one_thread):
    # One seed's copies share the tokens (an unbatched mask): they stack. Two seeds' batches are stacked, and so
    # is the mask: vmap cannot index by it; auto trains the four runs one after the other and says why in one line.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(ROOT)
    comparison = compare(
        ["step", "cosine"], seeds=[0, 1], max_epochs=1, output=tmp_path, logger="none",
        model=model("MaskedTokensClassifier"), data=SENTENCES,
    )  # fmt: skip
    assert [(r.mode, r.status) for r in comparison.records] == [("sequential", "ok")] * 4
    (note,) = [n for n in comparison.notes if "→" in n]
    assert note.startswith("auto → sequential for cpu:1") and "indexing with a boolean mask" in note
    assert "\n" not in note


# -- through the CLI, as a user runs it ----------------------------------------------------------------------


def leftovers(folder: Path, grace_s: float = 10.0) -> list[int]:
    """Processes still running in ``folder`` (a worker starts where its grid runs), after up to ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and int(proc.name) != os.getpid() and (proc / "cwd").resolve() == folder:
                    found.append(int(proc.name))
            except OSError:  # gone, or not ours to read
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def run_cli(tmp_path: Path, monkeypatch, capsys, config: dict, *args: str) -> tuple[int, str, str]:
    """``lrsched compare --config <config> *args`` in ``tmp_path``: exit status, standard output and error."""
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump({"max_epochs": 1, "logger": "none", **config}))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(tmp_path)
    try:
        main(["compare", "--config", str(path), "--output", str(tmp_path / "out"), *args])
        code = 0
    except SystemExit as exit_info:
        code = 0 if exit_info.code is None else exit_info.code
    out, err = capsys.readouterr()
    assert leftovers(tmp_path.resolve()) == []
    return code, out, err


ENCODER = {"schedules": ["step", "cosine"], "model": model("EncoderClassifier"), "data": SENTENCES}


PROC = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds leftover processes in /proc")


@PROC
def test_cli_a_module_vmap_cannot_evaluate_is_refused_stacked_in_one_line(tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(tmp_path, monkeypatch, capsys, ENCODER, "--mode", "stacked")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("lrsched compare: error: mode='stacked': vmap cannot run EncoderClassifier in evaluation: ")
    assert "Traceback" not in out + err
    assert not (tmp_path / "out" / "results.jsonl").exists()


@PROC
def test_cli_a_module_vmap_cannot_evaluate_trains_sequentially_in_auto_with_the_reason(tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(tmp_path, monkeypatch, capsys, ENCODER, "--mode", "auto")
    assert code == 0, err
    reason = "auto → sequential for cpu:1, seed 0: vmap cannot run EncoderClassifier in evaluation: "
    (line,) = [line for line in out.splitlines() if line.startswith(reason)]
    assert line.endswith("We could not generate a fallback.")  # one line, however wide the terminal
    assert [line for line in (tmp_path / "out" / "report.md").read_text().splitlines() if reason in line]
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["mode"], r["status"]) for r in records] == [("sequential", "ok")] * 2
    assert "Traceback" not in out + err


@PROC
def test_cli_an_lstm_on_two_processes_is_refused_stacked_in_one_line(tmp_path, monkeypatch, capsys):
    config = {"schedules": ["step", "cosine"], "model": model("RecurrentClassifier", cell="lstm"), "data": SENTENCES}
    code, out, err = run_cli(tmp_path, monkeypatch, capsys, config, "--mode", "stacked", "--devices", "cpu:2")
    assert code == 2
    assert err.count("\n") == 1
    assert "mode='stacked': vmap cannot run RecurrentClassifier: Batching rule not implemented for aten::lstm" in err
    assert "Traceback" not in out + err
