"""Specification of training: a tiny run end to end, its outputs, reproducibility, exact resume after a
kill, the ablation and supervised variants, and checkpoints that load with nothing but the file."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import metric_lines
from PIL import Image
from safetensors.torch import save_file

import memopainter
from memopainter.cli.main import main
from memopainter.config import RunConfig
from memopainter.core.checkpoint import CheckpointError, load_checkpoint
from memopainter.core.model import load_memopainter, predict_color, resolve_model_path, retrieve_conditions
from memopainter.data.descriptors import LIGHTNESS_BINS
from memopainter.memory import ColorMemory
from memopainter.training.events import TextProgress, TrainEvent, describe
from memopainter.training.loop import train

pytestmark = pytest.mark.usefixtures("cache_dir")

SIZE = 32
METRIC_KEYS = {
    "d", "g", "g_adv", "g_l1", "triplet", "memory_hit_rate", "no_positive", "no_negative",
    "images_per_s", "memory_filled", "step", "epoch", "seconds",
}  # fmt: skip


@pytest.fixture
def tiny_config(tiny_settings: tuple[str, ...]) -> RunConfig:
    """This module's runs: the tiny settings with the paper's GAN head, so every part of the loop runs."""
    return RunConfig().override([*tiny_settings, "model.head=ab"])


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings: tuple[str, ...]
) -> SimpleNamespace:
    """One tiny run shared by the tests that only read its outputs: 9 sprites of 3 classes, 4 steps of 4."""
    root = tmp_path_factory.mktemp("run")
    sprite_writer(root / "data")
    config = RunConfig().override([*tiny_settings, "model.head=ab"])  # the GAN: every part of the loop, D too
    messages: list[str] = []
    events: list[TrainEvent] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        text = TextProgress(messages.append, bar=False)
        final = train(config, root / "data", root / "run", on_event=lambda e: (events.append(e), text(e)))
    return SimpleNamespace(dir=root / "run", final=final, config=config, messages=messages, events=events)


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file."""
    return load_checkpoint(path)[0]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys, and every tensor equal in dtype, shape and every bit."""
    assert sorted(a) == sorted(b)
    differing = [key for key in a if a[key].dtype != b[key].dtype or not torch.equal(a[key], b[key])]
    assert differing == []


def cli_args(data: Path, run_dir: Path, settings: Iterable[str], *extra: str) -> list[str]:
    """`memopainter train` arguments with every setting passed as --set."""
    args = ["train", str(data), "--out", str(run_dir), *extra]
    for setting in settings:
        args += ["--set", setting]
    return args


# A tiny run and what it writes


def test_a_tiny_run_writes_config_metrics_samples_and_the_model(run: SimpleNamespace) -> None:
    assert run.final == run.dir / "model.safetensors"
    assert sorted(p.name for p in run.dir.iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "samples",
    ]
    assert json.loads((run.dir / "config.json").read_text(encoding="utf-8")) == run.config.to_dict()
    assert sorted(p.name for p in (run.dir / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]


def test_metrics_log_losses_speed_and_memory_statistics_every_step(run: SimpleNamespace) -> None:
    lines = metric_lines(run.dir)
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert [line["epoch"] for line in lines] == [0, 0, 0, 1]  # 9 images in batches of 4: 3 steps an epoch
    for line in lines:
        assert set(line) == METRIC_KEYS
        assert all(math.isfinite(line[key]) for key in METRIC_KEYS)
        assert line["images_per_s"] > 0 and line["seconds"] > 0
        assert 0.0 <= line["memory_hit_rate"] <= 1.0
        assert 0 <= line["no_positive"] <= 4 and 0 <= line["no_negative"] <= 4
        assert isinstance(line["no_positive"], int) and isinstance(line["no_negative"], int)
    assert lines[0]["no_positive"] == 4  # the memory starts empty: nothing can be a positive
    assert 1 <= lines[-1]["memory_filled"] <= 11  # 1.2 x 9 images, rounded up: 11 slots


def test_a_sample_grid_has_a_row_per_sample_and_five_columns(run: SimpleNamespace) -> None:
    with Image.open(run.dir / "samples" / "step_000004.png") as grid:
        # 8 of the 9 images, each as gray | top-1 | top-2 | top-3 | truth, 32 px apiece.
        assert grid.size == (5 * SIZE, 8 * SIZE)
        assert grid.mode == "RGB"


def test_progress_messages_say_what_is_computed_and_where_the_model_went(run: SimpleNamespace) -> None:
    assert run.messages[0].startswith("9 images in ")
    assert any("color features of 9 images" in m for m in run.messages)
    assert any("tiny features of 9 images" in m for m in run.messages)
    assert run.messages[-1] == f"model saved to {run.final}"


def test_progress_reaches_callers_as_events_and_the_text_is_rendered_from_them(run: SimpleNamespace) -> None:
    kinds = [event.kind for event in run.events]
    assert kinds[0] == "message" and kinds[-1] == "saved"
    assert run.events[-1].path == run.final and run.events[-1].step == 4
    steps = [event for event in run.events if event.kind == "step"]
    assert [(event.step, event.steps) for event in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [event.stats for event in steps] == metric_lines(run.dir)  # each step's metrics line
    files = [event for event in run.events if event.kind in ("sample", "checkpoint")]
    written = [(event.kind, event.step, event.path.name) for event in files]
    assert written == [
        ("sample", 2, "step_000002.png"),
        ("checkpoint", 2, "checkpoint.safetensors"),
        ("sample", 4, "step_000004.png"),
        ("checkpoint", 4, "checkpoint.safetensors"),
    ]
    # The text lines are the events described (steps move a bar instead when stderr is a terminal).
    lines = [describe(event) for event in run.events if event.kind != "step"]
    assert [m for m in run.messages if not m.startswith("step ")] == [line for line in lines if line]


def test_a_step_is_described_on_the_first_every_tenth_and_the_last_step() -> None:
    stats = {"d": 1.23456, "g": 9.0, "g_adv": 0.5, "g_l1": 2.0, "triplet": 0.25, "images_per_s": 80.0}
    shown = [s for s in range(1, 26) if describe(TrainEvent("step", s, 25, stats={**stats, "step": s}))]
    assert shown == [1, 10, 20, 25]
    line = describe(TrainEvent("step", 10, 25, stats=stats))
    assert line == "step 10/25 d=1.23 g_adv=0.5 g_l1=2 triplet=0.25 images_per_s=80"
    assert describe(TrainEvent("warning", text="few images")) == "warning: few images"
    skipped = TrainEvent("skipped", text="empty file (0 bytes)", path=Path("data/a.png"))
    assert describe(skipped) == "skipped unreadable data/a.png: empty file (0 bytes)"
    assert describe(TrainEvent("checkpoint", 2, 25, path=Path("c.safetensors"))) is None


# Checkpoints through load_memopainter


def test_the_final_model_loads_with_nothing_but_the_file(run: SimpleNamespace, tmp_path: Path) -> None:
    alone = tmp_path / "elsewhere" / "painter.safetensors"
    alone.parent.mkdir()
    shutil.copy(run.final, alone)
    model = load_memopainter(alone)
    assert_bitwise_equal(model.tensors(), model_tensors(run.final))
    assert model.config == run.config
    assert model.generator.cond_dim == 313
    assert model.memory.num_filled == metric_lines(run.dir)[-1]["memory_filled"]
    draws = torch.Generator().manual_seed(0)
    features = torch.randn(2, 32 + LIGHTNESS_BINS, generator=draws)  # the tiny backbone's 32, then lightness
    conds, slots = retrieve_conditions(model, features, 3)  # (B, k, 313), (B, k)
    assert conds.shape == (2, 3, 313) and slots.shape == (2, 3)
    ab = predict_color(model, torch.rand(2, 1, SIZE, SIZE, generator=draws), conds[:, 0])[0]
    assert ab.shape == (2, 2, SIZE, SIZE)
    assert float(ab.abs().max()) <= 110.0


def test_a_run_folder_loads_its_final_model(run: SimpleNamespace) -> None:
    model = load_memopainter(run.dir)
    assert model.step == 4
    assert resolve_model_path(run.dir) == run.final  # the final model, not the resumable checkpoint
    assert "optimizers" not in load_checkpoint(run.final)[1]
    assert_bitwise_equal(model.tensors(), model_tensors(run.final))


def test_a_run_folder_without_a_final_model_loads_its_checkpoint(
    run: SimpleNamespace, tmp_path: Path
) -> None:
    shutil.copy(run.dir / "checkpoint.safetensors", tmp_path / "checkpoint.safetensors")
    model = load_memopainter(tmp_path)
    assert model.step == 4
    assert resolve_model_path(tmp_path) == tmp_path / "checkpoint.safetensors"
    _, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["step"] == 4
    assert set(meta["optimizers"]) == {"generator", "discriminator", "query_head"}
    assert_bitwise_equal(model.tensors(), model_tensors(run.final))


def test_the_checkpoint_describes_the_run(run: SimpleNamespace) -> None:
    _, meta = load_checkpoint(run.final)
    assert meta["kind"] == "memopainter-model"
    assert meta["config"] == run.config.to_dict()
    assert meta["config"]["data"]["feature"] == "dist"
    assert meta["memory"]["feature"] == "dist"
    assert meta["memory"]["size"] == 11  # default: 1.2 x 9 images, rounded up
    assert meta["backbone"] == {"name": "tiny", "sha256": None}  # the tiny backbone has no weights file
    assert meta["memopainter_version"] == memopainter.__version__
    assert meta["class_names"] == ["knight", "slime", "wizard"]
    assert meta["source_classes"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert meta["source_paths"][:2] == ["knight/knight_0.png", "knight/knight_1.png"]
    assert meta["generator"]["image_size"] == SIZE and meta["generator"]["base_channels"] == 8
    assert meta["query_head"] == {"descriptor_dim": 32 + LIGHTNESS_BINS, "key_dim": 16}


def test_a_checkpoint_from_another_major_version_is_refused(run: SimpleNamespace, tmp_path: Path) -> None:
    tensors, meta = load_checkpoint(run.final)
    path = tmp_path / "future.safetensors"
    save_file(tensors, path, metadata={"memopainter": json.dumps({**meta, "memopainter_version": "1.0.0"})})
    with pytest.raises(CheckpointError) as error:
        load_memopainter(path)
    message = str(error.value)
    assert message.startswith(f"{path}: written by memopainter 1.0.0 (major 1)")
    assert "reads major 0 checkpoints only" in message


def test_a_checkpoint_from_another_minor_version_loads(run: SimpleNamespace, tmp_path: Path) -> None:
    tensors, meta = load_checkpoint(run.final)
    path = tmp_path / "minor.safetensors"
    save_file(tensors, path, metadata={"memopainter": json.dumps({**meta, "memopainter_version": "0.99.0"})})
    model = load_memopainter(path)
    assert_bitwise_equal(model.tensors(), tensors)


def test_a_checkpoint_whose_config_holds_removed_options_loads(run: SimpleNamespace, tmp_path: Path) -> None:
    tensors, meta = load_checkpoint(run.final)
    meta["config"]["train"] |= {"retrieved_condition": 0.0, "hue_rotation": 0.0}  # as written before
    path = tmp_path / "old.safetensors"
    save_file(tensors, path, metadata={"memopainter": json.dumps(meta)})
    model = load_memopainter(path)
    assert model.config == run.config
    assert_bitwise_equal(model.tensors(), tensors)


@pytest.mark.parametrize("kept", [None, 100, 8], ids=["half", "inside-the-header", "header-length-only"])
def test_a_truncated_checkpoint_is_refused(run: SimpleNamespace, tmp_path: Path, kept: int | None) -> None:
    data = run.final.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2 if kept is None else kept])
    with pytest.raises(CheckpointError) as error:
        load_memopainter(path)
    assert str(error.value).startswith(f"{path}: not a readable safetensors file (truncated or corrupt?)")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "content",
    [random.Random(0).randbytes(4096), b"", b"not a checkpoint\n"],
    ids=["random", "empty", "text"],
)
def test_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_memopainter(path)
    assert str(error.value).startswith(f"{path}: not a readable safetensors file")
    assert "\n" not in str(error.value)


def test_a_safetensors_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a MemoPainter checkpoint"):
        load_memopainter(path)


def test_a_run_folder_without_any_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="holds neither model.safetensors nor checkpoint.safetensors"):
        load_memopainter(tmp_path)


# Reproducibility


def test_same_seed_same_data_on_cpu_gives_bitwise_equal_weights(
    run: SimpleNamespace, tmp_path: Path, sprite_writer, tiny_config: RunConfig
) -> None:
    sprite_writer(tmp_path / "data")  # same content, another place, a fresh feature cache
    again = train(tiny_config, tmp_path / "data", tmp_path / "again", on_event=lambda _: None)
    assert_bitwise_equal(model_tensors(again), model_tensors(run.final))
    other = train(
        tiny_config.override(["train.seed=1"]), tmp_path / "data", tmp_path / "seed1", on_event=lambda _: None
    )
    base, seed1 = model_tensors(run.final), model_tensors(other)
    assert any(not torch.equal(seed1[key], base[key]) for key in base if key.startswith("generator."))


# Few-shot data, the ablation and the supervised memory


def test_five_images_one_per_class_fewer_than_a_batch_train_with_a_warning(
    tmp_path: Path, sprite_writer, tiny_config: RunConfig
) -> None:
    sprite_writer(tmp_path / "few", per_class=1, classes=["bat", "golem", "knight", "slime", "wizard"])
    messages: list[str] = []
    config = tiny_config.override(["train.batch_size=16", "train.steps=3"])
    final = train(
        config, tmp_path / "few", tmp_path / "run", on_event=TextProgress(messages.append, bar=False)
    )
    assert "warning: 5 images, fewer than a batch of 16; batches hold all" in messages
    assert "warning: some classes have a single image; the memory will remember them one-shot" in messages
    assert final.is_file()
    assert [line["step"] for line in metric_lines(tmp_path / "run")] == [1, 2, 3]
    model = load_memopainter(final)
    assert model.class_names == ["bat", "golem", "knight", "slime", "wizard"]
    assert load_checkpoint(final)[1]["memory"]["size"] == model.memory.size == 6  # 1.2 x 5 images
    assert 1 <= model.memory.num_filled <= 5


def test_no_memory_trains_the_ablation_without_memory_or_query_head(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(cli_args(sprite_dir, tmp_path / "run", tiny_settings, "--no-memory", "--paper"))
    assert status == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "run" / "model.safetensors")
    tensors, meta = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert {key.split(".", 1)[0] for key in tensors} == {"generator", "discriminator"}
    assert meta["memory"] is None and meta["query_head"] is None and meta["backbone"] == {}
    assert meta["generator"]["cond_dim"] == 0 and meta["discriminator"]["cond_dim"] == 0
    assert meta["config"]["memory"]["enabled"] is False
    assert (meta["config"]["model"]["head"], meta["config"]["memory"]["descriptors"]) == ("ab", "pooled")
    assert "memory_hit_rate" not in metric_lines(tmp_path / "run")[0]
    model = load_memopainter(tmp_path / "run")
    assert model.memory is None and model.query_head is None
    assert predict_color(model, torch.full((1, 1, SIZE, SIZE), 0.5), None)[0].shape == (1, 2, SIZE, SIZE)
    with pytest.raises(ValueError, match="trained without memory"):
        retrieve_conditions(model, torch.zeros(1, 32), 1)


def test_supervised_memory_matches_by_class_label_and_labels_its_slots(
    tmp_path: Path,
    sprite_dir: Path,
    tiny_settings: tuple[str, ...],
    run: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[torch.Tensor | None] = []
    triplet_terms = ColorMemory.triplet_terms

    def spy(memory, q, v, labels=None):
        given.append(labels)
        return triplet_terms(memory, q, v, labels)

    monkeypatch.setattr(ColorMemory, "triplet_terms", spy)
    assert main(cli_args(sprite_dir, tmp_path / "run", tiny_settings, "--supervised")) == 0
    assert len(given) == 4  # one triplet step per batch
    assert all(labels is not None and set(labels.tolist()) <= {0, 1, 2} for labels in given)
    model = load_memopainter(tmp_path / "run")
    meta = model.meta()
    assert meta["config"]["memory"]["supervised"] is True and meta["memory"]["supervised"] is True
    memory = model.memory
    written = memory.filled.nonzero().squeeze(1)
    assert len(written) >= 1
    classes = torch.tensor(meta["source_classes"])
    assert torch.equal(memory.labels[written], classes[memory.sources[written]])
    assert bool((memory.labels[~memory.filled] == -1).all())
    unsupervised = load_memopainter(run.final)
    assert bool((unsupervised.memory.labels == -1).all())  # labels are kept only when they decide matches


def test_supervised_training_refuses_images_without_a_class(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    shutil.copy(sprite_dir / "knight" / "knight_0.png", sprite_dir / "loose.png")
    config = tiny_config.override(["memory.supervised=true"])
    expected = r"sprites: memory\.supervised needs every image in a class sub-folder; 1 are not"
    with pytest.raises(ValueError, match=expected):
        train(config, sprite_dir, tmp_path / "run", on_event=lambda _: None)


# Resuming after a kill


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path, timeout: int = 60) -> None:
    """Poll `condition` until it holds; fail, showing the process's stderr, if it ends first or hangs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"training ended or stalled before it could be interrupted:\n{log.read_text()}")
        time.sleep(0.005)


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the complete lines in metrics.jsonl so far."""
    try:
        text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in text.splitlines(keepends=True) if line.endswith("\n")]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_resume_after_sigkill_ends_bitwise_equal_to_an_uninterrupted_run(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    steps = 40  # a wide margin: the kill comes one step after the first checkpoint, at step 2
    run_dir = tmp_path / "killed"
    settings = [s for s in tiny_settings if not s.startswith("train.steps")]
    args = cli_args(sprite_dir, run_dir, settings, "--steps", str(steps))
    log = tmp_path / "stderr.txt"
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "memopainter", *args], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        checkpoint = run_dir / "checkpoint.safetensors"
        wait_for(lambda: checkpoint.exists() and max(logged_steps(run_dir), default=0) >= 3, process, log)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "model.safetensors").exists()
    interrupted_at = load_checkpoint(checkpoint)[1]["step"]
    assert 2 <= interrupted_at < steps

    config = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    reference = train(config, sprite_dir, tmp_path / "reference", on_event=lambda _: None)

    # A resume with other settings is refused, and leaves the run as it was.
    assert main([*cli_args(sprite_dir, run_dir, [], "--resume"), "--set", "train.lr=0.1"]) == 1
    assert "written with a different config" in capsys.readouterr().err
    assert main(cli_args(sprite_dir, run_dir, [], "--resume")) == 0

    resumed = model_tensors(run_dir / "model.safetensors")
    buffers = ("keys", "values", "ages", "sources", "labels", "filled", "rng_state")
    assert {f"memory.{name}" for name in buffers} <= set(resumed)
    assert_bitwise_equal(resumed, model_tensors(reference))
    assert logged_steps(run_dir) == list(range(1, steps + 1))  # steps redone after the kill logged once


def test_resume_relogs_steps_after_the_checkpoint_once_and_drops_a_line_cut_short(
    run: SimpleNamespace, tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config, sprite_dir, run_dir, stop_after=3, on_event=lambda _: None)  # checkpoint at step 2
    assert not (run_dir / "model.safetensors").exists()
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as metrics:
        metrics.write('{"triplet": 0.1, "memory_hit')  # what a kill in the middle of a write leaves
    # ... and a kill in the middle of saving the checkpoint or the model: their temp files
    leftovers = [run_dir / ".checkpoint.safetensors.0123456789ab.tmp", run_dir / ".model.safetensors.ab.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a checkpoint")
    events: list[TrainEvent] = []
    final = train(tiny_config, sprite_dir, run_dir, resume=True, on_event=events.append)
    assert [line["step"] for line in metric_lines(run_dir)] == [1, 2, 3, 4]
    assert_bitwise_equal(model_tensors(final), model_tensors(run.final))
    assert not any(leftover.exists() for leftover in leftovers)
    resumed = [event for event in events if event.kind == "resumed"]
    assert [(e.step, e.path) for e in resumed] == [(2, run_dir / "checkpoint.safetensors")]
    assert describe(resumed[0]) == f"resumed from {run_dir / 'checkpoint.safetensors'} at step 2"
    assert [event.step for event in events if event.kind == "step"] == [3, 4]
