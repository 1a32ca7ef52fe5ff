"""Specification of `memopainter evaluate`: metrics against ground truth, retrieval accuracy and the report.

Each test image is colorized exactly as `colorize` does and scored against its original over the opaque
pixels; the JSON result has fixed key names; retrieval accuracy follows the paper (4.1.3); LPIPS runs only
with its weights; the HTML report escapes every name it shows.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import draw_sprite
from PIL import Image

from memopainter.cli import colorize as colorize_cli
from memopainter.cli import evaluate as evaluate_cli
from memopainter.config import RunConfig
from memopainter.data.dataset import image_color_feature
from memopainter.data.images import load_image, pil_to_tensors
from memopainter.evaluation import metrics
from memopainter.evaluation.evaluate import evaluate
from memopainter.evaluation.lpips import MIN_SIDE, load_lpips, lpips_distance
from memopainter.evaluation.report import ReportImages, ReportUnavailable, require_matplotlib, write_report
from memopainter.evaluation.scores import PSNR_CAP, lpips_inputs, measure
from memopainter.inference import Colorizer
from memopainter.inference.fullres import recombine
from memopainter.training.loop import train

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

# Two classes far apart in lightness as well as shape, so that even the tiny random backbone tells their gray
# versions apart: retrieval was right for every test frame with training seeds 0 to 3.
RED = ((120, 10, 20), (250, 220, 60), "ellipse")  # class "red", dark: body, detail stripe, shape
GREEN = ((150, 240, 130), (20, 70, 20), "rectangle")  # class "green", light
TRAIN_SIZES = [(32, 40), (40, 32), (36, 36), (28, 44)]
TEST_SIZES = [(34, 42), (44, 30)]  # frames never trained on

SUMMARY_KEYS = {
    "images",
    "failed",
    "delta_e2000",
    "delta_e2000_best_of_k",
    "psnr",
    "ssim",
    "colorfulness",
    "colorfulness_gt",
    "lpips",
    "lpips_unavailable",
    "retrieval_top1_accuracy",
    "retrieval_images",
    "top_k",
    "psnr_cap",
    "model",
    "test_dir",
    "failures",
}
PER_IMAGE_KEYS = {
    "path",
    "class",
    "delta_e2000",
    "delta_e2000_best_of_k",
    "delta_e2000_per_k",
    "psnr",
    "ssim",
    "colorfulness",
    "colorfulness_gt",
    "lpips",
    "retrieved_class",
    "retrieved_source",
    "slots",
}


def write_classes(
    root: Path, sizes: list[tuple[int, int]], names: tuple[str, str] = ("red", "green")
) -> Path:
    """root/<name>/<name>_<i>.png for the red and the green class; returns root."""
    for name, scheme in zip(names, (RED, GREEN), strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, size in enumerate(sizes):
            draw_sprite(size, *scheme).save(root / name / f"{name}_{i}.png")
    return root


def train_run(root: Path, settings: list[str]) -> Path:
    """Train on the red and green classes under root/data; returns the model file."""
    write_classes(root / "data", TRAIN_SIZES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        train(RunConfig().override(settings), root / "data", root / "run", on_event=lambda _: None)
    return root / "run" / "model.safetensors"


TINY = [
    "memory.backbone=tiny",
    "memory.key_dim=16",
    "model.base_channels=8",
    "model.mlp_hidden=32",
    "data.image_size=32",
    "data.feature=rgb",
    "train.batch_size=4",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A model trained 150 steps on two very different classes, and unseen test frames of both."""
    root = tmp_path_factory.mktemp("evaluate")
    model = train_run(
        root, [*TINY, "train.steps=150", "train.sample_every=150", "train.checkpoint_every=150"]
    )
    test_dir = write_classes(root / "test", TEST_SIZES)
    return SimpleNamespace(
        root=root, model=model, test_dir=test_dir, colorizer=Colorizer.from_pretrained(model)
    )


