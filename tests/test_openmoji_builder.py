"""Specification of the OpenMoji dataset builder (`memopainter data openmoji`)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from memopainter.cli import data as data_cli
from memopainter.data.builders import BuildError, build_split, npm
from memopainter.data.builders import openmoji as om
from memopainter.data.builders.openmoji import build_openmoji

TARBALL = "openmoji-17.0.0.tgz"
SIZE = 16  # px: big enough to see fill, outline and transparency, small enough to keep the tests fast
MODIFIERS = ["1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"]
# The fill of the default and of each tone, as in OpenMoji's palette.
FILLS = ["#FCEA2B", "#FADCBC", "#DEB892", "#C19A65", "#A57939", "#6A462F"]
NOT_EMPTY = "DEST exists and is not empty; pass --force to replace it"
needs_posix_shell = pytest.mark.skipif(os.name == "nt", reason="the fake npm is a POSIX shell script")

# ---------------------------------------------------------------- a fake openmoji package


def _color_svg(fill: str) -> bytes:
    """A 72x72 OpenMoji-like color drawing: a filled disc inside a black outline, the corners left empty."""
    return (
        '<svg id="emoji" viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg">'
        f'<circle cx="36" cy="36" r="26" fill="{fill}"/>'
        '<circle cx="36" cy="36" r="26" fill="none" stroke="#000000" stroke-width="4"/></svg>'
    ).encode()


def _black_svg(radius: int = 26) -> bytes:
    """The line art of the same drawing: its black outline alone."""
    return (
        '<svg id="emoji" viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg">'
        f'<circle cx="36" cy="36" r="{radius}" fill="none" stroke="#000000" stroke-width="4"/></svg>'
    ).encode()


def _entry(hexcode: str, annotation: str, tone: int | str = "", base: str = "", combo: str = "") -> dict:
    """An openmoji.json entry with the fields the builder reads (and a few it does not)."""
    return {
        "emoji": "?",
        "hexcode": hexcode,
        "group": "people-body",
        "subgroups": "hand-fingers-open",
        "annotation": annotation,
        "skintone": tone,
        "skintone_combination": combo,
        "skintone_base_emoji": "?" if base else "",
        "skintone_base_hexcode": base,
        "unicode": 1,
    }


def _toned(base: str, annotation: str, tones: int = 5, insert: str = "") -> list[dict]:
    """An emoji's default entry and its first `tones` single-tone entries; `insert` puts the tone modifier
    after the first code point (a ZWJ sequence like 1F9D1-1F3FB-200D-1F393) instead of at the end."""
    entries = [_entry(base, annotation, "", base, "single")]
    for tone, modifier in enumerate(MODIFIERS[:tones], start=1):
        hexcode = f"{base}-{modifier}" if not insert else base.replace(insert, f"{insert}-{modifier}", 1)
        entries.append(_entry(hexcode, f"{annotation}: tone {tone}", tone, base, "single"))
    return entries


ENTRIES = [
    _entry("1F600", "grinning face"),  # no skin tones: no class
    *_toned("1F44B", "waving hand"),
    *_toned("1F9D1-200D-1F393", "student", insert="1F9D1"),
    *_toned("1F442", "ear", tones=3),  # three tones only: no class
    *_toned("1F91D", "handshake"),
    _entry("1FAF1-1F3FB-200D-1FAF2-1F3FC", "handshake: two tones", "1,2", "1F91D", "multiple"),  # left out
]


def _package_files(entries: list[dict] = ENTRIES) -> dict[str, bytes]:
    """The package's files by path under its root: metadata, license and both SVGs of every entry."""
    files = {
        "data/openmoji.json": json.dumps(entries).encode(),
        "package.json": json.dumps({"name": "openmoji", "version": "17.0.0"}).encode(),
        "LICENSE.txt": b"Attribution-ShareAlike 4.0 International\n",
        "README.md": b"# OpenMoji\n",
        "color/png/1F600.png": b"not read",
    }
    for entry in entries:
        tone = entry["skintone"] if isinstance(entry["skintone"], int) else 0
        files[f"color/svg/{entry['hexcode']}.svg"] = _color_svg(FILLS[tone])
        files[f"black/svg/{entry['hexcode']}.svg"] = _black_svg()
    return files


