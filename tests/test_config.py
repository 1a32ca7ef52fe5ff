"""Specification of run configuration: defaults, then a TOML file, then `--set`, every value checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memopainter.cli.main import main
from memopainter.config import REMOVED_KEYS, ConfigError, RunConfig, load_config

pytestmark = pytest.mark.usefixtures("cache_dir")


def write_toml(tmp_path: Path, text: str) -> Path:
    """A settings file holding `text`."""
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


# Defaults and resolution order


def test_defaults_validate_and_match_the_documented_values() -> None:
    config = RunConfig()
    config.validate()
    assert config.data.image_size == 64
    assert config.data.feature == "dist"
    assert config.memory.enabled is True
    assert config.memory.backbone == "mobilenet_v2"
    assert config.train.batch_size == 16
    assert config.train.seed == 0
    assert load_config().to_dict() == config.to_dict()


def test_to_dict_round_trips_through_json() -> None:
    config = load_config(overrides=["train.lr=0.001", "data.feature=rgb"])
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_toml_file_then_set_overrides_resolve_in_that_order(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[train]\nsteps = 10\nlr = 0.001\n\n[data]\nfeature = "rgb"\n')
    config = load_config(path, ["train.steps=20", "memory.top_k=8"])
    assert config.train.steps == 20  # --set wins over the file
    assert config.train.lr == 0.001  # the file wins over the default
    assert config.data.feature == "rgb"
    assert config.memory.top_k == 8
    assert config.train.batch_size == 16  # untouched: the default


def test_a_saved_config_with_removed_options_loads_without_them() -> None:
    saved = RunConfig().override(["train.steps=7"]).to_dict()
    saved["train"] |= {"retrieved_condition": 0.0, "hue_rotation": 0.5}  # a config.json from before
    config = RunConfig.from_dict(json.loads(json.dumps(saved)))
    assert config == RunConfig().override(["train.steps=7"])
    assert not {"retrieved_condition", "hue_rotation"} & set(config.to_dict()["train"])
    assert REMOVED_KEYS == {"train.retrieved_condition", "train.hue_rotation"}
    with pytest.raises(ConfigError, match="unknown key 'train.stpes'"):
        RunConfig.from_dict({"train": {"stpes": 3}})  # any other unknown key is still an error


def test_later_set_overrides_win_over_earlier_ones() -> None:
    assert load_config(overrides=["train.seed=1", "train.seed=2"]).train.seed == 2


def test_an_integer_is_accepted_where_a_number_is_expected() -> None:
    config = load_config(overrides=["train.lr=1", "memory.threshold=2"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.memory.threshold == 2.0


@pytest.mark.parametrize(
    ("assignment", "key", "value"),
    [
        ("data.feature=rgb", "feature", "rgb"),  # a bare word is a string
        ('data.feature="rgb"', "feature", "rgb"),
        ("memory.enabled=false", "enabled", False),
        ("train.lr=5e-5", "lr", 5e-5),
        ("train.device=cuda:1", "device", "cuda:1"),
    ],
)
def test_set_values_are_parsed_as_toml_scalars(assignment: str, key: str, value) -> None:
    config = load_config(overrides=[assignment])
    section = assignment.split(".", 1)[0]
    assert getattr(getattr(config, section), key) == value


# Errors: one line, naming the key


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[trian]\nsteps = 3\n", "[trian]"),
        ("[train]\nstpes = 3\n", "train.stpes"),
        ('[train]\nsteps = "3"\n', "train.steps"),
        ("[train]\nsteps = 2.5\n", "train.steps"),
        ("[memory]\nenabled = 1\n", "memory.enabled"),
        ("[data]\nimage_size = 48\n", "data.image_size"),
        ("[train]\nbatch_size = 0\n", "train.batch_size"),
        ("steps = 3\n", "[steps]"),
        ("train = 5\n", "[train] must be a table"),
        ("[train]\nhue_rotation = 0.5\n", "train.hue_rotation"),  # removed: only saved configs drop it
    ],
)
def test_bad_toml_values_give_a_one_line_error_naming_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = write_toml(tmp_path, toml)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert named in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("train.stpes=3", "train.stpes"),
        ("trian.steps=3", "trian.steps"),
        ("steps=3", "steps"),
        ("train.steps=three", "train.steps"),
        ("train.steps=-1", "train.steps"),
        ("train.lr=0", "train.lr"),
        ("train.beta1=1.0", "train.beta1"),
        ("model.dropout=1", "model.dropout"),
        ("data.image_size=1024", "data.image_size"),
        ("data.feature=lab", "data.feature"),
        ("train.device=tpu", "train.device"),
        ("train.retrieved_condition=0.5", "train.retrieved_condition"),  # measured, lost and removed
        ("train.hue_rotation=0.5", "train.hue_rotation"),
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("memory.margin=-0.1", "memory.margin"),
        ("train.steps", "train.steps"),
        ("train.lr=inf", "train.lr must be a finite number"),
        ("memory.threshold=inf", "memory.threshold must be a finite number"),
        ("loss.bins_adversarial=nan", "loss.bins_adversarial must be a finite number"),
        ("model.bins_temperature=1e-45", "model.bins_temperature"),
        ("train.seed=9300000000000", "train.seed must be between -2**32 and 2**32"),
        ("train.device=cuda:abc", "train.device"),
    ],
)
def test_bad_set_overrides_give_a_one_line_error_naming_the_key(assignment: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(overrides=[assignment])
    message = str(error.value)
    assert named in message
    assert "\n" not in message


def test_out_of_range_errors_say_what_is_expected() -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size must be a power of two from 32 to 512, got 48"):
        load_config(overrides=["data.image_size=48"])


def test_supervised_without_memory_is_refused() -> None:
    with pytest.raises(ConfigError, match="memory.supervised"):
        load_config(overrides=["memory.enabled=false", "memory.supervised=true"])


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_a_file_that_is_not_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_toml(tmp_path, "[train\nsteps = \n"))


# The train command


def test_dry_run_prints_the_resolved_config_and_leaves_run_dir_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path, "[train]\nlr = 0.001\nsteps = 10\n")
    run_dir = tmp_path / "run"
    argv = ["train", str(tmp_path / "data"), "--out", str(run_dir), "--config", str(path), "--steps", "7"]
    status = main([*argv, "--feature", "rgb", "--no-memory", "--set", "model.base_channels=8", "--dry-run"])
    out = capsys.readouterr().out
    assert status == 0
    resolved = json.loads(out)
    assert resolved["train"]["lr"] == 0.001  # from the file
    assert resolved["train"]["steps"] == 7  # the flag wins over the file
    assert resolved["data"]["feature"] == "rgb"
    assert resolved["memory"]["enabled"] is False
    assert resolved["model"]["base_channels"] == 8
    assert (
        resolved
        == load_config(path, ["train.steps=7", "data.feature=rgb"])
        .override(["memory.enabled=false", "model.base_channels=8"])
        .to_dict()
    )
    assert not run_dir.exists()


def test_epochs_flag_turns_steps_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_toml(tmp_path, "[train]\nsteps = 10\n")
    argv = ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(path), "--epochs", "3"]
    assert main([*argv, "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert (resolved["train"]["steps"], resolved["train"]["epochs"]) == (0, 3)


@pytest.mark.parametrize(
    ("assignment", "named"),
    [("train.stpes=3", "train.stpes"), ("train.lr=-1", "train.lr"), ("novalue", "novalue")],
)
def test_bad_set_exits_non_zero_with_a_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], assignment: str, named: str
) -> None:
    run_dir = tmp_path / "run"
    status = main(["train", str(tmp_path), "--out", str(run_dir), "--set", assignment, "--dry-run"])
    captured = capsys.readouterr()
    assert status != 0
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ") and named in lines[0]
    assert not run_dir.exists()


def test_a_bad_config_file_exits_non_zero_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path, "[train]\nbatch_size = 0\n")
    status = main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(path)])
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and "train.batch_size" in err