@pytest.fixture(scope="module")
def no_memory_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the no-memory ablation, 4 steps."""
    root = tmp_path_factory.mktemp("evaluate-no-memory")
    settings = [
        *TINY,
        "memory.enabled=false",
        "train.steps=4",
        "train.sample_every=4",
        "train.checkpoint_every=4",
    ]
    return train_run(root, settings)


@pytest.fixture
def no_lpips_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty MemoPainter weights and torch hub folders, so LPIPS finds no weights by name."""
    monkeypatch.setenv("MEMOPAINTER_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def cli(*args: object) -> int:
    """Run `memopainter evaluate|colorize ...` through their own sub-parsers; returns the exit status."""
    parser = argparse.ArgumentParser(prog="memopainter")
    subparsers = parser.add_subparsers(dest="command")
    evaluate_cli.register(subparsers)
    colorize_cli.register(subparsers)
    parsed = parser.parse_args([str(a) for a in args])
    return parsed.run(parsed)


def png_rgb(path: Path) -> torch.Tensor:
    """The (3, H, W) colors of a PNG file."""
    with Image.open(path) as image:
        return pil_to_tensors(image)[0]


# Metric values flow through.


def test_per_image_metrics_are_those_of_the_colorize_output_against_the_truth(
    trained, tmp_path: Path
) -> None:
    assert (
        cli("colorize", trained.model, trained.test_dir, "--recursive", "-o", tmp_path / "out", "--top-k", 2)
        == 0
    )
    result = evaluate(trained.colorizer, trained.test_dir, top_k=2)
    assert len(result.per_image) == 4 and not result.failures
    for score in result.per_image:
        truth, alpha = load_image(trained.test_dir / score.path)
        stem = tmp_path / "out" / Path(score.path).with_suffix("")
        top1, top2 = png_rgb(Path(f"{stem}.png")), png_rgb(Path(f"{stem}.k2.png"))
        m = score.metrics
        assert m.delta_e2000_per_k == [
            metrics.delta_e2000(top1, truth, alpha),
            metrics.delta_e2000(top2, truth, alpha),
        ]
        assert m.delta_e2000 == m.delta_e2000_per_k[0]
        assert m.delta_e2000_best_of_k == min(m.delta_e2000_per_k)
        assert m.psnr == metrics.psnr(top1, truth, alpha)
        assert m.ssim == metrics.ssim(top1, truth, alpha)
        assert m.colorfulness == metrics.colorfulness(top1, alpha)
        assert m.colorfulness_gt == metrics.colorfulness(truth, alpha)


def test_averages_are_the_means_of_the_per_image_values(trained) -> None:
    result = evaluate(trained.colorizer, trained.test_dir, top_k=2)
    summary = result.summary()
    for name in ("delta_e2000", "delta_e2000_best_of_k", "psnr", "ssim", "colorfulness", "colorfulness_gt"):
        values = [getattr(s.metrics, name) for s in result.per_image]
        assert summary[name] == pytest.approx(sum(values) / len(values), rel=1e-12)
    assert summary["delta_e2000_best_of_k"] <= summary["delta_e2000"]


def test_with_top_k_1_the_best_of_k_is_the_top1_value(trained) -> None:
    result = evaluate(trained.colorizer, trained.test_dir, top_k=1)
    for score in result.per_image:
        assert len(score.metrics.delta_e2000_per_k) == 1
        assert score.metrics.delta_e2000_best_of_k == score.metrics.delta_e2000
        assert len(score.slots) == 1


def test_psnr_of_a_known_error_and_of_identical_images() -> None:
    truth = torch.full((3, 16, 16), 0.5, dtype=torch.float64)
    off = measure(truth, None, [truth + 0.1], None)
    assert off.psnr == pytest.approx(20.0)  # 10 log10(1 / 0.1^2)
    same = measure(truth, None, [truth.clone()], None)
    assert same.psnr == PSNR_CAP == 100.0  # infinite, capped so that it can be averaged and written as JSON
    assert same.delta_e2000 == 0.0 and same.ssim == pytest.approx(1.0)
    assert same.colorfulness == 0.0 and same.colorfulness_gt == 0.0  # gray


def test_ssim_is_null_for_images_too_small_for_its_window() -> None:
    truth = torch.rand(3, 8, 30, generator=torch.Generator().manual_seed(0))
    assert measure(truth, None, [truth.flip(2)], None).ssim is None


def test_transparent_pixels_do_not_count() -> None:
    truth = torch.zeros(3, 16, 16)
    truth[0] = 1.0  # pure red
    pred = truth.clone()
    pred[:, :, 8:] = 0.0  # black, but only where the truth is transparent
    alpha = torch.zeros(16, 16)
    alpha[:, :8] = 0.5  # alpha >= 0.5 is opaque
    scores = measure(truth, alpha, [pred], None)
    assert scores.delta_e2000 == 0.0 and scores.psnr == PSNR_CAP


# Retrieval accuracy (paper 4.1.3).


def test_two_very_different_classes_retrieve_their_own_class(trained) -> None:
    result = evaluate(trained.colorizer, trained.test_dir)
    assert [(s.class_name, s.retrieved_class) for s in result.per_image] == [
        ("green", "green"),
        ("green", "green"),
        ("red", "red"),
        ("red", "red"),
    ]
    assert all(s.retrieved_source.startswith(f"{s.class_name}/") for s in result.per_image)
    summary = result.summary()
    assert summary["retrieval_top1_accuracy"] == 1.0
    assert summary["retrieval_images"] == 4


def test_retrieval_accuracy_is_null_for_unlabelled_test_images(trained, tmp_path: Path) -> None:
    for i, size in enumerate(TEST_SIZES):
        draw_sprite(size, *RED).save(tmp_path / f"frame_{i}.png")
    result = evaluate(trained.colorizer, tmp_path)
    assert result.summary()["retrieval_top1_accuracy"] is None
    assert result.summary()["retrieval_images"] == 0
    assert [s.class_name for s in result.per_image] == [None, None]
    assert [s.retrieved_class for s in result.per_image] == ["red", "red"]  # still reported per image


def test_retrieval_accuracy_is_null_when_no_test_class_is_a_model_class(trained, tmp_path: Path) -> None:
    write_classes(tmp_path, TEST_SIZES[:1], names=("crimson", "lime"))
    assert evaluate(trained.colorizer, tmp_path).summary()["retrieval_top1_accuracy"] is None


def test_test_classes_unknown_to_the_model_do_not_count_towards_accuracy(trained, tmp_path: Path) -> None:
    write_classes(tmp_path, TEST_SIZES[:1], names=("red", "lime"))
    summary = evaluate(trained.colorizer, tmp_path).summary()
    assert summary["retrieval_images"] == 1 and summary["retrieval_top1_accuracy"] == 1.0


def test_a_model_without_memory_has_no_retrieval(no_memory_model: Path, trained) -> None:
    result = evaluate(Colorizer.from_pretrained(no_memory_model), trained.test_dir)
    assert result.summary()["retrieval_top1_accuracy"] is None
    assert all(s.slots is None and s.retrieved_class is None for s in result.per_image)
    with pytest.raises(ValueError, match="top_k must be 1"):
        evaluate(Colorizer.from_pretrained(no_memory_model), trained.test_dir, top_k=2)


# The command and its JSON.


def conditioned_error(
    colorizer, rgb: torch.Tensor, alpha: torch.Tensor | None, feature: torch.Tensor
) -> float:
    """Mean CIEDE2000 of the image colored with the color feature (1, V) given outright."""
    prepared = colorizer.prepare(rgb, alpha)
    ab = colorizer.predict([prepared], conditions=feature).ab[0, 0]
    return metrics.delta_e2000(pil_to_tensors(recombine(prepared, ab))[0], rgb, alpha)


def test_the_oracle_conditions_each_image_on_its_own_true_feature(trained) -> None:
    result = evaluate(trained.colorizer, trained.test_dir, oracle=True)
    assert result.summary()["retrieval_top1_accuracy"] is None  # nothing was retrieved
    for score in result.per_image:
        assert score.slots is None and score.retrieved_class is None
        truth, alpha = load_image(trained.test_dir / score.path)
        feature = image_color_feature(truth, alpha, "rgb")[None]  # (1, 30): the model's rgb feature
        assert score.metrics.delta_e2000 == conditioned_error(trained.colorizer, truth, alpha, feature)


def test_an_image_is_colored_better_from_its_own_feature_than_from_the_other_classs(trained) -> None:
    first, second = (load_image(trained.test_dir / name / f"{name}_0.png") for name in ("red", "green"))
    own = image_color_feature(*first, "rgb")[None]
    other = image_color_feature(*second, "rgb")[None]
    assert conditioned_error(trained.colorizer, *first, own) < conditioned_error(
        trained.colorizer, *first, other
    )


def test_the_oracle_needs_a_memory_model_and_top_1(trained, no_memory_model: Path, capsys) -> None:
    with pytest.raises(ValueError, match="oracle conditions need a model with memory and top_k 1"):
        evaluate(trained.colorizer, trained.test_dir, top_k=2, oracle=True)
    assert cli("evaluate", no_memory_model, trained.test_dir, "--oracle") == 2
    assert "--oracle:" in capsys.readouterr().err
    assert cli("evaluate", trained.model, trained.test_dir, "--oracle") == 0


def test_json_file_holds_the_summary_and_per_image_results_under_fixed_names(
    trained, tmp_path: Path, capsys, no_lpips_weights
) -> None:
    out = tmp_path / "sub" / "eval.json"
    assert cli("evaluate", trained.model, trained.test_dir, "--top-k", 2, "--json", out) == 0
    full = json.loads(out.read_text(encoding="utf-8"))
    printed = json.loads(capsys.readouterr().out)
    assert set(full) == SUMMARY_KEYS | {"per_image"}
    assert printed == {k: v for k, v in full.items() if k != "per_image"}
    assert full["images"] == 4 and full["failed"] == 0 and full["failures"] == []
    assert full["top_k"] == 2 and full["psnr_cap"] == 100.0
    assert full["model"] == str(trained.model) and full["test_dir"] == str(trained.test_dir)
    for name in ("delta_e2000", "delta_e2000_best_of_k", "psnr", "ssim", "colorfulness", "colorfulness_gt"):
        assert isinstance(full[name], float)
    assert full["retrieval_top1_accuracy"] == 1.0
    assert full["lpips"] is None and "alexnet-owt-7be5be79.pth" in full["lpips_unavailable"]
    assert [entry["path"] for entry in full["per_image"]] == [
        "green/green_0.png",
        "green/green_1.png",
        "red/red_0.png",
        "red/red_1.png",
    ]
    for entry in full["per_image"]:
        assert set(entry) == PER_IMAGE_KEYS
        assert entry["class"] == entry["path"].split("/")[0] == entry["retrieved_class"]
        assert isinstance(entry["delta_e2000"], float) and len(entry["delta_e2000_per_k"]) == 2
        assert entry["lpips"] is None
        assert len(entry["slots"]) == 2 and all(isinstance(slot, int) for slot in entry["slots"])


def test_a_missing_test_dir_is_refused_with_one_line_and_exit_1(trained, tmp_path: Path, capsys) -> None:
    assert cli("evaluate", trained.model, tmp_path / "nowhere") == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'nowhere'}: no such folder"


