"""Specification of what `train` refuses before any work, and what it never loses or mixes up: an existing
run, the data set, a bad length, an unwritable or wrong RUN_DIR, other data on resume, temp files left by a
kill, and the exit status when unreadable images were skipped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from memopainter.cli.main import main
from memopainter.config import RunConfig
from memopainter.core.checkpoint import load_checkpoint
from memopainter.training import loop
from memopainter.training.loop import train
from memopainter.training.run_folder import RunFolderError

pytestmark = pytest.mark.usefixtures("cache_dir")

OLD_RUN = {
    "model.safetensors": b"the old model",
    "checkpoint.safetensors": b"the old checkpoint",
    "config.json": b'{"old": true}\n',
    "metrics.jsonl": b'{"step": 99}\n',
    "samples/step_000099.png": b"an old sample",
}


def cli_args(data: Path, run_dir: Path, settings: Iterable[str], *extra: str) -> list[str]:
    """`memopainter train` arguments with every setting passed as --set."""
    args = ["train", str(data), "--out", str(run_dir), *extra]
    for setting in settings:
        args += ["--set", setting]
    return args


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) by relative path, with its SHA-256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the data or a backbone fails the test: what is checked here must be refused before them."""

    def started(*args, **kwargs):
        raise AssertionError("training started its work (data or backbone loading) before refusing")

    monkeypatch.setattr(loop, "load_training_data", started)
    monkeypatch.setattr(loop, "load_backbone", started)


