"""Statistics over seeds: estimates, paired comparisons with the best schedule, and what the report says.

The statistics are pure functions on record lists: no training here, except the check that seed s
gives every schedule the same initial weights and batches (built, not trained).
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
import yaml
from harness import run_record
from rich.console import Console

from lightning_lrsched.cli import main
from lightning_lrsched.compare.grid import RunSpec, class_config
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report import markdown, print_report, write_report
from lightning_lrsched.compare.statistics import MIN_SEEDS, Paired, estimate, paired, seed_statistics
from lightning_lrsched.compare.training import _data, seeded_model
from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.schedules.tutorial import resolve_schedule

T_975 = {2: 4.302652729911275, 3: 3.182446305284263, 4: 2.7764451051977987}
"""Student-t 97.5 % quantiles by degrees of freedom (printed tables): the check does not lean on scipy."""
DIGITS_MODEL = {"class_path": "lightning_lrsched.models.DigitsClassifier", "init_args": {"hidden": [16]}}
DIGITS_DATA = {"class_path": "lightning_lrsched.models.DigitsDataModule", "init_args": {}}


SEED_SHIFT = [0.0, 0.2, -0.15, 0.1]
"""What every schedule shares on a seed (its initial weights and batches): large next to the schedules' gaps."""


def grid(effects: dict[str, list[float]], seeds: int = 4, device: str = "cpu:1") -> list[RunRecord]:
    """Records whose best loss is 0.5 + the seed's shift + the schedule's effect on that seed."""
    return [
        run_record(label, s, 0.5 + SEED_SHIFT[s] + effect[s], device=device)
        for label, effect in effects.items()
        for s in range(seeds)
    ]


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [
        ([1.0, 2.0, 3.0], 2.0, 1.0),
        ([0.3, 0.5, 0.4, 0.6], 0.45, math.sqrt(0.05 / 3)),
        ([0.25, 0.35, 0.3, 0.4, 0.2], 0.3, math.sqrt(0.025 / 4)),
    ],
)
def test_estimate_is_the_mean_sample_std_and_student_t_interval(values, mean, std):
    e = estimate(values)
    half = T_975[len(values) - 1] * std / math.sqrt(len(values))
    assert (e.n, e.mean, e.std) == (len(values), pytest.approx(mean), pytest.approx(std))
    assert (e.low, e.high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_identical_values_have_a_point_interval():
    e = estimate([0.4, 0.4, 0.4])
    assert (e.mean, e.std, e.low, e.high) == (pytest.approx(0.4), 0.0, pytest.approx(0.4), pytest.approx(0.4))


def test_paired_comparison_is_a_t_interval_of_the_seedwise_differences():
    worse = [0.52, 0.75, 0.38, 0.64]
    best = [0.50, 0.70, 0.35, 0.60]
    diffs = np.subtract(worse, best)
    p = paired("step", "cpu:1", "cosine", worse, best)
    half = T_975[3] * diffs.std(ddof=1) / math.sqrt(4)
    assert p.diff == pytest.approx(diffs.mean())
    assert (p.low, p.high) == (pytest.approx(diffs.mean() - half), pytest.approx(diffs.mean() + half))
    assert (p.agree, p.seeds, p.indistinguishable) == (4, 4, False)


def test_an_interval_that_touches_zero_is_indistinguishable():
    # Identical losses on every seed: the interval is the point 0, which it reaches.
    tie = paired("step", "cpu:1", "cosine", [0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (tie.low, tie.high, tie.indistinguishable) == (0.0, 0.0, True)
    assert Paired("step", "cpu:1", "cosine", 0.1, 0.0, 0.2, 3, 3).indistinguishable
    assert not Paired("step", "cpu:1", "cosine", 0.1, 1e-12, 0.2, 3, 3).indistinguishable


def test_a_tied_seed_is_not_counted_as_agreeing():
    """``agree`` counts the seeds on which the best schedule is strictly better."""
    p = paired("step", "cpu:1", "cosine", [0.5, 0.4, 0.6, 0.3], [0.3, 0.4, 0.5, 0.3])
    assert (p.agree, p.seeds) == (2, 4)


def test_a_pair_with_fewer_than_three_shared_seeds_is_not_compared():
    # Both have 3 ok seeds, but only seeds 1 and 2 in common: a paired interval over 2 seeds means nothing.
    records = [run_record("cosine", s, 0.3) for s in (0, 1, 2)] + [run_record("step", s, 0.4) for s in (1, 2, 3)]
    stats = seed_statistics(records)
    assert all(g.enough for g in stats.groups) and stats.best("cpu:1").label == "cosine"
    assert stats.paired == []
    assert stats.verdict("cpu:1").endswith(f"no other schedule has {MIN_SEEDS} seeds to compare with it.")


def test_pairing_finds_a_consistent_gap_that_the_seed_spread_hides():
    records = grid({"cosine": [0.0] * 4, "step": [0.03, 0.05, 0.04, 0.04], "wsd": [0.03, -0.02, 0.01, -0.01]})
    stats = seed_statistics(records)
    groups = {g.label: g for g in stats.groups}
    assert [g.label for g in stats.groups] == ["cosine", "wsd", "step"]  # best first
    # Unpaired, the seed-to-seed spread swamps step's gap: its interval overlaps cosine's ...
    assert groups["step"].metrics["best_val_loss"].low < groups["cosine"].metrics["best_val_loss"].high
    comparisons = {p.label: p for p in stats.paired}
    # ... paired seed by seed, step is worse on every seed and its interval excludes 0.
    assert comparisons["step"].best == "cosine"
    assert (comparisons["step"].agree, comparisons["step"].indistinguishable) == (4, False)
    assert comparisons["wsd"].indistinguishable and comparisons["wsd"].agree == 2
    assert stats.verdict("cpu:1") == (
        "On cpu:1, the best schedule by mean best validation loss is cosine; wsd is indistinguishable from it "
        "(the 95% interval of the paired difference over 4 seeds includes 0); step is worse."
    )


def test_every_device_config_has_its_own_best_and_comparisons():
    records = grid({"cosine": [0.0] * 4, "step": [0.05] * 4}) + grid(
        {"cosine": [0.05] * 4, "step": [0.0] * 4}, device="cpu:2"
    )
    stats = seed_statistics(records)
    assert [(p.label, p.device, p.best) for p in stats.paired] == [
        ("step", "cpu:1", "cosine"),
        ("cosine", "cpu:2", "step"),
    ]
    assert all(p.low == p.high == pytest.approx(0.05) for p in stats.paired)  # the same gap on every seed
    assert "every other schedule is worse" in stats.verdict("cpu:2")


@pytest.mark.parametrize("seeds", [1, 2])
def test_fewer_than_three_seeds_says_why_statistics_are_missing(seeds, tmp_path):
    records = grid({"cosine": [0.0] * 4, "step": [0.05] * 4}, seeds=seeds)
    stats = seed_statistics(records)
    assert not stats.paired and f"at least {MIN_SEEDS} seeds" in stats.missing
    assert f"this grid has {seeds} seed" in stats.missing
    text = markdown(records, [], [], title="t", tolerance=1e-3, wandb_hint=None)
    section = text.split("## Statistics over seeds", 1)[1]
    assert stats.missing in section and "seeds: [0, 1, 2]" in section
    out = io.StringIO()
    print_report(records, [], Console(file=out, width=80))
    assert "Statistics over seeds: Not computed" in out.getvalue()


def test_a_schedule_that_diverged_on_a_seed_has_too_few_seeds_and_is_left_out_of_the_ranking():
    records = grid({"cosine": [0.0] * 3, "step": [0.05] * 3}, seeds=3)
    records += [run_record("onecycle", s, 0.3) for s in range(2)]
    records.append(run_record("onecycle", 2, math.nan, status="diverged", val_curve=[]))
    stats = seed_statistics(records)
    onecycle = next(g for g in stats.groups if g.label == "onecycle")
    assert (onecycle.enough, onecycle.seeds, onecycle.excluded) == (False, (0, 1), 1)
    assert stats.groups[-1] is onecycle and "onecycle" not in {p.label for p in stats.paired}
    text = markdown(records, [], [], title="t", tolerance=1e-3, wandb_hint=None)
    assert "| onecycle | cpu:1 | 2 (1 not ok) | fewer than 3 seeds |" in text


def test_the_report_gives_estimates_paired_table_and_one_verdict_sentence(tmp_path):
    records = grid({"cosine": [0.0] * 4, "step": [0.03, 0.05, 0.04, 0.04], "wsd": [0.03, -0.02, 0.01, -0.01]})
    layout = OutputLayout(tmp_path)
    write_report(records, layout, title="Comparison", tolerance=1e-3)
    text = layout.report_md.read_text()
    section = text.split("## Statistics over seeds", 1)[1].split("\n## ", 1)[0]
    assert "| Scheduler | Device | Seeds | Best val loss | Final val loss | Best val acc | Final val acc |" in section
    cosine = estimate([0.5 + s for s in SEED_SHIFT])
    assert f"| cosine | cpu:1 | 4 | {cosine.mean:.4f} ± {cosine.std:.2g} [{cosine.low:.4f}, {cosine.high:.4f}] |" in (
        section
    )
    assert "| step | cpu:1 | cosine | +0.0400 |" in section and "| 4/4 | worse |" in section
    assert section.count("is indistinguishable from it") == 1
    out = io.StringIO()
    print_report(records, [], Console(file=out, width=80))
    printed = out.getvalue()
    assert all(len(line) <= 80 for line in printed.splitlines())
    assert (
        "Δ vs best" in printed and "95% interval" in printed and "wsd is indistinguishable" in " ".join(printed.split())
    )


def test_the_figure_draws_the_interval_of_the_mean_when_there_are_enough_seeds(tmp_path):
    records = grid({"cosine": [0.0] * 4, "step": [0.05] * 4})
    layout = OutputLayout(tmp_path)
    write_report(records, layout, title="Comparison", tolerance=1e-3)
    image = matplotlib.image.imread(layout.report_png)
    assert image.shape[0] > 100
    from lightning_lrsched.compare.report import figure

    captured = {}
    original = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        captured["figure"] = self
        return original(self, *args, **kwargs)

    matplotlib.figure.Figure.savefig = keep
    try:
        figure(records, tmp_path / "again.png")
    finally:
        matplotlib.figure.Figure.savefig = original
    best_ax = captured["figure"].axes[2]
    assert "95% interval of the mean" in best_ax.get_title()
    cosine = estimate([0.5 + s for s in SEED_SHIFT])
    bars = [seg for c in best_ax.collections for seg in getattr(c, "get_segments", list)()]
    assert any(np.allclose([seg[0][1], seg[1][1]], [cosine.low, cosine.high]) for seg in bars)
    diff_ax = captured["figure"].axes[3]  # the paired differences: step is 0.05 above cosine on every seed
    assert "Paired difference" in diff_ax.get_title()
    assert any(np.allclose(c.get_offsets()[:, 1], 0.05) for c in diff_ax.collections if len(c.get_offsets()) == 4)


def spec(schedule: str, seed: int) -> RunSpec:
    resolved = resolve_schedule(schedule).to_dict()
    return RunSpec(schedule, resolved, "cpu:1", seed, 2, model=DIGITS_MODEL, data=DIGITS_DATA)


def first_epoch(data) -> list[torch.Tensor]:
    data.setup("fit")
    return [y for _, y in data.train_dataloader()]


def test_seed_s_gives_every_schedule_the_same_initial_weights_and_batches():
    step, cosine, other_seed = spec("step", 1), spec("cosine", 1), spec("step", 2)
    weights = [seeded_model(s).state_dict() for s in (step, cosine, other_seed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.equal(weights[0]["net.0.weight"], weights[2]["net.0.weight"])
    batches = [first_epoch(_data(s)) for s in (step, cosine, other_seed)]
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(batches[0], batches[2], strict=True))
    assert _data(step).hparams.seed == 1  # the worker hands the run's seed to a data module that takes one


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"class_path": "lightning_lrsched.models.NoSuchModel"}, "lightning_lrsched.models has no class NoSuchModel"),
        ({"class_path": "nosuch_package.Model"}, "cannot import nosuch_package"),
        ({"class_path": "DigitsClassifier"}, "must be a dotted import path"),
        (
            {"class_path": DIGITS_MODEL["class_path"], "init_args": {"hiddn": [3]}},
            "unexpected keyword argument 'hiddn'",
        ),
        ({"class_path": "torch.nn.Linear", "init_args": {"in_features": 3}}, "missing a required argument: 'out_feat"),
    ],
)
def test_an_unknown_model_class_or_argument_is_refused_before_training(config, message):
    with pytest.raises(InvalidValue, match=message):
        class_config("model", config, DIGITS_MODEL)


