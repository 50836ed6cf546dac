"""`lrsched` itself: its overview, unknown commands, `fit --help`, and how errors are told from bugs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lightning_lrsched.cli
import lightning_lrsched.plot_command
from lightning_lrsched.cli import BUG_NOTE, COMMANDS, main
from lightning_lrsched.errors import InvalidValue, UsageError


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"]])
def test_overview_lists_every_command_in_one_line(argv: list[str], capsys):
    main(argv)
    out = capsys.readouterr().out
    assert {"fit", "validate", "test", "plot", "compare"} <= set(COMMANDS)
    for name in COMMANDS:
        assert len([line for line in out.splitlines() if line.startswith(f"  {name} ")]) == 1, name
    # Every line fits an 80-column terminal (the intro and the closing hint broke mid-word there).
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "predict" not in out
    assert "lrsched plot --list" in out


def test_overview_imports_no_lightning():
    code = (
        "import sys; from lightning_lrsched.cli import main; main(['--help']); "
        "loaded = [m for m in ('lightning', 'torch', 'jsonargparse', 'matplotlib') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout


@pytest.mark.parametrize("command", ["fitt", "predict", "--nosuch"])
def test_unknown_command_exits_2_naming_it_and_the_choices(command: str, capsys):
    with pytest.raises(SystemExit) as error:
        main([command, "--trainer.max_epochs", "1"])
    assert error.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(
        f"lrsched: error: unknown command {command!r}: use one of fit, validate, test, plot, find, compare"
    )


def test_fit_help_starts_with_our_options_then_lightnings(capsys):
    with pytest.raises(SystemExit) as error:
        main(["fit", "--help"])
    assert error.value.code == 0
    out = capsys.readouterr().out
    ours, _, stock = out.partition("Every LightningCLI option follows.")
    for text in ("--model.scheduler", "warmup_cosine", "onecycle", "--optimizer", "--lr_scheduler", "--lr_callbacks"):
        assert text in ours, f"{text} is not in the first part of `lrsched fit --help`"
    assert "lrsched plot --list" in ours
    assert max(len(line) for line in ours.splitlines()) <= 80
    assert "--trainer.max_epochs" in stock and "--ckpt_path" in stock, "LightningCLI's own help does not follow"


# -- user errors by type, bugs keep their traceback ------------------------------------------------
def _raise(error: BaseException):
    def run(args):
        raise error

    return run


def _bug_during_bad_input(args):
    try:
        raise InvalidValue("`x` must be > 0: got x=-1")
    except InvalidValue:
        raise ValueError("internal: zip() argument 2 is shorter than argument 1") from None


def _parser_wrapper() -> ValueError:
    """What jsonargparse raises when a class raised while being built: ``ValueError(...) from error``."""
    wrapper = ValueError("Does not validate against any of the Union subtypes")
    wrapper.__cause__ = InvalidValue("`x` must be > 0: got x=-1")
    return wrapper


@pytest.mark.parametrize(
    "raised",
    [InvalidValue("`x` must be > 0: got x=-1"), UsageError("`x` must be > 0: got x=-1"), _parser_wrapper()],
    ids=["InvalidValue raised by a test function", "UsageError", "parser wrapper raised from InvalidValue"],
)
def test_user_errors_are_told_by_type_not_by_where_they_were_raised(raised, monkeypatch, capsys):
    monkeypatch.setattr(lightning_lrsched.plot_command, "plot_command", _raise(raised))
    with pytest.raises(SystemExit) as error:
        main(["plot", "cosine"])
    assert error.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "lrsched plot: error: `x` must be > 0: got x=-1"


@pytest.mark.parametrize(
    "raiser",
    [_raise(ValueError("zip() argument 2 is shorter than argument 1")), _raise(KeyError("lr")), _bug_during_bad_input],
    ids=["ValueError inside the package", "KeyError", "bug while handling bad input"],
)
def test_other_exceptions_keep_their_traceback_and_say_it_is_a_bug(raiser, monkeypatch, capsys):
    monkeypatch.setattr(lightning_lrsched.plot_command, "plot_command", raiser)
    with pytest.raises(Exception) as error:
        main(["plot", "cosine"])
    assert not isinstance(error.value, SystemExit)
    assert BUG_NOTE in getattr(error.value, "__notes__", [])
    assert "error:" not in capsys.readouterr().err


# -- compare: bad input is refused before any run starts ------------------------------------------
BAD_COMPARE = {
    "output is a file": (["--output", "{tmp}/afile"], ["--output", "afile", "a file"]),
    "output under a file": (["--output", "{tmp}/afile/runs"], ["--output", "afile"]),
    "output not writable": (["--output", "/proc/lrsched/runs"], ["--output", "/proc"]),
    "malformed config": (["--config", "{tmp}/bad.yaml"], ["--config", "bad.yaml", "not valid YAML", "line 2"]),
    "non-number option": (["--max-epochs", "abc"], ["--max-epochs", "abc"]),
}


@pytest.mark.parametrize("case", BAD_COMPARE)
def test_bad_compare_input_exits_2_with_one_line_before_any_run(case: str, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    (tmp_path / "bad.yaml").write_text("schedules: [cosine\nmax_epochs: 1\n")
    args, words = BAD_COMPARE[case]
    with pytest.raises(SystemExit) as error:
        main(["compare", "--schedules", "cosine", *[arg.replace("{tmp}", str(tmp_path)) for arg in args]])
    assert error.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("lrsched compare: error: ")
    for word in words:
        assert word in line, f"{word!r} is not named in {line!r}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile", "bad.yaml"], "a refused grid wrote files"
