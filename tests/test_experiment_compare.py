"""The comparison experiment: every method trained and evaluated alike on one split, reported in one table."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_NETWORKS, run_experiment, write_split
from PIL import Image

from memopainter.config import RunConfig
from memopainter.core.checkpoint import load_checkpoint
from memopainter.evaluation.scores import Evaluation, ImageMetrics, ImageScore
from memopainter.experiments.compare import GRID_CELL, ComparisonResult, _wrap
from memopainter.experiments.methods import (
    BASELINE,
    METHODS,
    TIMING_FILE,
    MethodResult,
    SharedSettings,
    _quiet,
    method_config,
    training_record,
)
from memopainter.training.events import TrainEvent
from memopainter.training.loop import train


def compare_args(split: Path, out: Path, *extra: str, steps: int = 2) -> list[str]:
    args = ["experiment", "compare", str(split), "--out", str(out), "--steps", str(steps)]
    args += ["--image-size", "32", "--batch-size", "4", "--top-k", "2"]
    for setting in TINY_NETWORKS:
        args += ["--set", setting]
    return args + list(extra)


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One tiny comparison of every method on 3 classes (2 train + 2 test sprites each), shared by tests."""
    root = tmp_path_factory.mktemp("compare")
    cache = pytest.MonkeyPatch()
    cache.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
    split = write_split(root / "split", ["knight", "slime", "wizard"])
    out = root / "out"
    try:
        status = run_experiment(compare_args(split, out))
    finally:
        cache.undo()
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    return SimpleNamespace(root=root, split=split, out=out, status=status, report=report)


def test_every_method_is_trained_and_scored_on_the_same_test_images(compared: SimpleNamespace) -> None:
    assert compared.status == 0
    methods = compared.report["methods"]
    assert [m["method"] for m in methods] == list(METHODS)
    for m in methods:
        assert m["images"] == 6 and m["failed"] == 0
        assert math.isfinite(m["delta_e2000"]) and m["delta_e2000"] >= 0
        assert (compared.out / "runs" / m["method"] / "model.safetensors").is_file()
        assert (compared.out / "runs" / m["method"] / "evaluation.json").is_file()


def test_the_report_records_the_cpu_threads_a_run_repeats_with(compared: SimpleNamespace) -> None:
    threads = torch.get_num_threads()
    assert compared.report["shared"]["cpu_threads"] == threads
    assert f"with {threads} CPU threads" in (compared.out / "compare.md").read_text(encoding="utf-8")


def test_methods_share_steps_seed_size_and_differ_only_in_their_own_settings(
    compared: SimpleNamespace,
) -> None:
    configs = {m["method"]: m["config"] for m in compared.report["methods"]}
    for config in configs.values():
        assert config["train"]["steps"] == 2 and config["train"]["seed"] == 0
        assert config["data"]["image_size"] == 32 and config["train"]["batch_size"] == 4
    assert (
        configs["memopainter-dist"]["memory"]["enabled"]
        and configs["memopainter-dist"]["data"]["feature"] == "dist"
    )
    assert configs["memopainter-rgb"]["data"]["feature"] == "rgb"
    for name in ("res-cgan", "pix2pix", "cic"):
        assert not configs[name]["memory"]["enabled"]
    assert configs["pix2pix"]["model"]["norm"] == "batch"
    assert configs["cic"]["model"]["head"] == "bins"


def test_only_memory_methods_have_a_best_of_k_and_a_retrieval_accuracy(compared: SimpleNamespace) -> None:
    for m in compared.report["methods"]:
        memory = METHODS[m["method"]].alternatives
        assert (m["delta_e2000_best_of_k"] is not None) == memory
        assert (m["retrieval_top1_accuracy"] is not None) == memory
        assert (m["delta_e2000_true_feature"] is not None) == memory
        assert (compared.out / "runs" / m["method"] / "evaluation-true-feature.json").is_file() == memory
        if memory:
            assert m["top_k"] == 2 and m["delta_e2000_best_of_k"] <= m["delta_e2000"] + 1e-9