class NeedsScheduler:
    def __init__(self, width: int, scheduler: Any) -> None: ...


class NeedsSeed:
    def __init__(self, seed: int) -> None: ...


def test_the_arguments_a_run_passes_itself_are_not_required_in_the_config():
    """The model's ``scheduler`` (the grid's schedule) and the datamodule's ``seed`` come from the run."""
    model = class_config("model", {"class_path": f"{__name__}.NeedsScheduler", "init_args": {"width": 2}}, DIGITS_MODEL)
    assert model["init_args"] == {"width": 2}
    assert class_config("data", {"class_path": f"{__name__}.NeedsSeed"}, DIGITS_MODEL)["init_args"] == {}
    with pytest.raises(InvalidValue, match="for NeedsScheduler: missing a required argument: 'width'"):
        class_config("model", {"class_path": f"{__name__}.NeedsScheduler"}, DIGITS_MODEL)


def test_a_model_in_the_working_directory_is_found_as_the_workers_find_it(tmp_path, monkeypatch):
    """``python -m`` workers import from the directory the grid runs in; a console script's sys.path lacks it."""
    import sys

    (tmp_path / "stats_user_model.py").write_text(
        "from lightning_lrsched.models import DigitsClassifier\n\nclass Mine(DigitsClassifier):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    assert class_config("model", {"class_path": "stats_user_model.Mine"}, DIGITS_MODEL)["class_path"].endswith("Mine")
    assert sys.path == before


def test_a_config_naming_an_unknown_data_module_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"schedules": ["cosine"], "data": {"class_path": "lightning_lrsched.NoSuchData"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--config", str(path), "--output", str(tmp_path / "out"), "--logger", "none"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`data.class_path` 'lightning_lrsched.NoSuchData'" in err
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_the_wandb_summary_run_logs_the_statistics_table(tmp_path):
    import json
    from pathlib import Path

    from lightning_lrsched.compare.grid import RunSettings
    from lightning_lrsched.compare.tracking import STATISTICS_COLUMNS, summary_run

    records = grid({"cosine": [0.0] * 4, "step": [0.05] * 4})
    folder = summary_run(records, RunSettings(output=str(tmp_path), experiment="stats"), OutputLayout(tmp_path))
    (table,) = (Path(folder) / "files" / "media" / "table").glob("statistics_*.table.json")
    logged = json.loads(table.read_text())
    assert logged["columns"] == list(STATISTICS_COLUMNS)
    rows = {row[0]: dict(zip(logged["columns"], row, strict=True)) for row in logged["data"]}
    assert rows["cosine"]["Verdict"] == "best" and rows["cosine"]["Seeds"] == 4
    assert rows["step"]["Verdict"] == "worse" and rows["step"]["Agree"] == 4
    assert rows["step"]["Δ best val loss"] == pytest.approx(0.05)


def test_a_three_seed_grid_reports_its_statistics_end_to_end(tmp_path):
    """Two schedules × 3 seeds, 1 epoch of the synthetic task, stacked: report.md holds the statistics."""
    from lightning_lrsched.compare import compare

    comparison = compare(
        ["step", "cosine"],
        seeds=[0, 1, 2],
        max_epochs=1,
        output=tmp_path,
        logger="none",
        mode="stacked",
        console=Console(file=io.StringIO(), width=80),
    )
    assert comparison.succeeded and len(comparison.records) == 6
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Statistics over seeds", 1)[1]
    stats = seed_statistics(comparison.records)
    best = stats.best("cpu:1")
    assert best is not None and [p.seeds for p in stats.paired] == [3]
    assert f"On cpu:1, the best schedule by mean best validation loss is {best.label}" in section
