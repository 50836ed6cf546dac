"""`tune`: the space and its checks, the rungs, the stacked search, trials.jsonl, the confirmation and the CLI."""

from __future__ import annotations

import json
import logging
import math
import warnings

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from lightning_lrsched.cli import main
from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.tune.api import tune
from lightning_lrsched.tune.search import Rung, TrialResult, train_search
from lightning_lrsched.tune.space import Config, SearchSpace, rung_epochs, survivors, with_absolute_peak
from lightning_lrsched.tune.trials import TrialsFile

SPACE = {"schedules": ["cosine", "step"], "lr": {"low": 0.05, "high": 0.5}, "warmup": [0]}
CPU = {"accelerator": "cpu", "devices": 1}


@pytest.fixture(autouse=True)
def quiet():
    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- the space and the rungs (no training) --------------------------------------------------------
@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"schedules": []}, "`space.schedules` is empty"),
        ({"schedules": ["cosine"], "lr": {"low": 0.0, "high": 1.0}}, "positive and increasing"),
        ({"schedules": ["cosine"], "lr": {"low": 1.0, "high": 0.1}}, "positive and increasing"),
        ({"schedules": [{"name": "cosine", "gamma": {"low": 0.1, "high": 0.9}}]}, "cosine takes no argument 'gamma'"),
        ({"schedules": [{"name": "step", "step_size": 5, "gamma": {"low": 0.9, "high": 0.1}}]}, "low < high"),
        ({"schedules": ["cosine"], "warmup": ["two epochs"]}, "warmup"),
        ({"schedules": ["cosine"], "momentum": 0.9}, "unknown keys"),
    ],
)
def test_a_bad_space_is_refused_naming_what_is_wrong(space, match):
    with pytest.raises((InvalidValue, InvalidType), match=match):
        SearchSpace.parse(space)


def test_a_searched_argument_is_proposed_by_the_trial_and_fixed_ones_stay():
    import optuna

    space = SearchSpace.parse(
        {
            "schedules": [{"name": "step", "step_size": 2, "gamma": {"choices": [0.25, 0.5]}}],
            "lr": {"low": 0.01, "high": 1.0},
            "warmup": [0, "1ep"],
        }
    )
    trial = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0)).ask()
    config = space.propose(trial)
    assert config.schedule["step_size"] == 2
    assert config.schedule["gamma"] == trial.params["step.gamma"] in (0.25, 0.5)
    assert config.lr == trial.params["lr"] and 0.01 <= config.lr <= 1.0
    assert config.label == "t000-step"


@pytest.mark.parametrize(
    ("max_epochs", "eta", "rungs", "expected"),
    [(30, 3, 2, [3, 10, 30]), (27, 3, 3, [1, 3, 9, 27]), (3, 3, 2, [1, 3]), (20, 2, 1, [10, 20]), (1, 3, 2, [1])],
)
def test_rungs_are_the_run_divided_by_powers_of_eta(max_epochs, eta, rungs, expected):
    assert rung_epochs(max_epochs, eta, rungs) == expected


@pytest.mark.parametrize(("n", "eta", "kept"), [(48, 3, 16), (16, 3, 5), (5, 3, 1), (2, 3, 1), (9, 2, 4)])
def test_a_rung_keeps_the_best_nth_and_at_least_one(n, eta, kept):
    assert survivors(n, eta) == kept


def test_an_absolute_peak_takes_the_lr_and_cyclic_keeps_its_ratio():
    assert with_absolute_peak({"name": "onecycle"}, 0.3) == {"name": "onecycle", "max_lr": 0.3}
    spec = with_absolute_peak({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5}, 0.5)
    assert spec["max_lr"] == 0.5 and spec["base_lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 2, "max_epochs": 9}, r"`budget` must be at least the number of rungs \(3: epochs \[1, 3, 9\]\)"),
        ({"seeds": [0, 1]}, "`seeds` must be at least 3"),
        (
            {"model": {"class_path": "torch.nn.Linear", "init_args": {"in_features": 10, "out_features": 2}}},
            "takes none",
        ),
        ({"device": "cpu:2"}, "single-process"),
        ({"device": "mps:1"}, r"^`device`: mps:1: MPS is not available$"),  # was "mps:1: mps:1: ..."
        ({"device": "gpu"}, r"^`device`: unknown device config 'gpu'"),  # was `devices`, compare's option
        ({"model": {"class_path": f"{__name__}.Unscored"}}, "Unscored has no `stacked_metrics.batch.` method"),
    ],
)
def test_bad_tune_input_is_refused_before_anything_trains(tmp_path, kwargs, match):
    with pytest.raises(InvalidValue, match=match):
        tune(SPACE, **{"budget": 4, "max_epochs": 3, "output": tmp_path / "out", **kwargs})
    assert not (tmp_path / "out").exists()


