"""Every image-taking command against the bad-input corpus: per file the exit status and one line naming the
file; inputs unchanged; nothing half-written or temporary left in the output folders."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
from bad_inputs import Case, write_corpus
from conftest import train_tiny

from memopainter.cli.main import main

pytestmark = pytest.mark.usefixtures("cache_dir")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    return train_tiny(tmp_path_factory.mktemp("model"), tiny_settings)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def leftovers(folder: Path) -> list[Path]:
    """Hidden temp files and folders that an atomic write left behind."""
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".partial"))]


def run(argv: list[object], capsys) -> tuple[int, list[str]]:
    with warnings.catch_warnings():
        status = main([str(a) for a in argv])
    return status, capsys.readouterr().err.strip().splitlines()


def check_failure(case: Case, folder: Path, lines: list[str]) -> None:
    """The error is one line that names the file and says what is wrong with it."""
    named = [line for line in lines if str(folder / case.name) in line or case.name in line]
    assert named, lines
    assert all(line.startswith(("error:", "warning:")) for line in named)
    assert any(case.problem in line for line in named), named


@pytest.fixture
def each_case(corpus, request) -> tuple[Path, Case]:
    folder, cases = corpus
    return folder, next(c for c in cases if c.name == request.param)


NAMES = [
    "zero-bytes.png", "text.png", "truncated.png", "bomb.png", "strip.png",
    "sixteen-bit.png", "palette.png", "rgba.png", "cmyk.jpg", "animated.gif", "tiny.png", "tall.png",
    "broken-frame.gif",
]  # fmt: skip


@pytest.mark.parametrize("each_case", NAMES, indirect=True)
def test_colorize(model: Path, each_case, tmp_path: Path, capsys) -> None:
    folder, case = each_case
    before = digests(folder)
    status, lines = run(["colorize", model, folder / case.name, "-o", tmp_path / "out", "--top-k", 2], capsys)
    assert digests(folder) == before
    if case.readable:
        assert status == 0, lines
        suffix = ".gif" if case.name == "animated.gif" else ".png"  # an animation is written as one
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
            [Path(case.name).stem + suffix, Path(case.name).stem + ".k2" + suffix]
        )
    else:
        assert status == 1
        check_failure(case, folder, lines)
        assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("each_case", NAMES, indirect=True)
def test_evaluate(model: Path, each_case, tmp_path: Path, capsys) -> None:
    folder, case = each_case
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    (test_dir / case.name).write_bytes((folder / case.name).read_bytes())
    status, lines = run(["evaluate", model, test_dir, "--json", tmp_path / "eval.json"], capsys)
    if case.readable:
        assert status == 0, lines
    else:
        assert status == 1
        assert any(case.problem in line for line in lines), lines
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("each_case", NAMES, indirect=True)
def test_remember(model: Path, each_case, tmp_path: Path, capsys) -> None:
    folder, case = each_case
    out = tmp_path / "taught.safetensors"
    status, lines = run(["remember", model, folder / case.name, "--out", out], capsys)
    if case.readable:
        assert status == 0, lines
        assert out.is_file()
    else:
        assert status == 1
        check_failure(case, folder, lines)
        assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("each_case", NAMES, indirect=True)
def test_features(each_case, capsys) -> None:
    folder, case = each_case
    status, lines = run(["features", folder / case.name], capsys)
    assert status == (0 if case.readable else 1)
    if not case.readable:
        check_failure(case, folder, lines)


def class_folder_with_corpus(root: Path, corpus_folder: Path, sprite_writer) -> Path:
    """Sprites in class folders, and every corpus file in a class of its own."""
    sprite_writer(root)
    (root / "corpus").mkdir()
    for path in corpus_folder.iterdir():
        (root / "corpus" / path.name).write_bytes(path.read_bytes())
    return root


@pytest.mark.parametrize("command", ["train", "data folder", "data split"])
def test_commands_over_a_folder_name_every_unreadable_file_and_exit_1(
    command: str, corpus, tmp_path: Path, sprite_writer, tiny_settings, capsys
) -> None:
    folder, cases = corpus
    data = class_folder_with_corpus(tmp_path / "data", folder, sprite_writer)
    before = digests(data / "corpus")
    out = tmp_path / "out"
    argv = {
        "train": ["train", data, "--out", out, *[a for s in tiny_settings for a in ("--set", s)]],
        "data folder": ["data", "folder", data, out],
        "data split": ["data", "split", data, out, "--shots", 1],
    }[command]
    status, lines = run(argv, capsys)
    assert status == 1, lines
    for case in cases:
        if not case.readable:
            assert any(case.name in line and case.problem in line for line in lines), (case, lines)
    assert digests(data / "corpus") == before
    assert leftovers(tmp_path) == []
    again = "--overwrite" if command == "train" else "--force"  # the first run wrote OUT
    status, lines = run([*argv, again, "--skip-bad"], capsys)
    assert status == 0, lines  # the same files are still listed, and accepted
    assert any("bomb.png" in line for line in lines)


def test_ctrl_c_ends_a_command_with_one_line_and_status_130(monkeypatch, tmp_path: Path, capsys) -> None:
    from memopainter.cli import data as data_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_cli, "build_folder", interrupted)
    assert main(["data", "folder", str(tmp_path), str(tmp_path / "dest")]) == 130
    assert capsys.readouterr().err.startswith("interrupted (Ctrl-C); what was written is whole")