def test_a_test_dir_without_images_is_refused_with_one_line_and_exit_1(
    trained, tmp_path: Path, capsys
) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    assert cli("evaluate", trained.model, tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}: holds no image files"


def test_unreadable_images_are_reported_skipped_and_counted_with_exit_1(
    trained, tmp_path: Path, capsys
) -> None:
    test_dir = write_classes(tmp_path / "test", TEST_SIZES[:1])
    (test_dir / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(test_dir / "invisible.png")
    out = tmp_path / "eval.json"
    assert cli("evaluate", trained.model, test_dir, "--json", out) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert (
        errors[0]
        == f"error: {test_dir / 'invisible.png'}: no opaque pixel (alpha >= 0.5): nothing to compare"
    )
    assert errors[1].startswith(f"error: {test_dir / 'red' / 'broken.png'}: not a recognised image file")
    full = json.loads(out.read_text(encoding="utf-8"))
    assert full["images"] == 2 and full["failed"] == 2
    assert [f["path"] for f in full["failures"]] == ["invisible.png", "red/broken.png"]
    assert json.loads(captured.out)["failed"] == 2


def test_top_k_past_the_written_slots_is_refused_with_exit_2(trained, capsys) -> None:
    assert cli("evaluate", trained.model, trained.test_dir, "--top-k", 1000) == 2
    assert "top_k 1000 is more than the" in capsys.readouterr().err


# LPIPS.


def test_lpips_is_null_with_the_reason_when_its_weights_are_missing(trained, no_lpips_weights) -> None:
    result = evaluate(trained.colorizer, trained.test_dir)
    assert all(s.metrics.lpips is None for s in result.per_image)
    summary = result.summary()
    assert summary["lpips"] is None
    assert summary["lpips_unavailable"].startswith(
        "LPIPS unavailable: AlexNet weights alexnet-owt-7be5be79.pth"
    )


def test_lpips_runs_on_the_colorize_output_composited_on_white(trained, weight_files, tmp_path: Path) -> None:
    assert cli("colorize", trained.model, trained.test_dir, "--recursive", "-o", tmp_path / "out") == 0
    result = evaluate(
        trained.colorizer, trained.test_dir, lpips_alexnet=weight_files[0], lpips_heads=weight_files[1]
    )
    assert result.lpips_unavailable is None
    model = load_lpips(*weight_files)
    for score in result.per_image:
        truth, alpha = load_image(trained.test_dir / score.path)
        top1 = png_rgb((tmp_path / "out" / score.path).with_suffix(".png"))
        assert score.metrics.lpips == pytest.approx(lpips_distance(model, *lpips_inputs(top1, truth, alpha)))
        assert score.metrics.lpips > 0.0
    assert result.summary()["lpips"] == pytest.approx(sum(s.metrics.lpips for s in result.per_image) / 4)


def test_lpips_inputs_are_composited_on_white_and_upscaled_to_its_minimum_side() -> None:
    pred = torch.zeros(3, 20, 40)  # black
    truth = torch.zeros(3, 20, 40)
    alpha = torch.zeros(20, 40)  # all transparent: both become white
    a, b = lpips_inputs(pred, truth, alpha)
    assert a.shape == b.shape == (3, MIN_SIDE, 62)  # shorter side 20 -> 31, aspect kept
    assert torch.allclose(a, torch.ones_like(a)) and torch.allclose(b, torch.ones_like(b))
    big = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(lpips_inputs(big, big, None)[0], big)  # large enough and opaque: untouched


# The report.


def test_the_report_shows_every_image_worst_first_with_plots_and_escaped_names(
    trained, tmp_path: Path
) -> None:
    test_dir = write_classes(tmp_path / "test", TEST_SIZES)
    draw_sprite((30, 38), *RED).save(test_dir / "red" / "a<b>&c.png")
    report, out = tmp_path / "report", tmp_path / "eval.json"
    assert cli("evaluate", trained.model, test_dir, "--top-k", 2, "--report", report, "--json", out) == 0
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "a&lt;b&gt;&amp;c.png" in page and "a<b>&c" not in page
    for plot in ("delta_e2000_histogram.png", "delta_e2000_by_class.png"):
        with Image.open(report / plot) as image:
            assert image.format == "PNG" and image.width > 100
        assert f'src="{plot}"' in page
    images = sorted(p.name for p in (report / "images").iterdir())
    assert len(images) == 5 * 4  # gray, top-1, top-2, truth per image
    assert all(f'src="images/{name}"' in page for name in images)
    per_image = json.loads(out.read_text(encoding="utf-8"))["per_image"]
    worst_first = sorted(per_image, key=lambda entry: -entry["delta_e2000"])
    shown = [page.index(f". {html.escape(entry['path'])}</h3>") for entry in worst_first]
    assert shown == sorted(shown)


def test_a_report_folder_that_is_not_empty_is_refused_before_any_work(
    trained, tmp_path: Path, capsys
) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keep.txt").write_text("mine")
    assert cli("evaluate", trained.model, trained.test_dir, "--report", tmp_path / "report") == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["keep.txt"]


def test_without_matplotlib_the_report_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ReportUnavailable, match=r"pip install 'memopainter\[report\]'"):
        require_matplotlib()


