"""Specification of distributed training (gloo on the CPU): two ranks keep bitwise identical memories, rank 0
writes a checkpoint that loads and colorizes, 2 ranks x 8 images match 1 rank x 16, and a rank that loses
the other exits with a clear error instead of hanging."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from conftest import metric_lines
from PIL import Image

from memopainter.config import RunConfig
from memopainter.core.checkpoint import load_checkpoint
from memopainter.core.model import load_memopainter
from memopainter.inference import Colorizer
from memopainter.memory import ColorMemory
from memopainter.training import distributed
from memopainter.training.loop import train

pytestmark = [
    pytest.mark.usefixtures("cache_dir"),
    pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend"),
]

MEMORY_BUFFERS = ("keys", "values", "ages", "sources", "labels", "filled", "rng_state")
CLASSES = ["knight", "slime", "wizard", "bat", "golem"]  # 3 sprites each, plus one: 16 images
STEPS = 4
# No dropout, so the 1-rank and 2-rank runs differ only where the arithmetic does, not by random masks.
SETTINGS = ["train.steps=4", "model.dropout=0", "model.head=ab"]  # the GAN: D is synchronised too
LAUNCH_TIMEOUT_S = 60


def free_port() -> int:
    """A TCP port nobody listens on right now, for rank 0's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    """The variables torchrun sets for one worker."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",  # as torchrun: one thread per rank, the 2 cores shared by the 2 ranks
    }


def memory_digest(memory: ColorMemory) -> str:
    """sha256 over every buffer of the memory, its random state included."""
    digest = hashlib.sha256()
    for name in MEMORY_BUFFERS:
        digest.update(getattr(memory, name).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def rank_worker(
    rank: int,
    world_size: int,
    port: int,
    config: dict,
    data: str,
    run_dir: str,
    cache: str,
    resume: bool,
    stop_after: int | None,
) -> None:
    """One rank of a spawned run; writes the memory digest after every update to run_dir/digests.<rank>."""
    os.environ.update(rank_env(rank, world_size, port), MEMOPAINTER_CACHE=cache)
    torch.set_num_threads(1)
    digests: list[str] = []
    update = ColorMemory.update

    def recorded(memory: ColorMemory, *args, **kwargs) -> torch.Tensor:
        matched = update(memory, *args, **kwargs)
        digests.append(memory_digest(memory))
        return matched

    ColorMemory.update = recorded
    group = distributed.from_env("cpu", timeout_s=LAUNCH_TIMEOUT_S)
    try:
        train(
            RunConfig.from_dict(config),
            data,
            run_dir,
            resume=resume,
            stop_after=stop_after,
            on_event=lambda _: None,
            group=group,
        )
    finally:
        distributed.cleanup(group)
    Path(run_dir, f"digests.{rank}").write_text(json.dumps(digests), encoding="utf-8")


def spawn_ranks(
    config: RunConfig,
    data: Path,
    run_dir: Path,
    cache: Path,
    resume: bool = False,
    stop_after: int | None = None,
) -> None:
    """Run `rank_worker` on 2 spawned ranks, as torchrun would, and wait for both (or fail on a hang)."""
    args = (2, free_port(), config.to_dict(), str(data), str(run_dir), str(cache), resume, stop_after)
    context = mp.start_processes(rank_worker, args=args, nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2-rank run did not finish in time")


def sixteen_sprites(root: Path, sprite_writer) -> Path:
    """16 sprites of 5 classes: the 15 of the fixtures and a mirrored knight."""
    sprite_writer(root, classes=CLASSES)
    with Image.open(root / "knight" / "knight_0.png") as knight:
        knight.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "knight" / "knight_3.png")
    return root


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings) -> SimpleNamespace:
    """2 spawned ranks x batch 8 and 1 process x batch 16, 4 steps each over the same 16 sprites."""
    root = tmp_path_factory.mktemp("distributed")
    data = sixteen_sprites(root / "data", sprite_writer)
    config = RunConfig().override([*tiny_settings, *SETTINGS])
    run_dir = root / "two"
    spawn_ranks(config.override(["train.batch_size=8"]), data, run_dir, root / "cache")
    single_dir = root / "one"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        single = train(config.override(["train.batch_size=16"]), data, single_dir, on_event=lambda _: None)
    return SimpleNamespace(
        root=root, config=config, dir=run_dir, data=data, single_dir=single_dir, single=single
    )