class Unscored(SyntheticClassifier):
    """Takes ``lr`` and ``scheduler`` but cannot be stacked: it does not say how to score a batch."""

    stacked_metrics = None  # type: ignore[assignment]


class Rescored(SyntheticClassifier):
    """Overrides training_step but inherits stacked_metrics: found when the stacked run is built."""

    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx)


def test_write_config_keeps_a_users_file(tmp_path):
    mine = tmp_path / "best.yaml"
    mine.write_text("# my config\n")
    with pytest.raises(InvalidValue, match=r"best\.yaml: exists and was not written by `lrsched tune`"):
        tune(SPACE, budget=4, max_epochs=3, write_config=mine, output=tmp_path / "out")
    assert mine.read_text() == "# my config\n" and not (tmp_path / "out").exists()


class RequiresLR(SyntheticClassifier):
    """Its ``lr`` has no default: tune gives each copy its own, so a config need not."""

    def __init__(self, lr: float, scheduler=None) -> None:
        super().__init__(lr=lr, scheduler=scheduler)


def test_a_module_whose_lr_is_required_is_taken(tmp_path):
    # Refused for its `lr` (which tune passes) once compare's class check bound the required arguments;
    # a user's file at --write-config is refused after the class check, before anything trains.
    mine = tmp_path / "best.yaml"
    mine.write_text("# my config\n")
    model = {"class_path": f"{__name__}.RequiresLR"}
    with pytest.raises(InvalidValue, match=r"exists and was not written by `lrsched tune`"):
        tune(SPACE, budget=4, max_epochs=3, model=model, write_config=mine, output=tmp_path / "out")


def test_a_module_that_cannot_be_stacked_is_bad_input_not_a_crash(tmp_path):
    # Was the stacked module's Unstackable, a traceback that `lrsched tune` called a bug.
    with pytest.raises(
        InvalidValue,
        match=r"overrides `training_step` \(in Rescored\) but inherits `stacked_metrics`.*"
        r" \(executor='ray' trains each configuration alone\)$",
    ):
        tune(SPACE, budget=2, max_epochs=1, rungs=1, model={"class_path": f"{__name__}.Rescored"}, output=tmp_path)
    assert not list(tmp_path.glob("rungs/*.ckpt"))


# -- the search ------------------------------------------------------------------------------------
def search(configs, max_epochs, rungs, eta=3, decided=None):
    return train_search(
        configs,
        model_class=SyntheticClassifier,
        model_args={"optimizer": "sgd"},
        data=SyntheticDataModule(num_samples=64, batch_size=16),
        seed=0,
        max_epochs=max_epochs,
        rungs=rungs,
        eta=eta,
        trainer_args=CPU,
        on_decided=(decided if decided is not None else lambda r: None),
        on_epoch=lambda epoch, training: None,
    )


def test_each_copy_trains_at_its_own_peak_lr():
    constant = {"name": "constant", "factor": 1.0, "total_iters": 0}
    configs = [Config("slow", constant, 0.1), Config("fast", constant, 0.5)]
    results, _ = search(configs, 2, [2])
    assert [r.lr_curve[0][1] for r in results] == [pytest.approx(0.1), pytest.approx(0.5)]
    assert results[0].best_val_loss != results[1].best_val_loss