def _write_tgz(path: Path, files: dict[str, bytes]) -> Path:
    """A gzip tarball with `files` under package/, as npm packs them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def _extract(files: dict[str, bytes], root: Path) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _contents(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in _files(folder)}


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))


def _cli(argv: list[str]) -> int:
    return run_cli(data_cli, argv)


def _images(tree: str, classes: dict[str, list[str]]) -> list[str]:
    return [f"{tree}/{name}/{hexcode}.png" for name, codes in classes.items() for hexcode in codes]


def _expected_files(classes: dict[str, list[str]]) -> list[str]:
    extra = ["LICENSE.txt", "color/dataset.json", "dataset.json", "lineart/dataset.json"]
    return sorted(_images("color", classes) + _images("lineart", classes) + extra)


def _codes(base: str, insert: str = "") -> list[str]:
    tones = [f"{base}-{m}" if not insert else base.replace(insert, f"{insert}-{m}", 1) for m in MODIFIERS]
    return [base, *tones]


CLASSES = {
    "handshake": _codes("1F91D"),
    "student": _codes("1F9D1-200D-1F393", insert="1F9D1"),
    "waving_hand": _codes("1F44B"),
}


@pytest.fixture
def fake_tgz(tmp_path: Path) -> Path:
    return _write_tgz(tmp_path / "npm" / TARBALL, _package_files())


@pytest.fixture
def fake_npm(tmp_path: Path, fake_tgz: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `npm` first on PATH that logs its arguments to the returned file and "packs" fake_tgz."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "npm-calls.txt"
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\ncp "{fake_tgz}" ./{TARBALL}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return calls


# ---------------------------------------------------------------- layout, pixels and dataset.json


def test_openmoji_renders_each_toned_emoji_as_a_class_in_color_and_line_art(
    fake_tgz: Path, tmp_path: Path, cache_dir: Path
) -> None:
    dest = tmp_path / "openmoji"
    body = build_openmoji(dest, source=fake_tgz, size=SIZE)
    assert _files(dest) == _expected_files(CLASSES)  # no grinning (no tones), no ear (3), no two-tone mix

    for tone, fill in enumerate(FILLS):
        image = Image.open(dest / "color" / "waving_hand" / f"{CLASSES['waving_hand'][tone]}.png")
        assert image.size == (SIZE, SIZE) and image.mode == "RGBA"
        pixels = np.asarray(image)
        assert pixels[0, 0, 3] == 0  # the background stays transparent
        assert tuple(pixels[SIZE // 2, SIZE // 2]) == (*bytes.fromhex(fill[1:]), 255)  # the tone's fill
    line = np.asarray(Image.open(dest / "lineart" / "waving_hand" / "1F44B-1F3FD.png"))
    assert line.shape == (SIZE, SIZE, 4) and line[0, 0, 3] == 0 and line[SIZE // 2, SIZE // 2, 3] == 0
    assert line[SIZE // 2, 2, 3] > 128 and line[..., :3].max() == 0  # the outline, black

    assert _manifest(dest) == body
    assert body["dataset"] == "openmoji" and body["version"] == "17.0.0" and body["size"] == SIZE
    assert body["sha256"] == hashlib.sha256(fake_tgz.read_bytes()).hexdigest()
    assert body["license"] == "CC BY-SA 4.0" and body["license_url"].startswith("https://creativecommons.org")
    assert body["attribution"] == "OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
    assert body["attribution_url"] == "https://openmoji.org"
    assert body["classes"] == dict.fromkeys(CLASSES, 6) and body["num_images"] == body["lineart_images"] == 18
    assert body["emoji_in_metadata"] == len(ENTRIES) and body["emoji_with_six_tones"] == 3
    assert body["characters"]["waving_hand"] == {
        "annotation": "waving hand",
        "hexcode": "1F44B",
        "images": dict(zip(om.TONES, CLASSES["waving_hand"], strict=True)),
    }
    assert body["rasterizer"].startswith("resvg-py 0.5.0") and "skintone" in body["how"]
    assert body["built_by"] == {**body["built_by"], "command": "data openmoji"}
    assert body["built_by"]["options"] == {"source": str(fake_tgz), "size": SIZE, "max_classes": None}
    assert (dest / "LICENSE.txt").read_bytes().startswith(b"Attribution-ShareAlike 4.0")
    assert not (cache_dir / "downloads").exists()  # --source: nothing fetched or cached


def test_each_tree_is_a_class_folder_dataset_of_its_own_that_split_takes(
    fake_tgz: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "openmoji"
    build_openmoji(dest, source=fake_tgz, size=SIZE)
    for part, pair in (("color", "lineart"), ("lineart", "color")):
        body = _manifest(dest / part)
        assert body["part"] == part and body["pair"] == pair
        assert body["classes"] == dict.fromkeys(CLASSES, 6) and body["license"] == "CC BY-SA 4.0"
    split = build_split(dest / "color", tmp_path / "split", shots=2, seed=0)
    assert split["num_train"] == 6 and split["num_test"] == 12 and split["license"] == "CC BY-SA 4.0"
    assert split["origin"]["dataset"] == "openmoji"


def test_a_build_is_byte_for_byte_the_same_from_a_tarball_or_an_extracted_folder(
    fake_tgz: Path, tmp_path: Path
) -> None:
    extracted = _extract(_package_files(), tmp_path / "extracted" / "package").parent
    build_openmoji(tmp_path / "a", source=fake_tgz, size=SIZE)
    build_openmoji(tmp_path / "b", source=fake_tgz, size=SIZE)
    from_folder = build_openmoji(tmp_path / "c", source=extracted, size=SIZE)
    from_package = build_openmoji(tmp_path / "d", source=extracted / "package", size=SIZE)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")
    images = {k: v for k, v in _contents(tmp_path / "a").items() if k.endswith(".png")}
    assert images == {k: v for k, v in _contents(tmp_path / "c").items() if k.endswith(".png")}
    assert from_folder["classes"] == from_package["classes"] == dict.fromkeys(CLASSES, 6)
    assert from_folder["sha256"] is None and from_folder["version"] == "17.0.0"


def test_max_classes_keeps_that_many_evenly_spread_over_openmojis_order(
    fake_tgz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    characters = [om.Character(f"c{i}", "", "1F600", {}) for i in range(10)]
    assert [c.name for c in om.choose_classes(characters, 3)] == ["c0", "c3", "c6"]
    assert om.choose_classes(characters, 10) == om.choose_classes(characters, None) == characters

    dest = tmp_path / "two"
    argv = ["data", "openmoji", str(dest), "--source", str(fake_tgz), "--size", str(SIZE)]
    assert _cli([*argv, "--max-classes", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"openmoji: wrote 12 images in 2 classes to {dest}")
    # In openmoji.json's order: waving hand, student, handshake; the first two of three evenly spaced.
    assert _manifest(dest)["classes"] == {"student": 6, "waving_hand": 6}
    assert _manifest(dest)["built_by"]["options"]["max_classes"] == 2


def test_a_drawing_that_is_not_square_is_fitted_and_centred_on_a_transparent_square() -> None:
    wide = b'<svg viewBox="0 0 72 36" xmlns="http://www.w3.org/2000/svg"><rect width="72" height="36"/></svg>'
    tall = b'<svg viewBox="0 0 36 72" xmlns="http://www.w3.org/2000/svg"><rect width="36" height="72"/></svg>'
    for svg, axis in ((wide, 0), (tall, 1)):
        alpha = np.asarray(Image.open(io.BytesIO(om.render_svg(om.load_resvg(), svg, SIZE))))[..., 3]
        assert alpha.shape == (SIZE, SIZE)
        profile = alpha.max(axis=1 - axis)  # opaque in the middle half, transparent in the outer quarters
        assert profile[: SIZE // 4 - 1].max() == 0 and profile[-SIZE // 4 + 1 :].max() == 0
        assert profile[SIZE // 4 + 1 : -SIZE // 4 - 1].min() == 255


def test_a_long_thin_drawing_is_refused_before_it_is_rendered() -> None:
    thin = b'<svg viewBox="0 0 1 3000000"><rect width="1" height="9"/></svg>'
    with pytest.raises(ValueError, match="viewBox is 1 x 3e[+]06: not a drawing of an emoji's proportions"):
        om.render_svg(om.load_resvg(), thin, SIZE)
    with pytest.raises(ValueError, match="no viewBox"):
        om.render_svg(om.load_resvg(), b'<svg width="9" height="9"></svg>', SIZE)


# ---------------------------------------------------------------- broken packages and bad options


def test_an_emoji_with_a_missing_or_unrenderable_svg_is_left_out_of_both_trees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _package_files()
    files["color/svg/1F44B-1F3FD.svg"] = b"<svg this is not xml"
    del files["black/svg/1F9D1-1F3FF-200D-1F393.svg"]
    tgz = _write_tgz(tmp_path / TARBALL, files)
    argv = ["data", "openmoji", str(tmp_path / "om"), "--source", str(tgz), "--size", str(SIZE)]
    assert _cli(argv) == 0
    captured = capsys.readouterr()
    assert "skipped unreadable color/svg/1F44B-1F3FD.svg: does not render as SVG (" in captured.err
    assert captured.out.startswith("openmoji: wrote 6 images in 1 classes to ")
    assert _files(tmp_path / "om") == _expected_files({"handshake": CLASSES["handshake"]})
    body = _manifest(tmp_path / "om")
    assert body["missing_svgs"] == [{"class": "student", "svgs": ["black/svg/1F9D1-1F3FF-200D-1F393.svg"]}]
    assert [entry["path"] for entry in body["unreadable"]] == ["color/svg/1F44B-1F3FD.svg"]


def test_hexcodes_that_name_other_paths_and_emoji_without_all_tones_make_no_class(tmp_path: Path) -> None:
    sneaky = _toned("1F977", "ninja")
    sneaky[3]["hexcode"] = "../../1F977-1F3FD"
    root = _extract(_package_files([*ENTRIES, *sneaky]), tmp_path / "pkg")
    body = build_openmoji(tmp_path / "om", source=root, size=SIZE)
    assert "ninja" not in body["characters"] and body["emoji_with_six_tones"] == 3

    tgz = _write_tgz(tmp_path / "none.tgz", _package_files(ENTRIES[:1] + _toned("1F442", "ear", tones=3)))
    with pytest.raises(BuildError, match="no emoji in package/data/openmoji.json has all six skin tones"):
        build_openmoji(tmp_path / "none", source=tgz, size=SIZE)
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a tarball at all" * 40, "not a readable .tgz tarball"),
        ("truncated", "not a readable .tgz tarball"),
        ("foreign", "holds no package/data/openmoji.json; not the openmoji tarball?"),
    ],
)
def test_a_corrupt_or_foreign_tarball_is_one_line_error(
    content: bytes | str, problem: str, fake_tgz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.tgz"
    if content == "truncated":
        whole = fake_tgz.read_bytes()
        bad.write_bytes(whole[: len(whole) // 2])
    elif content == "foreign":
        _write_tgz(bad, {"index.js": b"module.exports = {}"})
    else:
        bad.write_bytes(content)
    assert _cli(["data", "openmoji", str(tmp_path / "om"), "--source", str(bad)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert problem in err
    assert not (tmp_path / "om").exists()


def test_a_folder_that_is_not_the_package_or_a_dest_inside_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with pytest.raises(BuildError, match="neither an extracted openmoji tarball"):
        build_openmoji(tmp_path / "om", source=tmp_path / "other")
    with pytest.raises(BuildError, match="--source does not exist"):
        build_openmoji(tmp_path / "om", source=tmp_path / "missing.tgz")
    root = _extract(_package_files(), tmp_path / "pkg")
    with pytest.raises(BuildError, match="DEST overlaps the package folder of --source"):
        build_openmoji(root / "out", source=root)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 4}, "--size must be from 8 to 4096 px, got 4"),
        ({"size": 5000}, "--size must be from 8 to 4096 px, got 5000"),
        ({"max_classes": 0}, "--max-classes must be at least 1, got 0"),
    ],
)
def test_bad_options_are_refused_before_anything_is_read(options: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=message):
        build_openmoji(tmp_path / "om", source=tmp_path / "missing.tgz", **options)


def test_an_existing_dest_is_refused_unless_force(fake_tgz: Path, tmp_path: Path) -> None:
    dest = tmp_path / "om"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "keep.txt").write_text("precious")
    with pytest.raises(BuildError, match=NOT_EMPTY):
        build_openmoji(dest, source=fake_tgz, size=SIZE)
    assert (dest / "old" / "keep.txt").read_text() == "precious"
    build_openmoji(dest, source=fake_tgz, size=SIZE, force=True)
    assert _files(dest) == _expected_files(CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["npm", "om"]  # no temp or old folder left


def test_without_the_rasterizer_the_error_says_how_to_install_it_before_any_download(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # `import resvg_py` now raises ImportError
    monkeypatch.setattr(npm, "npm_pack", lambda spec, folder: pytest.fail("fetched without a rasterizer"))
    assert _cli(["data", "openmoji", str(tmp_path / "om")]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: rendering SVGs needs the optional rasterizer resvg-py: pip install 'memopainter[svg]'\n"
    )
    assert not (tmp_path / "om").exists() and not (cache_dir / "downloads").exists()


# ---------------------------------------------------------------- download, cache and SHA-256


@needs_posix_shell
def test_openmoji_fetches_the_tarball_once_with_npm_pack_then_works_from_the_cache(
    fake_tgz: Path, fake_npm: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(om, "OPENMOJI_SHA256", hashlib.sha256(fake_tgz.read_bytes()).hexdigest())
    first = build_openmoji(tmp_path / "first", size=SIZE)
    assert fake_npm.read_text().split() == ["pack", "--ignore-scripts", "openmoji@17.0.0"]
    cached = cache_dir / "downloads" / TARBALL
    assert cached.read_bytes() == fake_tgz.read_bytes()
    assert first["built_by"]["options"]["source"] is None and first["sha256"] == om.OPENMOJI_SHA256

    fake_npm.unlink()
    build_openmoji(tmp_path / "second", size=SIZE)
    assert not fake_npm.exists()  # npm not run again
    assert _contents(tmp_path / "first") == _contents(tmp_path / "second")
    assert not list((cache_dir / "downloads").glob(".*"))  # no temp folders left behind


@needs_posix_shell
def test_a_downloaded_tarball_with_another_hash_is_refused_and_not_cached(
    fake_npm: Path, tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["data", "openmoji", str(tmp_path / "om")]) == 1
    fetching, err = capsys.readouterr().err.splitlines()  # the fetch's log line, then the error's one line
    assert fetching.startswith("fetching openmoji@17.0.0 with npm pack")
    assert err.startswith(f"error: {TARBALL}: sha256 ")
    assert "is not the expected 55ee7d13485dec86..." in err
    assert not (cache_dir / "downloads" / TARBALL).exists() and not (tmp_path / "om").exists()


def test_a_cached_tarball_whose_hash_differs_is_refused_with_the_way_out(
    fake_tgz: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = cache_dir / "downloads" / TARBALL
    cached.parent.mkdir(parents=True)
    cached.write_bytes(fake_tgz.read_bytes())
    monkeypatch.setattr(npm, "npm_pack", lambda spec, folder: pytest.fail("fetched although cached"))
    with pytest.raises(BuildError, match=f"{TARBALL}: sha256 .* is not the expected .*; delete it"):
        build_openmoji(tmp_path / "om", size=SIZE)
    assert not (tmp_path / "om").exists()


def test_without_npm_the_error_says_how_to_pass_source(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    assert _cli(["data", "openmoji", str(tmp_path / "om")]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: npm is needed to fetch openmoji@17.0.0")
    assert "openmoji-17.0.0.tgz another way and pass --source FILE.tgz" in err


def test_the_openmoji_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli(["data", "openmoji", "--help"])
    out = capsys.readouterr().out
    for option in ("--size PX", "--source FILE_OR_DIR", "--max-classes N", "--force", "memopainter[svg]"):
        assert option in out
    assert "example: memopainter data openmoji data/openmoji --size 512" in out