def test_both_ranks_hold_bitwise_identical_memories_after_every_step(two_ranks: SimpleNamespace) -> None:
    rank0 = json.loads((two_ranks.dir / "digests.0").read_text(encoding="utf-8"))
    rank1 = json.loads((two_ranks.dir / "digests.1").read_text(encoding="utf-8"))
    assert len(rank0) == STEPS  # one memory update per step
    assert rank0 == rank1
    assert len(set(rank0)) == STEPS  # the memory did change at every step: the comparison means something
    model = load_memopainter(two_ranks.dir / "model.safetensors")
    assert memory_digest(model.memory) == rank0[-1]  # and rank 0 saved exactly that memory


def test_rank_zero_alone_writes_a_log_line_per_step_of_the_whole_batch(two_ranks: SimpleNamespace) -> None:
    lines = metric_lines(two_ranks.dir)
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["no_positive"] == 16  # summed over both ranks: an empty memory has no positive at all
    assert sorted(path.name for path in (two_ranks.dir / "samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]


def test_the_checkpoint_written_by_rank_zero_loads_and_colorizes(two_ranks: SimpleNamespace) -> None:
    _, meta = load_checkpoint(two_ranks.dir / "checkpoint.safetensors")
    assert meta["step"] == STEPS
    colorizer = Colorizer.from_pretrained(two_ranks.dir / "model.safetensors")
    (out,) = colorizer(two_ranks.data / "wizard" / "wizard_1.png")
    assert out.size == (60, 90)
    assert out.mode == "RGBA"  # the sprite's transparency is kept


def test_two_ranks_resume_from_rank_zeros_checkpoint_bitwise_equal_to_an_uninterrupted_run(
    two_ranks: SimpleNamespace,
) -> None:
    config = two_ranks.config.override(["train.batch_size=8"])
    run_dir = two_ranks.root / "resumed"
    spawn_ranks(config, two_ranks.data, run_dir, two_ranks.root / "cache", stop_after=3)  # checkpoint at 2
    assert load_checkpoint(run_dir / "checkpoint.safetensors")[1]["step"] == 2
    assert not (run_dir / "model.safetensors").exists()
    spawn_ranks(config, two_ranks.data, run_dir, two_ranks.root / "cache", resume=True)
    resumed, expected = (
        load_checkpoint(run_dir / "model.safetensors")[0],
        load_checkpoint(two_ranks.dir / "model.safetensors")[0],
    )
    assert sorted(resumed) == sorted(expected)
    assert [key for key in expected if not torch.equal(resumed[key], expected[key])] == []
    assert [line["step"] for line in metric_lines(run_dir)] == [1, 2, 3, 4]


def test_two_ranks_of_8_match_one_process_of_16_on_the_same_data_order(two_ranks: SimpleNamespace) -> None:
    two = load_memopainter(two_ranks.dir / "model.safetensors")
    one = load_memopainter(two_ranks.single)
    # The same images, in the same order, reached the memory in both runs: every decision agrees exactly.
    for name in ("values", "ages", "sources", "labels", "filled", "rng_state"):
        assert torch.equal(getattr(two.memory, name), getattr(one.memory, name)), name
    # Not bitwise: DDP averages two half-batch gradients where one process takes one mean over 16, so float
    # sums round differently (measured: 4e-7 at most on the weights, 1e-7 relative on the losses); and the
    # triplet loss is a mean per rank over the queries that have a positive and a negative, equal to the
    # global mean only when both ranks count as many. Keys are sums of queries, so they inherit the drift.
    torch.testing.assert_close(two.memory.keys, one.memory.keys, rtol=0, atol=1e-5)
    for part in ("generator", "discriminator", "query_head"):
        torch.testing.assert_close(
            getattr(two, part).state_dict(), getattr(one, part).state_dict(), rtol=0, atol=1e-5
        )
    lines = zip(metric_lines(two_ranks.dir), metric_lines(two_ranks.single_dir), strict=True)
    for line_two, line_one in lines:
        for term in ("d", "g", "g_adv", "g_l1", "triplet"):
            assert line_two[term] == pytest.approx(line_one[term], rel=1e-5, abs=1e-7), (
                line_one["step"],
                term,
            )
        for count in ("no_positive", "no_negative", "memory_filled"):
            assert line_two[count] == line_one[count]


def test_two_ranks_train_a_line_art_model(tmp_path: Path, sprite_writer, tiny_settings) -> None:
    data = sixteen_sprites(tmp_path / "data", sprite_writer)
    settings = [*tiny_settings, "data.input=lineart", "train.steps=2", "train.batch_size=8"]
    spawn_ranks(RunConfig().override(settings), data, tmp_path / "run", tmp_path / "cache")
    model = load_memopainter(tmp_path / "run" / "model.safetensors")
    assert model.config.data.input == "lineart" and model.generator.lightness
    assert all(line["lightness_l1"] > 0 for line in metric_lines(tmp_path / "run"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killing_one_rank_ends_the_other_with_a_clear_error_instead_of_a_hang(
    tmp_path: Path, sprite_dir: Path, tiny_settings: tuple[str, ...]
) -> None:
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "memopainter", "train", str(sprite_dir), "--out", str(run_dir)]
    for setting in [*tiny_settings, "train.steps=10000", "train.checkpoint_every=10000"]:
        args += ["--set", setting]
    port = free_port()
    logs = [tmp_path / f"rank{rank}.txt" for rank in range(2)]
    processes = []
    for rank, log in enumerate(logs):
        with open(log, "w", encoding="utf-8") as stderr:
            env = {**os.environ, **rank_env(rank, 2, port)}
            processes.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text(encoding="utf-8").count("\n") >= 2):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                pytest.fail(f"the run ended or stalled before the kill:\n{logs[0].read_text()}")
            time.sleep(0.01)
        os.kill(processes[1].pid, signal.SIGKILL)
        status = processes[0].wait(timeout=LAUNCH_TIMEOUT_S)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert status == 1
    errors = [line for line in logs[0].read_text(encoding="utf-8").splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: rank 0 of 2: lost contact with the other ranks at step ")
    assert "Connection" in errors[0]  # the backend's own words follow, first sentence only
    assert not (run_dir / "model.safetensors").exists()


def test_one_process_without_torchrun_variables_is_not_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.from_env("cpu") is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.from_env("cpu") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, r"RANK=2 is outside \[0, WORLD_SIZE=2\)"),
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK is not set; launch several processes with torchrun"),
    ],
    ids=["not-a-number", "rank-too-high", "rank-missing"],
)
def test_a_broken_launch_environment_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(distributed.DistributedError, match=message):
        distributed.from_env("cpu")


