"""A model or data class chosen on the command line or in a config gets its own defaults, not the synthetic ones.

jsonargparse keeps a default class's init args that a newly chosen class also accepts (its issue
#460); ``LRSchedCLI`` parses again from the chosen classes' own defaults. Nothing trains here: the
config is printed (``--print_config``) or the classes are built (``run=False``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightning_lrsched.cli import main
from lightning_lrsched.models import DigitsClassifier, DigitsDataModule
from lightning_lrsched.trainer_cli import LRSchedCLI

DIGITS = ["--model", "lightning_lrsched.models.DigitsClassifier", "--data", "lightning_lrsched.models.DigitsDataModule"]


def printed_config(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (None, 0)
    return yaml.safe_load(capsys.readouterr().out)


def test_classes_named_on_the_command_line_keep_their_own_defaults(capsys):
    config = printed_config(capsys, *DIGITS)
    assert config["model"]["init_args"]["lr"] == 0.3  # DigitsClassifier's, not SyntheticClassifier's 0.1
    assert config["model"]["init_args"]["hidden"] == [128]
    assert config["data"]["init_args"]["test_fraction"] == 0.0
    assert "input_dim" not in config["model"]["init_args"]


def test_a_value_given_with_the_class_wins_even_when_it_equals_the_synthetic_default(capsys):
    config = printed_config(capsys, *DIGITS, "--model.lr", "0.1", "--data.test_fraction", "0.1")
    assert config["model"]["init_args"]["lr"] == 0.1
    assert config["model"]["init_args"]["hidden"] == [128]
    assert config["data"]["init_args"]["test_fraction"] == 0.1


def test_a_config_giving_only_class_paths_gets_their_defaults(tmp_path: Path, capsys):
    path = tmp_path / "digits.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "lightning_lrsched.models.DigitsClassifier", "init_args": {"lr": 0.5}},
                "data": {"class_path": "lightning_lrsched.models.DigitsDataModule"},
            }
        )
    )
    config = printed_config(capsys, "--config", str(path))
    assert config["model"]["init_args"]["lr"] == 0.5
    assert config["model"]["init_args"]["hidden"] == [128]
    assert config["data"]["init_args"]["test_fraction"] == 0.0


def test_without_a_class_the_synthetic_model_and_data_keep_their_defaults(capsys):
    config = printed_config(capsys, "--model.lr", "0.2")
    assert config["model"]["class_path"].endswith("SyntheticClassifier")
    assert config["model"]["init_args"]["lr"] == 0.2
    assert config["data"]["init_args"]["test_fraction"] == 0.1


@pytest.mark.parametrize("as_dict", [False, True], ids=["argv", "dict"])
def test_the_built_model_and_data_are_the_chosen_classes_with_their_defaults(as_dict: bool):
    if as_dict:
        args = {"model": {"class_path": DIGITS[1]}, "data": {"class_path": DIGITS[3]}}
    else:
        args = DIGITS
    cli = LRSchedCLI(args=args, run=False)
    assert isinstance(cli.model, DigitsClassifier) and isinstance(cli.datamodule, DigitsDataModule)
    assert cli.model.hparams.lr == 0.3 and list(cli.model.hparams.hidden) == [128]
    assert cli.datamodule.hparams.test_fraction == 0.0