def test_the_worse_copies_stop_at_a_rung_and_a_stopped_schedule_is_the_full_runs():
    cosine = {"name": "cosine"}
    # The tiny LRs learn least by the rung: they are stopped there (4 // eta=2 go on), the others train to the end.
    configs = [Config("a", cosine, 0.5), Config("b", cosine, 1e-4), Config("c", cosine, 0.3), Config("d", cosine, 2e-4)]
    decided: list[TrialResult] = []
    results, per_epoch = search(configs, 6, [2, 6], eta=2, decided=decided.append)
    states = {r.label: (r.state, r.epochs, r.rung) for r in results}
    stopped, completed = ("stopped", 2, 0), ("completed", 6, 1)
    assert states == {"a": completed, "b": stopped, "c": completed, "d": stopped}
    assert {r.label for r in decided[:2]} == {"b", "d"}  # written when stopped, not at the end
    assert per_epoch == 3  # 48 training samples of 64, batches of 16
    # Epoch 2 of the stopped copy ran at cosine(t=1, T_max=6): the full run's schedule, not a 2-epoch one.
    assert results[1].lr_curve[1][1] == pytest.approx(1e-4 * (1 + math.cos(math.pi / 6)) / 2)
    assert len(results[1].val_curve) == 2 and results[1].best_val_loss > results[0].best_val_loss


class StepLog(Callback):
    """Per training step: each copy's LR (its param group's, by name) and its loss, by label."""

    def __init__(self):
        self.lrs, self.losses, self.rows = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(dict(zip(pl_module.labels, pl_module.copy_losses.tolist(), strict=True)))
        self.rows.append(len(pl_module.stacked[0]))


def test_stopped_copies_leave_the_pass_and_survivors_train_as_if_nobody_was_dropped(one_thread):
    momentum = {"optimizer": {"name": "sgd", "momentum": 0.9}}  # optimizer state that must follow its copy's new row
    schedules = [{"name": "cosine"}, {"name": "step", "step_size": 2}, {"name": "exponential", "gamma": 0.8}]
    configs = [Config(f"c{i}", schedules[i % 3], lr) for i, lr in enumerate([0.5, 1e-4, 0.3, 2e-4, 0.2, 1e-3])]

    def run(rungs):
        log = StepLog()
        results, _ = train_search(
            configs, model_class=SyntheticClassifier, model_args=momentum,
            data=SyntheticDataModule(num_samples=64, batch_size=16), seed=0, max_epochs=6, rungs=rungs, eta=3,
            trainer_args=CPU, on_decided=lambda r: None, on_epoch=lambda e, n: None, callbacks=[log],
        )  # fmt: skip
        return {r.label: r for r in results}, log

    dropped, log = run([2, 6])
    kept, reference = run([6])
    survivors = [label for label, r in dropped.items() if r.state == "completed"]
    assert len(survivors) == 2 and log.rows[:6] == [6] * 6 and log.rows[6:] == [2] * 12  # 3 steps per epoch
    for label in survivors:
        assert len(dropped[label].val_curve) == 6
        for curve in ("val_curve", "lr_curve"):
            mine, theirs = getattr(dropped[label], curve), getattr(kept[label], curve)
            assert [v for _, v in mine] == pytest.approx([v for _, v in theirs], abs=1e-5)
        assert [s[label] for s in log.lrs] == pytest.approx([s[label] for s in reference.lrs], abs=1e-12)
        assert [s[label] for s in log.losses] == pytest.approx([s[label] for s in reference.losses], abs=1e-5)


class Killed(Exception):
    pass


class KillAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            raise Killed


def test_a_search_killed_after_a_rung_continues_from_it_as_if_never_stopped(tmp_path, one_thread):
    configs = [Config(f"c{i}", {"name": "cosine"}, lr) for i, lr in enumerate([0.5, 1e-4, 0.3, 2e-4])]
    args = {
        "model_class": SyntheticClassifier, "model_args": {"optimizer": {"name": "sgd", "momentum": 0.9}},
        "seed": 0, "max_epochs": 6, "rungs": [2, 6], "eta": 2, "trainer_args": CPU, "on_epoch": lambda e, n: None,
    }  # fmt: skip

    def data():
        return SyntheticDataModule(num_samples=64, batch_size=16, shuffle=True)

    reference, _ = train_search(configs, data=data(), on_decided=lambda r: None, **args)
    decided, rungs = [], []
    with pytest.raises(Killed):
        train_search(
            configs, data=data(), on_decided=decided.append, callbacks=[KillAt(4)],
            checkpoint=tmp_path / "search.ckpt", on_rung=rungs.append, **args,
        )  # fmt: skip
    [rung] = rungs
    assert rung.epoch == 2 and [c.label for c in rung.survivors] == ["c0", "c2"]
    assert (tmp_path / "search-epoch2.ckpt").is_file()
    rung = Rung.from_dict(json.loads(json.dumps(rung.to_dict())))  # as trials.jsonl keeps it
    continued, _ = train_search(
        configs, data=data(), on_decided=lambda r: None, resume=(rung, decided[:2]), **args
    )  # fmt: skip
    for mine, theirs in zip(continued, reference, strict=True):
        assert (mine.label, mine.state, mine.epochs) == (theirs.label, theirs.state, theirs.epochs)
        assert [v for _, v in mine.val_curve] == pytest.approx([v for _, v in theirs.val_curve], abs=1e-5)
        assert [v for _, v in mine.lr_curve] == pytest.approx([v for _, v in theirs.lr_curve], abs=1e-12)