def test_a_rank_that_cannot_reach_rank_zero_gives_up_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in rank_env(1, 2, free_port()).items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(distributed.DistributedError) as error:
        distributed.from_env("cpu", timeout_s=1)
    assert time.monotonic() - started < 20
    assert str(error.value).startswith("rank 1 of 2: could not join the other ranks at 127.0.0.1:")
    assert "within 1 s: " in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("batch", "world_size", "expected"),
    [
        (16, 2, [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]),
        (5, 2, [[0, 1, 2], [3, 4, 0]]),  # padded by wrapping to the batch's start, as DistributedSampler
        (1, 3, [[0], [0], [0]]),
    ],
)
def test_a_global_batch_is_split_into_equal_contiguous_chunks_in_rank_order(
    batch: int, world_size: int, expected: list[list[int]]
) -> None:
    chunks = [distributed.Group(rank, rank, world_size).shard(batch).tolist() for rank in range(world_size)]
    assert chunks == expected


def test_each_rank_and_step_gets_its_own_dropout_seed_from_the_run_seed() -> None:
    def draw(rank: int, step: int) -> float:
        distributed.Group(rank, rank, 2).seed(7, step)
        return float(torch.rand(()))

    assert draw(0, 3) == draw(0, 3)
    assert len({draw(0, 3), draw(1, 3), draw(0, 4)}) == 3