def test_each_method_is_paired_with_the_no_memory_ablation_image_by_image(compared: SimpleNamespace) -> None:
    by_name = {m["method"]: m for m in compared.report["methods"]}
    assert by_name[BASELINE]["paired_vs_ablation"] is None
    for name, m in by_name.items():
        if name != BASELINE:
            paired = m["paired_vs_ablation"]
            assert paired["images"] == 6
            assert paired["mean"] == pytest.approx(m["delta_e2000"] - by_name[BASELINE]["delta_e2000"])


def test_the_report_is_a_table_a_plot_and_a_grid_of_the_same_images(compared: SimpleNamespace) -> None:
    table = (compared.out / "compare.md").read_text(encoding="utf-8")
    for method in METHODS.values():
        assert f"| {method.label} |" in table
    assert "ImageNet" in table and "memopainter experiment compare" in table
    assert (compared.out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = Image.open(compared.out / "compare_grid.png")
    columns = len(METHODS) + 2  # gray, every method, ground truth
    assert grid.width == columns * GRID_CELL
    header = grid.height - 6 * GRID_CELL  # all six test images: fewer than the grid's eight
    for method in METHODS.values():  # every word of every title is drawn, one 12-px line each
        lines = _wrap(method.label)
        assert " ".join(lines) == method.label and 12 * len(lines) < header < GRID_CELL


def test_a_second_run_with_the_same_settings_reuses_the_trained_models(
    compared: SimpleNamespace, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = compared.root / "again"
    shutil.copytree(compared.out / "runs" / BASELINE, out / "runs" / BASELINE)
    status = run_experiment(compare_args(compared.split, out, "--methods", BASELINE))
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert status == 0
    assert [m["method"] for m in report["methods"]] == ["res-cgan"]
    trained = json.loads((compared.out / "compare.json").read_text(encoding="utf-8"))["methods"]
    first = next(m for m in trained if m["method"] == BASELINE)
    assert report["methods"][0]["train_seconds"] == first["train_seconds"]  # reused: its recorded time
    assert "reusing the finished run" in capsys.readouterr().err


def test_a_reused_run_reports_the_thread_count_it_trained_with(
    compared: SimpleNamespace, cache_dir: Path, tmp_path: Path
) -> None:
    threads = torch.get_num_threads()
    assert all(m["cpu_threads"] == threads for m in compared.report["methods"])
    out = tmp_path / "out"
    run = out / "runs" / BASELINE
    shutil.copytree(compared.out / "runs" / BASELINE, run)
    timing = run / TIMING_FILE
    record = json.loads(timing.read_text(encoding="utf-8"))
    timing.write_text(json.dumps({**record, "cpu_threads": threads + 3}), encoding="utf-8")
    assert run_experiment(compare_args(compared.split, out, "--methods", BASELINE)) == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["methods"][0]["cpu_threads"] == threads + 3
    footer = f"with {threads} CPU threads (other runs: {METHODS[BASELINE].label} {threads + 3})"
    assert footer in (out / "compare.md").read_text(encoding="utf-8")
    timing.write_text(json.dumps({"seconds": record["seconds"]}), encoding="utf-8")  # an older run's record
    assert run_experiment(compare_args(compared.split, out, "--methods", BASELINE)) == 0
    assert f"{METHODS[BASELINE].label} not recorded)" in (out / "compare.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"seconds": 12.5, "cpu_threads": 2}', {"seconds": 12.5, "cpu_threads": 2}),
        ('{"seconds": 3}', {"seconds": 3.0}),  # written before the thread count was
        ('{"seconds": "12", "cpu_threads": "2"}', {}),
        ('{"seconds": NaN, "cpu_threads": 0}', {}),
        ('{"seconds": true, "cpu_threads": true}', {}),
        ('{"seconds": -1, "cpu_threads": 2.0}', {}),
        ("[12.5]", {}),
        ("not json", {}),
    ],
)
def test_a_timing_record_keeps_only_well_formed_values(tmp_path: Path, text: str, expected: dict) -> None:
    (tmp_path / TIMING_FILE).write_text(text, encoding="utf-8")
    assert training_record(tmp_path) == expected


def test_a_run_without_a_timing_record_has_none(tmp_path: Path) -> None:
    assert training_record(tmp_path) == {}


def test_a_run_on_other_images_is_never_reused(
    compared: SimpleNamespace, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = tmp_path / "split"
    shutil.copytree(compared.split, split)
    next((split / "train").rglob("*.png")).unlink()  # the same settings, one training image fewer
    out = tmp_path / "out"
    shutil.copytree(compared.out / "runs" / BASELINE, out / "runs" / BASELINE)
    assert run_experiment(compare_args(split, out, "--methods", BASELINE)) == 0
    assert "reusing the finished run" not in capsys.readouterr().err


def test_an_unreadable_image_that_training_left_out_does_not_prevent_reuse(
    compared: SimpleNamespace, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = tmp_path / "split"
    shutil.copytree(compared.split, split)
    (split / "train" / "knight" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    shutil.copytree(compared.out / "runs" / BASELINE, out / "runs" / BASELINE)
    assert run_experiment(compare_args(split, out, "--methods", BASELINE)) == 0
    assert "reusing the finished run" in capsys.readouterr().err


def test_an_interrupted_run_resumes_and_ends_as_the_uninterrupted_one(
    compared: SimpleNamespace, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--methods", BASELINE, "--set", "train.checkpoint_every=1")
    assert run_experiment(compare_args(compared.split, tmp_path / "reference", *args)) == 0
    uninterrupted = json.loads((tmp_path / "reference" / "compare.json").read_text(encoding="utf-8"))
    run = tmp_path / "out" / "runs" / BASELINE
    config = RunConfig.from_dict(uninterrupted["methods"][0]["config"])
    train(config, compared.split / "train", run, stop_after=1, on_event=lambda _: None)  # Ctrl-C at step 1
    capsys.readouterr()
    assert run_experiment(compare_args(compared.split, tmp_path / "out", *args)) == 0
    assert "resuming the interrupted run" in capsys.readouterr().err
    assert not list(run.parent.glob("*.stale-*"))
    resumed = load_checkpoint(run / "model.safetensors")[0]
    reference = load_checkpoint(tmp_path / "reference" / "runs" / BASELINE / "model.safetensors")[0]
    assert sorted(resumed) == sorted(reference)
    assert all(torch.equal(resumed[key], reference[key]) for key in resumed)
    report = json.loads((tmp_path / "out" / "compare.json").read_text(encoding="utf-8"))
    assert report["methods"][0]["train_seconds"] is None  # the first process's time was never written
    assert report["methods"][0]["delta_e2000"] == uninterrupted["methods"][0]["delta_e2000"]


def test_other_settings_retrain_and_set_the_old_run_aside(compared: SimpleNamespace, cache_dir: Path) -> None:
    out = compared.root / "retrain"
    assert run_experiment(compare_args(compared.split, out, "--methods", "res-cgan", steps=1)) == 0
    assert run_experiment(compare_args(compared.split, out, "--methods", "res-cgan", steps=2)) == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["methods"][0]["train_seconds"] is not None
    assert report["methods"][0]["config"]["train"]["steps"] == 2
    assert len(list((out / "runs").glob("res-cgan.stale-*"))) == 1


def test_method_configs_apply_the_shared_settings_last(tmp_path: Path) -> None:
    shared = SharedSettings(
        steps=7, seed=3, image_size=32, batch_size=2, overrides=("model.base_channels=4",)
    )
    config = method_config("pix2pix", shared)
    assert (config.train.steps, config.train.seed, config.data.image_size) == (7, 3, 32)
    assert config.model.base_channels == 4 and config.model.norm == "batch"
    with pytest.raises(ValueError, match="unknown method 'deoldify'"):
        method_config("deoldify", shared)


def test_a_split_without_a_test_folder_is_refused_naming_it(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = write_split(tmp_path / "split", ["knight"], train=2, test=0)
    assert run_experiment(compare_args(split, tmp_path / "out")) == 1
    assert f"{split}: has no test/ folder" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


def test_a_bad_override_is_refused_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = write_split(tmp_path / "split", ["knight"])
    assert run_experiment(compare_args(split, tmp_path / "out", "--set", "train.lr=-1")) == 2
    assert "train.lr must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def score(path: str, delta: float) -> ImageScore:
    metrics = ImageMetrics([delta], 20.0, 0.9, 10.0, 12.0, None)
    return ImageScore(path, None, metrics, None, None, None)


def test_paired_differences_are_per_image_with_a_t_interval() -> None:
    def result(name: str, deltas: list[float]) -> MethodResult:
        scores = [score(f"{i}.png", d) for i, d in enumerate(deltas)]
        evaluation = Evaluation("m", "t", 1, scores, [], [], None)
        return MethodResult(name, Path(name), 1.0, evaluation, {})

    comparison = ComparisonResult(
        "split",
        SharedSettings(steps=1),
        [result("memopainter-dist", [10.0, 12.0, 8.0]), result(BASELINE, [11.0, 14.0, 8.0])],
    )
    paired = comparison.paired("memopainter-dist")
    # differences -1, -2, 0: mean -1, sd 1, t(0.975, 2) = 4.303
    assert paired["mean"] == pytest.approx(-1.0)
    assert paired["ci_low"] == pytest.approx(-1.0 - 4.303 / math.sqrt(3))
    assert paired["ci_high"] == pytest.approx(-1.0 + 4.303 / math.sqrt(3))
    assert paired["share_better"] == pytest.approx(2 / 3)
    assert comparison.paired(BASELINE) is None


def test_training_progress_is_shown_every_hundred_steps_from_the_events() -> None:
    shown: list[str] = []
    report = _quiet(shown.append)
    report(TrainEvent("message", text="12 images in split/train"))
    for step in range(1, 251):
        report(TrainEvent("step", step, 250, stats={"d": 0.5, "step": step}))
    report(TrainEvent("checkpoint", 250, 250, path=Path("run/checkpoint.safetensors")))
    report(TrainEvent("saved", 250, 250, path=Path("run/model.safetensors")))
    assert shown == [
        "12 images in split/train",
        "step 100/250 d=0.5",
        "step 200/250 d=0.5",
        "step 250/250 d=0.5",
        "model saved to run/model.safetensors",
    ]


def test_methods_can_be_paired_against_any_method(compared: SimpleNamespace) -> None:
    argv = compare_args(compared.split, compared.out, "--methods", "memopainter-dist", "memopainter-bins")
    cache = pytest.MonkeyPatch()
    cache.setenv("MEMOPAINTER_CACHE", str(compared.root / "cache"))
    try:
        assert run_experiment([*argv, "--paired-against", "memopainter-dist"]) == 0  # runs reused
    finally:
        cache.undo()
    methods = json.loads((compared.out / "compare.json").read_text(encoding="utf-8"))["methods"]
    dist, bins = methods
    assert dist["paired"] is None and bins["paired_against"] == "memopainter-dist"
    runs = compared.out / "runs"
    evaluations = [
        json.loads((runs / m / "evaluation.json").read_text())
        for m in ("memopainter-bins", "memopainter-dist")
    ]
    scores = [{s["path"]: s["delta_e2000"] for s in e["per_image"]} for e in evaluations]
    differences = [scores[0][p] - scores[1][p] for p in scores[0]]
    assert bins["paired"]["mean"] == pytest.approx(sum(differences) / len(differences))
    # compare.json keeps each method's per-image errors, so a later run can be paired with this one untrained
    assert bins["per_image_delta_e2000"] == scores[0] and dist["per_image_delta_e2000"] == scores[1]
    assert "minus MemoPainter (dist)'s" in (compared.out / "compare.md").read_text(encoding="utf-8")
