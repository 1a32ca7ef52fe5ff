"""Specification of the skin-tone emoji dataset builder (`memopainter data emoji`)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from memopainter.cli import data as data_cli
from memopainter.data.builders import BuildError, build_emoji, emoji, npm

TONES = ["default", "light", "medium-light", "medium", "medium-dark", "dark"]
CODES = ["1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"]
IMAGES = "img/google/64"
TARBALL = "emoji-datasource-google-16.0.0.tgz"
NOT_EMPTY = "DEST exists and is not empty; pass --force to replace it"
needs_posix_shell = pytest.mark.skipif(os.name == "nt", reason="the fake npm is a POSIX shell script")

# ---------------------------------------------------------------- helpers


def _png_bytes(seed: int) -> bytes:
    rgba = np.random.default_rng(seed).integers(0, 256, size=(3, 2, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _entry(short_name: str, code: str, tones: list[str] | None = None, two_tone: bool = False) -> dict:
    """An emoji.json entry shaped like emoji-datasource's: its base image and its skin_variations."""
    entry = {"name": short_name.upper(), "unified": code.upper(), "image": f"{code}.png"}
    entry |= {"short_name": short_name, "category": "People & Body"}
    if tones is not None:
        variations = {
            tone: {"unified": f"{code}-{tone}", "image": f"{code}-{tone.lower()}.png"} for tone in tones
        }
        if two_tone:
            for first in CODES[:2]:
                for second in CODES[:2]:
                    if first != second:
                        key = f"{first}-{second}"
                        variations[key] = {"image": f"{code}-{key.lower()}.png"}
        entry["skin_variations"] = variations
    return entry


ENTRIES = [
    _entry("grinning", "1f600"),  # no skin variations
    _entry("santa", "1f385", CODES),
    _entry("handshake", "1f91d", CODES, two_tone=True),  # single tones kept, couples' two-tone keys not
    _entry("ear", "1f442", CODES[:3]),  # three tones only
]


def _package_files(entries: list[dict] = ENTRIES) -> dict[str, bytes]:
    """The package's files by path under its root: metadata, license and a PNG for every image named."""
    files = {
        "emoji.json": json.dumps(entries).encode(),
        "package.json": json.dumps({"name": "emoji-datasource-google", "version": "16.0.0"}).encode(),
        "LICENSE": b"The MIT License (MIT)\n\nCopyright (c) 2013 Cal Henderson\n",
        "README.md": b"# emoji-data\n",
    }
    seed = 0
    for entry in entries:
        images = [entry["image"]] + [v["image"] for v in entry.get("skin_variations", {}).values()]
        for image in images:
            files[f"{IMAGES}/{image}"] = _png_bytes(seed)
            seed += 1
    return files