@pytest.mark.parametrize("where", ["a test image", "the model", "inside the test folder"])
def test_json_and_report_never_go_over_or_among_the_inputs(
    trained, tmp_path: Path, capsys, where: str
) -> None:
    test_dir = tmp_path / "test"
    for path in trained.test_dir.rglob("*.png"):
        (test_dir / path.relative_to(trained.test_dir)).parent.mkdir(parents=True, exist_ok=True)
        (test_dir / path.relative_to(trained.test_dir)).write_bytes(path.read_bytes())
    image = sorted(test_dir.rglob("*.png"))[0]
    target = {
        "a test image": image,
        "the model": trained.colorizer.path,
        "inside the test folder": test_dir / "red" / "summary.json",
    }[where]
    before = {p: p.read_bytes() for p in [*test_dir.rglob("*"), trained.colorizer.path] if p.is_file()}
    assert cli("evaluate", trained.model, test_dir, "--json", target) == 2
    assert cli("evaluate", trained.model, test_dir, "--report", test_dir / "report") == 2
    err = capsys.readouterr().err
    assert f"--json {target}: is " in err and "the input" in err
    assert f"--report {test_dir / 'report'}: is inside the input" in err
    assert {p: p.read_bytes() for p in before} == before and not (test_dir / "report").exists()


