"""`lrsched find` (``find_command``): a `lrsched fit` config in, a table, a figure and a config with the LR out."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from lightning_lrsched.cli import main
from lightning_lrsched.errors import InvalidValue, UsageError
from lightning_lrsched.finder.command import check_arguments, find_command

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def small(example: str, tmp_path: Path, **model_section) -> Path:
    """An example config, with a small data set and a short run."""
    config = yaml.safe_load((CONFIGS / example).read_text())
    config["data"] = {**config["data"], "num_samples": 200, "batch_size": 20}
    config["trainer"] = {**config["trainer"], "max_epochs": 1, "default_root_dir": str(tmp_path / "runs")}
    if model_section:
        config["model"] = model_section
    path = tmp_path / example
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_find_writes_table_figure_json_and_a_config_that_lrsched_fit_trains(tmp_path, capsys):
    config = small("onecycle.yaml", tmp_path)
    found = tmp_path / "out" / "found.yaml"
    outputs = ["-o", str(tmp_path / "lr.png"), "--write-config", str(found), "--json", str(tmp_path / "result.json")]
    find_command(["--config", str(config), "--num-steps", "40", *outputs])
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "result.json").read_text())
    valley = record["suggestions"]["valley"]
    assert "valley" in printed and "lightning" in printed and f"wrote {tmp_path / 'lr.png'}" in printed
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    written = yaml.safe_load(found.read_text())
    original = yaml.safe_load(config.read_text())
    assert written["model"]["scheduler"] == {"name": "onecycle", "max_lr": float(f"{valley:.3g}")}
    assert {k: v for k, v in written.items() if k != "model"} == {k: v for k, v in original.items() if k != "model"}
    assert found.read_text().startswith(f"# {config} with model.scheduler.max_lr = {valley:.3g}, the `valley`")

    from lightning_lrsched.cli import main

    main(["fit", "--config", str(found), "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"])


def test_the_warmup_familys_peak_is_the_optimizers_lr_and_class_path_configs_keep_their_form(tmp_path):
    config = small(
        "warmup_cosine.yaml",
        tmp_path,
        class_path="lightning_lrsched.models.SyntheticClassifier",
        init_args={"optimizer": "adamw", "lr": 0.01, "scheduler": {"name": "warmup_cosine", "warmup": "5%"}},
    )
    found = tmp_path / "found.yaml"
    outputs = ["-o", str(tmp_path / "lr.png"), "--write-config", str(found), "--json", str(tmp_path / "r.json")]
    find_command(["--config", str(config), "--num-steps", "30", "--rule", "lightning", *outputs])
    lightning_lr = json.loads((tmp_path / "r.json").read_text())["suggestions"]["lightning"]
    model = yaml.safe_load(found.read_text())["model"]
    assert model["class_path"] == "lightning_lrsched.models.SyntheticClassifier"
    assert model["init_args"]["lr"] == float(f"{lightning_lr:.3g}")
    assert model["init_args"]["scheduler"] == {"name": "warmup_cosine", "warmup": "5%"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "config", "match"),
    [
        (["--bogus"], None, "unrecognized arguments: --bogus"),
        (["--config", "{tmp}/missing.yaml"], None, "missing.yaml: cannot read it"),
        (["--config", "{config}"], "model: [unclosed", "not valid YAML"),
        (["--config", "{config}"], "- a list", "must be a mapping with model:, data:, trainer:"),
        (["--config", "{config}", "--write-config", "{config}"], "model: {lr: 0.1}", "is the --config itself"),
        (
            ["--config", "{config}"],
            "model: {class_path: nowhere.Model}",
            "model.class_path: cannot import 'nowhere.Model'",
        ),
        (["--config", "{config}"], "model: {class_path: x.Y, lr: 1}", "next to class_path only init_args"),
        (["--config", "{config}"], "data: 3", "data: must be a mapping"),
        (["--config", "{config}"], "model: {lrr: 0.1}", "model: SyntheticClassifier takes no argument 'lrr'; it takes"),
        (["--config", "{config}"], "trainer: {gpus: 2}", "trainer: Trainer takes no argument 'gpus'"),
        # Each was a traceback: a TypeError building the model, or matplotlib / open() after the range test.
        (
            ["--config", "{config}"],
            "model: {class_path: torch.nn.Linear}",
            "model: Linear: missing a required argument: 'in_features': give it in model.init_args",
        ),
        (["-o", "{tmp}/lr.txt"], None, "`-o` must end in an image format matplotlib writes"),
        (["--json", "{tmp}"], None, "is a folder: give a file path"),
        (["--config", "{config}"], "trainer: {accelerator: tpu}", "`trainer.accelerator` 'tpu': not available"),
        (
            ["--config", "{config}"],
            "trainer: {strategy: {class_path: lightning.pytorch.strategies.DDPStrategy}}",
            "trainer.strategy: lrsched find takes plain values",
        ),
        (
            ["--config", "{config}", "--write-config", "{tmp}/out.yaml"],
            "model: {class_path: lightning.pytorch.demos.boring_classes.BoringModel}",
            "BoringModel takes no `lr` argument",
        ),
    ],
)
def test_bad_input_is_a_usage_error_that_names_it(tmp_path, args, config, match):
    path = write(tmp_path, config) if config is not None else tmp_path / "config.yaml"
    argv = [a.format(tmp=tmp_path, config=path) for a in args]
    with pytest.raises(UsageError, match=match.replace("[", r"\[").replace("(", r"\(")):
        find_command(argv)


def test_write_config_keeps_a_users_file_and_rewrites_its_own(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = small("onecycle.yaml", tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text("# my tuned config\nmodel: {lr: 0.3}\n")
    with pytest.raises(UsageError, match=r"mine\.yaml: exists and was not written by `lrsched find`"):
        find_command(["--config", str(config), "--num-steps", "30", "--write-config", str(mine), "-o", "x.png"])
    assert mine.read_text() == "# my tuned config\nmodel: {lr: 0.3}\n"  # kept, and refused before the test ran
    assert not Path("x.png").exists()
    with pytest.raises(UsageError, match="is a folder"):
        find_command(["--config", str(config), "--num-steps", "30", "--write-config", str(tmp_path), "-o", "x.png"])
    found = tmp_path / "found.yaml"
    for _ in range(2):  # a rerun replaces what find wrote
        find_command(["--config", str(config), "--num-steps", "30", "--write-config", str(found), "-o", "lr.png"])
    assert "wrote " + str(found) in capsys.readouterr().out


def test_a_bad_range_from_the_command_line_names_the_arguments(tmp_path):
    with pytest.raises(InvalidValue, match=r"`min_lr` must be below `max_lr`: got min_lr=1\.0, max_lr=0\.1"):
        find_command(["--min-lr", "1", "--max-lr", "0.1", "-o", str(tmp_path / "lr.png")])
    with pytest.raises(InvalidValue, match="`num_steps` must be >= 25"):
        find_command(["--num-steps", "5", "-o", str(tmp_path / "lr.png")])


@pytest.mark.parametrize(
    ("module", "words"),
    [
        ("TwoOptimizers", "returned 2 optimizers (SGD, Adam): find_lr sets the LR of one"),
        ("NoOptimizer", "returned None, which holds no torch optimizer"),
        ("ManualOptimization", "find_lr needs automatic optimization"),
    ],
)
def test_a_module_find_cannot_schedule_is_one_line_and_exit_2(tmp_path, capsys, module, words):
    config = write(tmp_path, f"model: {{class_path: tests.compare.own_models.{module}}}")
    with pytest.raises(SystemExit) as stop:
        main(["find", "--config", str(config), "--num-steps", "30", "-o", str(tmp_path / "lr.png")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrsched find: error: ") and words in err[0], err
    assert not (tmp_path / "lr.png").exists()


def test_lightnings_own_deprecation_of_a_torch_api_is_not_shown(tmp_path, capsys):
    # Lightning 2.6 with torch 2.13 warns on every range test; the user can do nothing about it.
    config = small("onecycle.yaml", tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["find", "--config", str(config), "--num-steps", "30", "-o", str(tmp_path / "lr.png")])
    assert "valley" in capsys.readouterr().out
    assert not [w for w in caught if "LeafSpec" in str(w.message)]


class _TakesAnything:
    def __init__(self, lr: float, **rest) -> None:
        self.lr = lr


def test_a_required_argument_is_asked_for_even_where_a_class_takes_any_keyword():
    # `**rest` takes any unknown name, but not the place of `lr`: a TypeError when the range test builds it.
    with pytest.raises(UsageError, match=r"model: _TakesAnything: missing a required argument: 'lr'"):
        check_arguments(_TakesAnything, {"momentum": 0.9}, "model")
    check_arguments(_TakesAnything, {"lr": 0.1, "momentum": 0.9}, "model")  # both taken