# -- trials.jsonl and the whole tune -------------------------------------------------------------------
def test_a_killed_search_is_trained_again_and_a_finished_one_is_read_back(tmp_path):
    file = TrialsFile(tmp_path / "trials.jsonl")
    trial = TrialResult("t000-cosine", {"name": "cosine"}, 0.1, {}, "stopped", 1, 0, [[1, 0.5]], [[1, 0.1]], 0.5)
    file.append({"kind": "trial", "search": "s", "attempt": 1, **trial.to_dict()})
    assert file.finished("s") is None and file.attempts("s") == 1  # no "done": a rerun trains attempt 2
    with file.path.open("a") as handle:
        handle.write('{"kind": "trial", "sear')  # a write cut short
    done = {**trial.to_dict(), "best_val_loss": math.nan}
    file.append({"kind": "trial", "search": "s", "attempt": 2, **done})
    file.append({"kind": "done", "search": "s", "attempt": 2, "rungs": [1, 3], "steps_per_epoch": 4})
    trials, line = file.finished("s")
    assert [t.attempt if hasattr(t, "attempt") else 2 for t in trials] == [2]
    assert math.isnan(trials[0].best_val_loss) and line["steps_per_epoch"] == 4


def test_tune_searches_confirms_reports_writes_a_fit_config_and_a_rerun_reads_the_search_back(tmp_path, capsys):
    out, best_yaml = tmp_path / "out", tmp_path / "best.yaml"
    settings = {
        "budget": 4,
        "max_epochs": 3,
        "top_k": 2,
        "output": out,
        "logger": "none",
        "model": {"optimizer": "sgd"},
        "data": {"num_samples": 64, "batch_size": 16},
    }
    out.mkdir()
    (out / "search.json").write_text('{"search": "0123456789abcdef"}')  # another search ran here before
    tuning = tune(SPACE, write_config=best_yaml, **settings)
    said = capsys.readouterr().out
    assert "held search 0123456789abcdef: its trials stay in trials.jsonl" in said
    assert any("held search 0123456789abcdef" in note for note in tuning.notes)
    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines].count("trial") == 4 and lines[-1]["kind"] == "done"
    assert tuning.rungs == [1, 3] and sum(t.state == "completed" for t in tuning.trials) == 1
    assert len(tuning.top) == 2 and tuning.statistics is not None and not tuning.statistics.missing
    assert {r.label for r in tuning.records} == {c.label for c in tuning.top} and len(tuning.records) == 6
    # The best configuration's search run is seed 0 of its confirmation: the same training.
    search_best = {t.label: t.best_val_loss for t in tuning.trials}
    seed0 = {r.label: r.best_val_loss for r in tuning.records if r.seed == 0}
    first = tuning.top[0].label
    assert seed0[first] == pytest.approx(search_best[first], rel=1e-4)
    report = (out / "report.md").read_text()
    assert "Indistinguishable" in report and tuning.best.label in report
    assert (out / "lr_curves.png").read_bytes()[:4] == b"\x89PNG"
    written = yaml.safe_load(best_yaml.read_text())
    assert written["model"]["init_args"]["lr"] == pytest.approx(tuning.best.lr, rel=1e-3)
    assert written["model"]["init_args"]["scheduler"]["name"] == tuning.best.schedule["name"]
    assert written["trainer"]["max_epochs"] == 3

    again = tune(SPACE, confirm=False, **settings)
    assert again.resumed and [t.label for t in again.trials] == [t.label for t in tuning.trials]
    assert "held search" not in capsys.readouterr().out  # the same search again: nothing replaced
    assert (out / "trials.jsonl").read_text().count('"done"') == 1