def test_json_at_or_inside_the_report_folder_is_refused_before_any_work(
    trained, tmp_path: Path, capsys
) -> None:
    report = tmp_path / "report"
    for json_path in (report, report / "evaluation.json"):
        assert cli("evaluate", trained.model, trained.test_dir, "--report", report, "--json", json_path) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: --json {path}: is inside --report {report}, which is replaced whole when written"
        for path in (report, report / "evaluation.json")
    ]
    assert not report.exists()


def test_json_under_a_file_is_refused_before_any_work(trained, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "red.png"
    blocker.write_bytes(b"a file, not a folder")
    assert cli("evaluate", trained.model, trained.test_dir, "--json", blocker / "out.json") == 2
    assert cli("evaluate", trained.model, trained.test_dir, "--report", blocker / "report") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: --json {blocker / 'out.json'}: {blocker} is a file, not a folder",
        f"error: --report {blocker / 'report'}: {blocker} is a file, not a folder",
    ]


def test_a_report_appears_whole_or_not_at_all(trained, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "report"
    cut_short = ReportImages(report)
    evaluate(trained.colorizer, trained.test_dir, on_image=cut_short.add)  # ... and then killed
    assert not report.exists() and any(cut_short.folder.iterdir())
    images = ReportImages(report)  # the next report clears what the killed one left
    result = evaluate(trained.colorizer, trained.test_dir, on_image=images.add)
    index = write_report(report, result, trained.colorizer, images)
    assert index == report / "index.html" and index.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_the_library_refuses_drawings_for_a_model_not_trained_on_line_art(trained, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="was not trained on line art"):
        evaluate(trained.colorizer, trained.test_dir, lineart_dir=tmp_path)


def test_lpips_weights_named_on_the_command_line_must_load_before_any_work(
    trained, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "evaluation.json"
    missing = tmp_path / "nosuch.pth"
    assert cli("evaluate", trained.model, trained.test_dir, "--lpips-alexnet", missing, "--json", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --lpips-alexnet / --lpips-heads: LPIPS unavailable: ")
    assert str(missing) in err
    assert not out.exists()