def one_error_line(captured: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a refused command (nothing on stdout)."""
    out, err = captured.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# An existing run: refused without --resume, replaced whole with --overwrite


@pytest.mark.usefixtures("no_work")
def test_training_into_a_run_folder_is_refused_before_any_work_and_leaves_it_alone(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_files(tmp_path / "run", OLD_RUN)
    before = snapshot(run_dir)
    assert main(cli_args(sprite_dir, run_dir, tiny_settings)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {run_dir}: holds a run already (checkpoint.safetensors, config.json, ")
    assert "pass --resume to continue it or --overwrite" in line
    assert snapshot(run_dir) == before


@pytest.mark.usefixtures("no_work")
def test_a_folder_holding_other_files_is_refused_too_and_an_empty_one_is_not(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = write_files(tmp_path / "notes", {"notes.txt": b"mine"})
    with pytest.raises(RunFolderError, match=r"notes: RUN_DIR is not empty \(notes\.txt\); name a new or"):
        train(tiny_config, sprite_dir, run_dir, on_event=lambda _: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssertionError, match="training started its work"):  # accepted: the work starts
        train(tiny_config, sprite_dir, tmp_path / "empty", on_event=lambda _: None)


def test_the_library_refuses_an_existing_run_unless_overwrite_which_starts_it_over(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = write_files(tmp_path / "run", {**OLD_RUN, "notes.txt": b"not the run's"})
    before = snapshot(run_dir)
    with pytest.raises(ValueError, match="holds a run already"):
        train(tiny_config, sprite_dir, run_dir, on_event=lambda _: None)
    assert snapshot(run_dir) == before
    final = train(tiny_config, sprite_dir, run_dir, on_event=lambda _: None, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "notes.txt",
        "samples",
    ]
    assert (run_dir / "notes.txt").read_bytes() == b"not the run's"  # not a file of the run: kept
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the old run's lines are gone, not mixed in
    assert json.loads((run_dir / "config.json").read_text()) == tiny_config.to_dict()
    assert load_checkpoint(final)[1]["step"] == 4


def test_overwrite_from_the_command_line_replaces_the_run(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_files(tmp_path / "run", OLD_RUN)
    assert main(cli_args(sprite_dir, run_dir, tiny_settings, "--overwrite")) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "model.safetensors")
    assert not (run_dir / "samples" / "step_000099.png").exists()
    assert load_checkpoint(run_dir / "checkpoint.safetensors")[1]["step"] == 4


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_even_load_its_data(
    tmp_path: Path, tiny_config: RunConfig
) -> None:
    run_dir = write_files(tmp_path / "run", OLD_RUN)
    before = snapshot(run_dir)
    junk = write_files(tmp_path / "junk", {"a.png": b"not an image"})
    with pytest.raises(ValueError, match="no readable images"):
        train(tiny_config, junk, run_dir, on_event=lambda _: None, overwrite=True)
    assert snapshot(run_dir) == before


@pytest.mark.usefixtures("no_work")
def test_resume_and_overwrite_together_are_refused(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_files(tmp_path / "run", OLD_RUN)
    before = snapshot(run_dir)
    assert main(cli_args(sprite_dir, run_dir, tiny_settings, "--resume", "--overwrite")) == 2
    assert "--resume continues its run and --overwrite deletes it; pass one" in one_error_line(capsys)
    assert snapshot(run_dir) == before


# RUN_DIR and DATA_DIR kept apart


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("where", ["data", "data/knight/run", "parent"])
def test_a_run_folder_overlapping_the_data_is_refused(
    where: str,
    tmp_path: Path,
    sprite_writer,
    tiny_settings: tuple[str, ...],
    tiny_config: RunConfig,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "project" / "data"
    sprite_writer(data)
    before = snapshot(tmp_path / "project")
    run_dir = tmp_path / "project" if where == "parent" else tmp_path / "project" / where
    if where == "parent":
        expected = f"error: {run_dir}: RUN_DIR holds DATA_DIR {data}; write the run elsewhere"
    else:
        expected = f"error: {run_dir}: RUN_DIR is or lies inside DATA_DIR {data}; write it elsewhere"
    overwrite = ("--overwrite",) if where == "parent" else ()  # the parent holds files: not what is refused
    assert main(cli_args(data, run_dir, tiny_settings, *overwrite)) == 2
    assert one_error_line(capsys) == expected
    with pytest.raises(RunFolderError, match="DATA_DIR"):
        train(tiny_config, data, run_dir, on_event=lambda _: None, overwrite=True)
    assert snapshot(tmp_path / "project") == before  # no samples/ written into the data set


# The length of the run


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("flag", ["--steps", "--epochs"])
def test_a_length_of_zero_is_refused_with_one_line(
    flag: str, tmp_path: Path, sprite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(cli_args(sprite_dir, run_dir, ["memory.backbone=tiny"], flag, "0")) == 2
    assert one_error_line(capsys) == f"error: {flag} must be at least 1, got 0"
    assert not run_dir.exists()


def test_steps_zero_in_a_config_still_means_use_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--set", "train.steps=0", "--dry-run"]
    assert main(argv) == 0
    resolved = json.loads(capsys.readouterr().out)["train"]
    assert (resolved["steps"], resolved["epochs"]) == (0, 30)


# A RUN_DIR that cannot be written: said before the data is loaded


@pytest.mark.usefixtures("no_work")
def test_an_existing_file_as_run_dir_is_refused_with_one_line(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "model.txt"
    file.write_text("mine")
    assert main(cli_args(sprite_dir, file, tiny_settings)) == 2
    assert (
        one_error_line(capsys)
        == f"error: {file}: RUN_DIR exists and is not a folder; name a new or empty folder"
    )
    assert file.read_text() == "mine"


@pytest.mark.usefixtures("no_work")
def test_a_run_dir_that_cannot_be_created_is_refused_before_the_data_is_loaded(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("in the way")
    run_dir = tmp_path / "file" / "run"
    assert main(cli_args(sprite_dir, run_dir, tiny_settings)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {run_dir}: cannot write the run folder (")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
@pytest.mark.usefixtures("no_work")
def test_a_read_only_run_dir_is_refused_before_the_data_is_loaded(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="cannot write the run folder"):
            train(tiny_config, sprite_dir, run_dir, on_event=lambda _: None)
    finally:
        run_dir.chmod(0o755)


# Resuming: the same data, and temp files of a killed save


def test_resuming_on_other_data_names_both_counts_and_leaves_the_run_as_it_was(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config, sprite_dir, run_dir, stop_after=3, on_event=lambda _: None)  # checkpoint at step 2
    before = snapshot(run_dir)
    shutil.copy(sprite_dir / "knight" / "knight_0.png", sprite_dir / "knight" / "knight_9.png")
    assert main(cli_args(sprite_dir, run_dir, [], "--resume")) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {run_dir}: the checkpoint was trained on 9 images, {sprite_dir} has 10; resume with the "
        "same data"
    )
    (sprite_dir / "knight" / "knight_0.png").unlink()  # 9 images again, but not the same ones
    with pytest.raises(ValueError, match=r"trained on other images \(knight/knight_0\.png where .* has "):
        train(tiny_config, sprite_dir, run_dir, resume=True, on_event=lambda _: None)
    assert snapshot(run_dir) == before


def test_resuming_with_fewer_steps_than_the_checkpoint_or_from_a_model_file_is_refused_untouched(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config, sprite_dir, run_dir, stop_after=3, on_event=lambda _: None)  # checkpoint at step 2
    before = snapshot(run_dir)
    shorter = RunConfig.from_dict(
        {**tiny_config.to_dict(), "train": {**tiny_config.to_dict()["train"], "steps": 1}}
    )
    with pytest.raises(ValueError, match=r"at step 2, past the 1 steps asked for; resume with at least 2"):
        train(shorter, sprite_dir, run_dir, resume=True, on_event=lambda _: None)
    assert snapshot(run_dir) == before
    finished = tmp_path / "finished"
    train(tiny_config, sprite_dir, finished, on_event=lambda _: None)
    shutil.copy(finished / "model.safetensors", finished / "checkpoint.safetensors")
    with pytest.raises(ValueError, match="not a resumable checkpoint"):
        train(tiny_config, sprite_dir, finished, resume=True, on_event=lambda _: None)


def test_the_next_save_of_a_file_removes_the_temp_files_a_kill_left_of_it(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = tmp_path / "run"
    # Leftovers alone do not make a folder a run: a fresh run starts there and its saves clear them.
    fresh = [run_dir / ".checkpoint.safetensors.0123456789ab.tmp", run_dir / ".model.safetensors.ba98.tmp"]
    write_files(run_dir, {p.name: b"half a file" for p in fresh})
    train(tiny_config, sprite_dir, run_dir, stop_after=3, on_event=lambda _: None)  # checkpoint at step 2
    assert not any(p.exists() for p in fresh[:1])
    # A kill while the grid of step 4 was written; the resumed run writes it again, and clears its leftover.
    sample = run_dir / "samples" / ".step_000004.png.0123456789ab.tmp"
    sample.write_bytes(b"half a png")
    train(tiny_config, sprite_dir, run_dir, resume=True, on_event=lambda _: None)
    assert not sample.exists() and not fresh[1].exists()
    assert [p.name for p in run_dir.rglob(".*")] == []


# Unreadable images: listed, and exit 1 unless --skip-bad


def test_unreadable_images_are_listed_and_make_train_exit_1_unless_skip_bad(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    (sprite_dir / "knight" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (sprite_dir / "slime" / "empty.png").write_bytes(b"")
    assert main(cli_args(sprite_dir, tmp_path / "strict", tiny_settings)) == 1
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "strict" / "model.safetensors")  # trained without them all the same
    skipped = [line for line in err.splitlines() if line.startswith("skipped unreadable ")]
    assert len(skipped) == 2
    assert skipped[0].startswith(f"skipped unreadable {sprite_dir / 'knight' / 'broken.png'}: ")
    assert skipped[1] == f"skipped unreadable {sprite_dir / 'slime' / 'empty.png'}: empty file (0 bytes)"
    assert err.splitlines()[-1] == (
        f"error: trained without 2 unreadable images of {sprite_dir} (listed above); pass --skip-bad to "
        "accept that with exit status 0"
    )
    assert main(cli_args(sprite_dir, tmp_path / "lenient", tiny_settings, "--skip-bad")) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "lenient" / "model.safetensors")
    assert [line for line in err.splitlines() if line.startswith("skipped unreadable ")] == skipped
    assert not any(line.startswith("error") for line in err.splitlines())
