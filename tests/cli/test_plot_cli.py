"""`lrsched plot`: PNGs of one or several schedules, the catalog listing, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
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


def test_plot_list_names_every_schedule(monkeypatch, capsys):
    # 80 columns: what rich uses when the output is not a terminal (a pipe, a file)
    monkeypatch.setenv("COLUMNS", "80")
    main(["plot", "--list"])
    out = capsys.readouterr().out
    names = available_schedules()
    assert len(names) >= 18
    missing = [name for name in names if name not in out]
    assert not missing, f"`plot --list` does not show {missing}"


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
    "warmup longer than the run": (["warmup_cosine", "--warmup", "20", "--steps", "10"], ["warmup"]),
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
