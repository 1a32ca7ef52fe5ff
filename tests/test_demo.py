"""The demo pipeline end to end on a tiny synthetic set: split, train, colorize top-3, evaluate, report."""

import json

import torch

from memopainter.cli.main import main
from memopainter.core.checkpoint import load_checkpoint
from memopainter.core.model import MODEL_FILE
from memopainter.demo import run_demo


def test_demo_runs_end_to_end_and_reuses_its_model(tmp_path, sprite_dir, cache_dir, tiny_settings):
    out = tmp_path / "demo"
    messages = []
    result = run_demo(out, sprite_dir, list(tiny_settings), say=messages.append, shots=1)

    assert result.report == out / "report" / "index.html"
    html = result.report.read_text(encoding="utf-8")
    assert "ground truth" in html and "top-3" in html
    metrics = json.loads((out / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["images"] == 6  # 3 classes x (3 images - 1 shot)
    assert metrics["top_k"] == 3
    assert 0 <= metrics["delta_e2000_best_of_k"] <= metrics["delta_e2000"]
    assert (out / "split-1shot" / "train").is_dir() and (out / "run" / MODEL_FILE).is_file()

    model_time = (out / "run" / MODEL_FILE).stat().st_mtime_ns
    messages.clear()
    run_demo(out, sprite_dir, list(tiny_settings), say=messages.append, shots=1)
    assert any("reusing the model" in m for m in messages)
    assert (out / "run" / MODEL_FILE).stat().st_mtime_ns == model_time


def test_demo_resumes_its_interrupted_training(tmp_path, sprite_dir, cache_dir, tiny_settings):
    out = tmp_path / "demo"
    run_demo(out, sprite_dir, list(tiny_settings), say=lambda _: None, shots=1)
    finished = load_checkpoint(out / "run" / MODEL_FILE)[0]
    logged = (out / "run" / "metrics.jsonl").read_text(encoding="utf-8")
    (out / "run" / MODEL_FILE).unlink()  # killed between its last checkpoint and the final model
    messages = []
    run_demo(out, sprite_dir, list(tiny_settings), say=messages.append, shots=1)
    assert any("resuming the interrupted training" in m for m in messages)
    assert (out / "run" / "metrics.jsonl").read_text(encoding="utf-8") == logged  # nothing retrained
    resumed = load_checkpoint(out / "run" / MODEL_FILE)[0]
    assert sorted(resumed) == sorted(finished)
    assert all(torch.equal(resumed[key], finished[key]) for key in resumed)


def test_demo_in_line_art_mode_writes_its_own_run_and_report(tmp_path, sprite_dir, cache_dir, tiny_settings):
    out = tmp_path / "demo"
    result = run_demo(out, sprite_dir, list(tiny_settings), say=lambda _: None, shots=1, input_mode="lineart")
    assert result.report == out / "report-lineart" / "index.html"
    assert result.summary["images"] == 6
    model = json.loads((out / "run-lineart" / "config.json").read_text(encoding="utf-8"))
    assert model["data"]["input"] == "lineart"
    assert not (out / "run").exists()


def test_demo_command_reports_a_missing_dataset_in_one_line(tmp_path, cache_dir, capsys):
    status = main(["demo", "--out", str(tmp_path / "demo"), "--data", str(tmp_path / "nowhere")])
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nowhere" in errors[0]


def test_demo_refuses_an_out_it_did_not_write_before_any_work(tmp_path, sprite_dir, cache_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["demo", "--out", str(blocker), "--data", str(sprite_dir)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {blocker}: OUT exists and is not a folder; name a folder for the demo"
    ]
    for folder, mark in (("run", "config.json"), ("report", "index.html")):
        out = tmp_path / f"with-{folder}"
        (out / folder).mkdir(parents=True)
        (out / folder / "precious.txt").write_text("mine")
        assert main(["demo", "--out", str(out), "--data", str(sprite_dir)]) == 1
        err = capsys.readouterr().err
        assert f"{out / folder}: not a {folder} the demo wrote (no {mark})" in err
        assert sorted(p.name for p in out.rglob("*")) == sorted([folder, "precious.txt"])  # nothing else done


def test_demo_refuses_to_reuse_a_split_of_other_data(tmp_path, sprite_dir, cache_dir, capsys):
    out = tmp_path / "demo"
    (out / "split-3shot").mkdir(parents=True)
    (out / "split-3shot" / "dataset.json").write_text(json.dumps({"source": str(tmp_path / "other")}))
    assert main(["demo", "--out", str(out), "--data", str(sprite_dir)]) == 1
    err = capsys.readouterr().err
    assert f"split from {tmp_path / 'other'}, not {sprite_dir}; use another --out" in err


def test_demo_takes_over_the_half_report_an_earlier_version_left(
    tmp_path, sprite_dir, cache_dir, tiny_settings
):
    out = tmp_path / "demo"
    (out / "report" / "images").mkdir(parents=True)
    (out / "report" / "images" / "00000-gray.png").write_bytes(b"a thumbnail")
    result = run_demo(out, sprite_dir, list(tiny_settings), say=lambda _: None, shots=1)
    assert result.report.is_file()
    assert (out / "report" / "images" / "00000-gray.png").read_bytes().startswith(b"\x89PNG")  # the new one