@pytest.mark.slow  # Ray's start and one worker process per trial: ~50 s on two shared cores
def test_tune_on_ray_runs_one_trial_per_configuration_and_writes_the_same_trials(tmp_path, capfd):
    pytest.importorskip("ray.tune", reason="the `ray` extra is not installed: pip install 'lightning-lrsched[ray]'")
    settings = {"budget": 3, "max_epochs": 3, "output": tmp_path, "logger": "none", "confirm": False}
    tuning = tune(
        SPACE, executor="ray", model={"optimizer": "sgd"}, data={"num_samples": 64, "batch_size": 16}, **settings
    )
    lines = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["trial"] * 3 + ["done"]
    assert sorted(t.label for t in tuning.trials) == [line["label"] for line in lines[:3]]
    # ASHA (grace period 1, eta 3, 3 epochs) lets at least one trial run the whole schedule, resolved for 3 epochs.
    completed = [t for t in tuning.trials if t.state == "completed"]
    assert completed and all(len(t.val_curve) == 3 and math.isfinite(t.best_val_loss) for t in completed)
    assert all(t.lr_curve[0][1] == pytest.approx(t.lr, rel=1e-6) for t in completed if t.schedule["name"] == "cosine")
    assert lines[-1]["steps_per_epoch"] == 3 and tuning.best.label in {t.label for t in completed}
    out, err = capfd.readouterr()  # Tune's experiment table and hints stay out of the terminal
    assert "Configuration for experiment" not in out + err and "View detailed results" not in out + err


def test_a_killed_tune_continues_at_its_last_rung_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from lightning_lrsched.tune.search import RungJudge

    settings = {"budget": 4, "max_epochs": 3, "logger": "none", "confirm": False, "model": {"optimizer": "sgd"}}
    settings["data"] = {"num_samples": 64, "batch_size": 16}
    whole = tune(SPACE, output=tmp_path / "whole", **settings)
    save_rung = RungJudge.save_rung

    def save_then_die(self, trainer, epoch):
        save_rung(self, trainer, epoch)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(RungJudge, "save_rung", save_then_die)
        with pytest.raises(Killed):
            tune(SPACE, output=tmp_path / "killed", **settings)
    assert TrialsFile(tmp_path / "killed" / "trials.jsonl").resumable(_search_of(tmp_path / "killed"))
    again = tune(SPACE, output=tmp_path / "killed", **settings)
    assert not again.resumed and [(t.label, t.state, t.epochs) for t in again.trials] == [
        (t.label, t.state, t.epochs) for t in whole.trials
    ]
    for mine, theirs in zip(again.trials, whole.trials, strict=True):
        assert [v for _, v in mine.val_curve] == pytest.approx([v for _, v in theirs.val_curve], abs=1e-5)
    lines = [json.loads(line) for line in (tmp_path / "killed" / "trials.jsonl").read_text().splitlines()]
    assert {line["attempt"] for line in lines} == {1} and [line["kind"] for line in lines].count("done") == 1
    assert not list((tmp_path / "killed" / "rungs").glob("*.ckpt"))  # deleted once the search ended


def _search_of(folder):
    return json.loads((folder / "search.json").read_text())["search"]


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"space": {"schedules": []}}, "space.schedules` is empty"),
        ({"space": {"schedules": ["cosine"], "lr": [1.0, 0.1]}}, "positive and increasing"),
        ({"space": SPACE, "budget": 1, "max_epochs": 9}, "number of rungs"),
        ({"space": {"schedules": [{"name": "step", "T_max": {"low": 1, "high": 5}}]}}, "takes no argument 'T_max'"),
        ({"space": SPACE, "colour": "red"}, "unknown setting"),
    ],
)
def test_lrsched_tune_bad_input_is_one_line_and_exit_2(tmp_path, capsys, config, match):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({"output": str(tmp_path / "out"), **config}))
    with pytest.raises(SystemExit) as stop:
        main(["tune", "--config", str(path)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "out").exists()