def _write_tgz(path: Path, files: dict[str, bytes], members: list[tarfile.TarInfo] = ()) -> Path:
    """A gzip tarball with `files` under package/ (as npm packs them) and any extra (odd) members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for member in members:
            archive.addfile(member, io.BytesIO(b"\x89PNG evil" if member.isreg() else b""))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    info.size = len(b"\x89PNG evil") if kind == tarfile.REGTYPE else 0
    return info


def _extract(files: dict[str, bytes], root: Path) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))


def _cli(argv: list[str]) -> int:
    return run_cli(data_cli, argv)


def _expected_files(names: list[str]) -> list[str]:
    return sorted([f"{tone}/{name}.png" for tone in TONES for name in names] + ["dataset.json"])


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


# ---------------------------------------------------------------- layout and dataset.json


def test_emoji_from_a_tarball_writes_the_same_emoji_in_one_folder_per_skin_tone(
    fake_tgz: Path, tmp_path: Path, cache_dir: Path
) -> None:
    dest = tmp_path / "emoji"
    body = build_emoji(dest, source=fake_tgz)
    assert _files(dest) == _expected_files(["handshake", "santa"])  # no grinning (no tones), no ear (3)
    files = _package_files()
    assert (dest / "default" / "santa.png").read_bytes() == files[f"{IMAGES}/1f385.png"]
    assert (dest / "dark" / "santa.png").read_bytes() == files[f"{IMAGES}/1f385-1f3ff.png"]  # bytes as-is
    assert (dest / "medium-light" / "handshake.png").read_bytes() == files[f"{IMAGES}/1f91d-1f3fc.png"]

    assert _manifest(dest) == body
    assert body["dataset"] == "emoji" and body["version"] == "16.0.0"
    assert body["classes"] == dict.fromkeys(sorted(TONES), 2)
    assert body["num_classes"] == 6 and body["num_images"] == 12
    assert body["license"] == "Apache-2.0"
    assert "Noto Emoji" in body["attribution"] and "Google" in body["attribution"]
    assert "emoji-datasource" in body["attribution"]
    assert body["metadata_license_text"].startswith("The MIT License")
    assert body["sha256"] == hashlib.sha256(fake_tgz.read_bytes()).hexdigest()
    assert body["tones"] == {"default": None, **dict(zip(TONES[1:], CODES, strict=True))}
    assert body["image_sizes"] == {"2x3 RGBA": 12}
    assert body["emoji_in_metadata"] == 4 and body["emoji_with_six_tones"] == 2
    assert body["emoji"]["handshake"]["images"] == {
        "default": "1f91d.png",
        **{tone: f"1f91d-{code.lower()}.png" for tone, code in zip(TONES[1:], CODES, strict=True)},
    }
    assert body["built_by"]["command"] == "data emoji"
    assert body["built_by"]["options"] == {"source": str(fake_tgz)}
    assert not (cache_dir / "downloads").exists()  # --source: nothing fetched or cached


def test_emoji_source_may_be_an_extracted_folder_or_its_package_folder(
    fake_tgz: Path, tmp_path: Path
) -> None:
    extracted = _extract(_package_files(), tmp_path / "extracted" / "package").parent
    from_root = build_emoji(tmp_path / "a", source=extracted)
    from_package = build_emoji(tmp_path / "b", source=extracted / "package")
    from_tgz = build_emoji(tmp_path / "c", source=fake_tgz)
    assert _files(tmp_path / "a") == _files(tmp_path / "b") == _files(tmp_path / "c")
    assert from_root["classes"] == from_package["classes"] == from_tgz["classes"]
    assert from_root["version"] == "16.0.0" and from_root["sha256"] is None
    assert (tmp_path / "a" / "light" / "santa.png").read_bytes() == (
        tmp_path / "c" / "light" / "santa.png"
    ).read_bytes()


def test_emoji_refuses_a_folder_that_is_not_the_package(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.js").write_text("module.exports = {}")
    with pytest.raises(BuildError, match="neither an extracted emoji-datasource-google tarball"):
        build_emoji(tmp_path / "emoji", source=tmp_path / "other")
    with pytest.raises(BuildError, match="--source does not exist"):
        build_emoji(tmp_path / "emoji", source=tmp_path / "missing.tgz")


@pytest.mark.parametrize(
    ("short_name", "stem"),
    [
        ("santa", "santa"),
        ("+1", "+1"),
        ("man-heart-man", "man-heart-man"),
        ("Mx Claus/../x:y?", "mx_claus_x_y"),
        ("con", "con_"),
        ("LPT1", "lpt1_"),
        ("\u00e9\u00e9", ""),
        ("a" * 150, "a" * 100),
    ],
)
def test_file_names_are_safe_on_every_os(short_name: str, stem: str) -> None:
    assert emoji.file_stem(short_name) == stem


def test_emoji_names_are_made_safe_and_unique(tmp_path: Path) -> None:
    entries = [
        _entry("santa", "1f385", CODES),
        _entry("SANTA", "1f936", CODES),  # the same file name once lower-cased
        _entry("../../evil", "1f9d1", CODES),
        _entry("\u00e9", "1f977", CODES),  # nothing left of the name: its code instead
    ]
    body = build_emoji(tmp_path / "emoji", source=_write_tgz(tmp_path / "x.tgz", _package_files(entries)))
    assert _files(tmp_path / "emoji") == _expected_files(["1f977", "evil", "santa", "santa_2"])
    assert body["emoji"]["santa_2"]["short_name"] == "SANTA"


# ---------------------------------------------------------------- unsafe and broken sources


def test_tarball_links_and_paths_escaping_the_package_are_ignored(tmp_path: Path) -> None:
    entries = [*ENTRIES, _entry("ninja", "1f977", CODES)]
    files = _package_files(entries)
    del files[f"{IMAGES}/1f977-1f3ff.png"]  # only present below as unsafe members
    odd = [
        _member(f"package/{IMAGES}/1f977-1f3ff.png", tarfile.SYMTYPE, "/etc/passwd"),
        _member(f"package/{IMAGES}/../64/1f977-1f3ff.png"),
        _member(f"../package/{IMAGES}/1f977-1f3ff.png"),
        _member(f"/package/{IMAGES}/1f977-1f3ff.png"),
        _member(f"package/{IMAGES}/1f977-1f3ff.png", tarfile.LNKTYPE, f"package/{IMAGES}/1f977-1f3fd.png"),
        _member("../../evil.png"),
    ]
    tgz = _write_tgz(tmp_path / "odd" / TARBALL, files, odd)
    before = _files(tmp_path)
    body = build_emoji(tmp_path / "emoji", source=tgz)
    assert _files(tmp_path / "emoji") == _expected_files(["handshake", "santa"])
    assert body["missing_images"] == [{"emoji": "ninja", "images": ["1f977-1f3ff.png"]}]
    assert body["unreadable"] == []  # the unsafe members were not even read
    assert _files(tmp_path) == sorted(before + [f"emoji/{f}" for f in _files(tmp_path / "emoji")])


def test_image_names_in_emoji_json_cannot_reach_outside_the_package(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(_png_bytes(99))
    entries = [*ENTRIES, _entry("sneaky", "1f977", CODES)]
    entries[-1]["image"] = "../../../../secret.png"
    root = _extract(_package_files(entries), tmp_path / "pkg")
    body = build_emoji(tmp_path / "emoji", source=root)
    assert "sneaky" not in body["emoji"] and body["emoji_with_six_tones"] == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a tarball at all" * 40, "not a readable .tgz tarball"),
        ("truncated", "not a readable .tgz tarball"),
        ("foreign", "holds no package/emoji.json; not the emoji-datasource-google tarball?"),
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
    assert _cli(["data", "emoji", str(tmp_path / "emoji"), "--source", str(bad)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert problem in err
    assert not (tmp_path / "emoji").exists()


def test_an_emoji_with_an_unreadable_image_is_left_out_of_every_tone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _package_files()
    files[f"{IMAGES}/1f385-1f3fd.png"] = b"\x89PNG\r\n\x1a\n but truncated"
    tgz = _write_tgz(tmp_path / TARBALL, files)
    assert _cli(["data", "emoji", str(tmp_path / "emoji"), "--source", str(tgz)]) == 0
    captured = capsys.readouterr()
    assert f"skipped unreadable {IMAGES}/1f385-1f3fd.png: not a readable PNG" in captured.err
    assert captured.out.startswith("emoji: wrote 6 images in 6 classes to ")
    assert _files(tmp_path / "emoji") == _expected_files(["handshake"])


def test_no_emoji_with_all_six_tones_is_refused(tmp_path: Path) -> None:
    tgz = _write_tgz(tmp_path / TARBALL, _package_files([ENTRIES[0], ENTRIES[3]]))
    with pytest.raises(BuildError, match="no emoji in package/emoji.json has all six skin tones"):
        build_emoji(tmp_path / "emoji", source=tgz)
    assert not (tmp_path / "emoji").exists()


def test_an_existing_dest_is_refused_unless_force(fake_tgz: Path, tmp_path: Path) -> None:
    dest = tmp_path / "emoji"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "keep.txt").write_text("precious")
    with pytest.raises(BuildError, match=NOT_EMPTY):
        build_emoji(dest, source=fake_tgz)
    assert (dest / "old" / "keep.txt").read_text() == "precious"
    build_emoji(dest, source=fake_tgz, force=True)
    assert _files(dest) == _expected_files(["handshake", "santa"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji", "npm"]  # no temp or old folder left


def test_a_dest_inside_the_source_folder_is_refused(tmp_path: Path) -> None:
    root = _extract(_package_files(), tmp_path / "pkg")
    with pytest.raises(BuildError, match="DEST overlaps the package folder of --source"):
        build_emoji(root / "out", source=root)


# ---------------------------------------------------------------- download, cache and SHA-256


@needs_posix_shell
def test_emoji_fetches_the_tarball_once_with_npm_pack_then_works_from_the_cache(
    fake_tgz: Path, fake_npm: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emoji, "EMOJI_SHA256", hashlib.sha256(fake_tgz.read_bytes()).hexdigest())
    first = build_emoji(tmp_path / "first")
    assert fake_npm.read_text().split() == ["pack", "--ignore-scripts", "emoji-datasource-google@16.0.0"]
    cached = cache_dir / "downloads" / TARBALL
    assert cached.read_bytes() == fake_tgz.read_bytes()
    assert first["built_by"]["options"] == {"source": None} and first["sha256"] == emoji.EMOJI_SHA256

    fake_npm.unlink()
    second = build_emoji(tmp_path / "second")
    assert not fake_npm.exists()  # npm not run again
    assert _files(tmp_path / "first") == _files(tmp_path / "second")
    assert second["num_images"] == 12
    assert not list((cache_dir / "downloads").glob(".*"))  # no temp folders left behind


@needs_posix_shell
def test_emoji_refuses_a_downloaded_tarball_with_another_hash(
    fake_npm: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with pytest.raises(BuildError, match="sha256 .* is not the expected fb5fd131b362aab7"):
        build_emoji(tmp_path / "emoji")
    assert not (cache_dir / "downloads" / TARBALL).exists()
    assert not (tmp_path / "emoji").exists()


def test_emoji_refuses_a_cached_tarball_whose_hash_differs(
    fake_tgz: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = cache_dir / "downloads" / TARBALL
    cached.parent.mkdir(parents=True)
    cached.write_bytes(fake_tgz.read_bytes())
    monkeypatch.setattr(npm, "npm_pack", lambda spec, folder: pytest.fail("fetched although cached"))
    with pytest.raises(BuildError, match=f"{TARBALL}: sha256 .* is not the expected .*; delete it"):
        build_emoji(tmp_path / "emoji")
    assert not (tmp_path / "emoji").exists()

    monkeypatch.setattr(emoji, "EMOJI_SHA256", hashlib.sha256(fake_tgz.read_bytes()).hexdigest())
    assert build_emoji(tmp_path / "emoji")["num_images"] == 12


def test_emoji_without_npm_says_how_to_pass_source(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    assert _cli(["data", "emoji", str(tmp_path / "emoji")]) == 1
    fetching, err = capsys.readouterr().err.splitlines()  # the fetch's log line, then the error's one line
    assert fetching.startswith("fetching emoji-datasource-google@16.0.0 with npm pack")
    assert err.startswith("error: ")
    assert "npm is needed to fetch emoji-datasource-google@16.0.0" in err
    assert "emoji-datasource-google-16.0.0.tgz another way and pass --source FILE.tgz" in err


@needs_posix_shell
def test_a_failed_npm_pack_is_one_line_naming_the_problem_and_the_way_offline(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(
        "#!/bin/sh\n"
        "echo 'npm error code ECONNREFUSED' >&2\n"
        "echo 'npm error errno ECONNREFUSED' >&2\n"
        "echo 'npm error FetchError: request to https://registry.npmjs.org/x failed' >&2\n"
        "echo 'npm error A complete log of this run can be found in: /tmp/x.log' >&2\n"
        "exit 1\n"
    )
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert _cli(["data", "emoji", str(tmp_path / "emoji")]) == 1
    fetching, err = capsys.readouterr().err.splitlines()  # the fetch's log line, then the error's one line
    assert fetching.startswith("fetching emoji-datasource-google@16.0.0 with npm pack")
    assert err.startswith("error: ")
    assert "`npm pack emoji-datasource-google@16.0.0` failed: FetchError: request to" in err
    assert "pass --source FILE.tgz" in err
    assert not (cache_dir / "downloads" / TARBALL).exists()


def test_the_emoji_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli(["data", "emoji", "--help"])
    out = capsys.readouterr().out
    assert "--source FILE_OR_DIR" in out and "--force" in out
    assert "example: memopainter data emoji data/emoji" in out
