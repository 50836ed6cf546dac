"""`lrsched plot`: PNGs of one or several schedules, the catalog listing, and one-line errors."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.image
import matplotlib.text
import numpy as np
import pytest

import lightning_lrsched.plotting
from lightning_lrsched.cli import main
from lightning_lrsched.schedules import available_schedules, get_schedule, preview


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each saved figure showed: x label and the (x, y) data of every curve."""
    figures: list[dict[str, Any]] = []
    save = lightning_lrsched.plotting.save_figure

    def spy(figure, path):
        ax = figure.axes[0]
        figures.append(
            {
                "xlabel": ax.get_xlabel(),
                "curves": [(np.asarray(line.get_xdata()), np.asarray(line.get_ydata())) for line in ax.get_lines()],
                "labels": [line.get_label() for line in ax.get_lines()],
                "texts": [text.get_text() for text in figure.findobj(matplotlib.text.Text)],
            }
        )
        return save(figure, path)

    monkeypatch.setattr(lightning_lrsched.plotting, "save_figure", spy)
    return figures


def assert_png_drawn(path: Path) -> None:
    image = matplotlib.image.imread(path)
    # figsize (8, 4.5) at 120 dpi, RGBA
    assert image.shape == (540, 960, 4)
    rgb = image[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 10, "the image is (nearly) blank"
    assert (rgb < 0.5).any(), "nothing dark was drawn"


def test_plot_one_schedule_writes_png(tmp_path: Path, monkeypatch, capsys, drawn):
    monkeypatch.chdir(tmp_path)
    main(["plot", "cosine", "--T_max", "50", "--steps", "100", "-o", "lr.png"])
    assert "lr.png" in capsys.readouterr().out
    assert_png_drawn(tmp_path / "lr.png")
    (figure,) = drawn
    assert figure["xlabel"] == "optimizer step"
    ((x, y),) = figure["curves"]
    np.testing.assert_array_equal(x, np.arange(100))
    np.testing.assert_allclose(y, preview(get_schedule("cosine", T_max=50), 100), rtol=1e-12)


def test_plot_default_output_is_lr_png_in_cwd(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["plot", "step", "--step_size", "3", "--steps", "10"])
    assert_png_drawn(tmp_path / "lr.png")


def test_plot_several_schedules_in_epochs(tmp_path: Path, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "figures" / "many.png"
    main(
        [
            "plot",
            *("cosine", "--T_max", "5"),
            *("step", "--step_size", "2", "--gamma", "0.5"),
            *("warmup_cosine", "--warmup", "10%"),
            *("--steps", "100", "--steps-per-epoch", "10", "--base-lr", "0.1", "-o", str(out)),
        ]
    )
    assert_png_drawn(out)
    (figure,) = drawn
    assert figure["xlabel"] == "epoch"
    assert len(figure["curves"]) == 3
    assert [label.split("(")[0] for label in figure["labels"]] == ["cosine", "step", "warmup_cosine"]
    schedules = [
        get_schedule("cosine", T_max=5),
        get_schedule("step", step_size=2, gamma=0.5),
        get_schedule("warmup_cosine", warmup="10%"),
    ]
    for (x, y), schedule in zip(figure["curves"], schedules, strict=True):
        np.testing.assert_allclose(x, np.arange(100) / 10)
        np.testing.assert_allclose(y, preview(schedule, 100, base_lr=0.1, steps_per_epoch=10), rtol=1e-12)
    # the epoch schedules change only at epoch boundaries: step halves at epoch 2
    step_lr = figure["curves"][1][1]
    assert step_lr[19] == pytest.approx(0.1) and step_lr[20] == pytest.approx(0.05)


def test_plot_x_steps_overrides_epochs(tmp_path: Path, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    main(["plot", "exponential", "--gamma", "0.9", "--steps", "20", "--steps-per-epoch", "4", "--x", "steps"])
    (figure,) = drawn
    assert figure["xlabel"] == "optimizer step"
    np.testing.assert_array_equal(figure["curves"][0][0], np.arange(20))


def test_plot_list_shows_every_schedule_default_and_tutorial_value_within_80_columns(monkeypatch, capsys):
    from lightning_lrsched.schedules.curve import CATALOG
    from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

    # 80 columns: what a pipe or a file gets
    monkeypatch.setenv("COLUMNS", "80")
    main(["plot", "--list"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    flat = " ".join(out.split())
    assert set(CATALOG) == set(available_schedules())
    for name, entry in CATALOG.items():
        assert f"{name} ({'the parts' + chr(39) + ' interval' if entry.parts else entry.interval})" in flat
        for key, default in entry.parameters().items():
            if default is not inspect.Parameter.empty:
                assert " ".join(f"{key}={default!r}".split()) in flat, f"{name}: default of {key} not shown"
    for name, params in TUTORIAL_SCHEDULES.items():
        for key, value in params.items():
            shown = " ".join(f"{key}={value!r}".split())
            tutorial_part = flat.split(f"tutorial (the bare name {name!r}", 1)[1].split(")", 1)[1][:200]
            assert shown in tutorial_part, f"tutorial value {shown} of {name} not shown"


def test_plot_plateau_says_reductions_depend_on_the_metric(tmp_path: Path, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    main(["plot", "plateau", "cosine", "--steps", "40", "--steps-per-epoch", "4", "-o", "plateau.png"])
    assert_png_drawn(tmp_path / "plateau.png")
    (figure,) = drawn
    notes = [text for text in figure["texts"] if "plateau" in text and "metric" in text]
    assert notes, figure["texts"]


def test_plot_without_steps_per_epoch_says_an_epoch_is_one_step(tmp_path: Path, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    main(["plot", "cosine", "--T_max", "50", "step", "--step_size", "10", "--steps", "100", "-o", "lr.png"])
    (figure,) = drawn
    assert any("an epoch" in text and "one optimizer step" in text for text in figure["texts"]), figure["texts"]
    main(["plot", "warmup_cosine", "--warmup", "10", "--steps", "100", "-o", "lr.png"])
    assert not any("an epoch" in text for text in drawn[1]["texts"]), "a step schedule has no epochs to explain"


def test_plotting_leaves_the_matplotlib_backend_alone():
    code = (
        "import matplotlib; matplotlib.use('svg'); import lightning_lrsched.plotting; print(matplotlib.get_backend())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"


# -- bad input --------------------------------------------------------------------------------------
BAD_PLOT = {
    "unknown schedule": (["nosuch", "--steps", "10"], ["nosuch", "schedule"]),
    "no --steps": (["cosine"], ["--steps"]),
    "bad --steps": (["cosine", "--steps", "0"], ["--steps"]),
    "no schedule": (["--steps", "10"], ["schedule"]),
    "bad schedule argument": (["step", "--step_size", "2", "--gamma", "-1", "--steps", "10"], ["gamma"]),
    "unknown schedule argument": (["step", "--step_size", "2", "--gama", "0.5", "--steps", "10"], ["gama"]),
    "argument before any schedule": (["--T_max", "5", "cosine", "--steps", "10"], ["--T_max"]),
    "argument without value": (["cosine", "--steps", "10", "--T_max"], ["--T_max"]),
    "value missing before an option": (["step", "--step_size", "--steps", "10"], ["--step_size needs a value"]),
    "a period of 0": (["cosine", "--T_max", "0", "--steps", "10"], ["`T_max` must be >= 1: got T_max=0"]),
    "more steps than a preview holds": (["cosine", "--steps", "100000000"], ["--steps must be at most 10,000,000"]),
    "warmup longer than the run": (["warmup_cosine", "--warmup", "20", "--steps", "10"], ["warmup"]),
    "typo in a global option": (["cosine", "--stepz", "10"], ["stepz", "T_max"]),
    "epochs without --steps-per-epoch": (["cyclic", "--steps", "100"], ["step_size_up", "2ep", "--steps-per-epoch"]),
    "unknown image format": (["cosine", "--steps", "10", "-o", "lr.xyz"], ["-o", "lr.xyz", ".png", ".svg"]),
    "no image suffix": (["cosine", "--steps", "10", "-o", "."], ["-o", ".png"]),
    "output under a file": (["cosine", "--steps", "10", "-o", "/proc/version/lr.png"], ["-o", "/proc/version"]),
    "output not writable": (["cosine", "--steps", "10", "-o", "/proc/lrsched/lr.png"], ["-o", "/proc/lrsched"]),
    "bad --x": (["cosine", "--steps", "10", "--x", "foo"], ["--x", "foo", "steps"]),
    "more steps than a figure holds": (["cosine", "--steps", "100000000"], ["--steps", "at most 10,000,000"]),
}


@pytest.mark.parametrize("case", BAD_PLOT)
def test_bad_plot_input_exits_2_with_one_line(case: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args, words = BAD_PLOT[case]
    with pytest.raises(SystemExit) as error:
        main(["plot", *args])
    assert error.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("lrsched plot: error: ")
    for word in words:
        assert word in lines[0], f"{word!r} is not named in {lines[0]!r}"
    assert not list(tmp_path.iterdir()), "a failed plot wrote a file"
