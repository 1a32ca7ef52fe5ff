"""Specification of the dataset builders and few-shot splits (`memopainter data`)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from memopainter.cli import data as data_cli
from memopainter.data.builders import (
    KENNEY_CLASSES,
    BuildError,
    build_folder,
    build_kenney,
    build_split,
    build_wesnoth,
    kenney,
    recolor_map,
    unit_name,
    wesnoth,
)

# ---------------------------------------------------------------- helpers


def _png(path: Path, rgba: np.ndarray | None = None, color: tuple[int, int, int] = (10, 20, 30)) -> Path:
    """Write a small RGBA PNG: `rgba` (H, W, 4) uint8, or a 3x2 square of `color`."""
    if rgba is None:
        rgba = np.zeros((2, 3, 4), dtype=np.uint8)
        rgba[..., :3] = color
        rgba[..., 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, mode="RGBA").save(path)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels, with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))


def _cli(argv: list[str]) -> int:
    return run_cli(data_cli, argv)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- Kenney

# Real file names of arcade 3.3.3, one or two per class, and files that belong to no class.
KENNEY_SAMPLE = {
    "char_female_adventurer": ["animated_characters/female_adventurer/femaleAdventurer_idle.png"],
    "char_female_person": ["animated_characters/female_person/femalePerson_walk0.png"],
    "char_male_adventurer": ["animated_characters/male_adventurer/maleAdventurer_jump.png"],
    "char_male_person": ["animated_characters/male_person/malePerson_climb1.png"],
    "char_robot": ["animated_characters/robot/robot_fall.png", "animated_characters/robot/robot_walk7.png"],
    "char_zombie": ["animated_characters/zombie/zombie_idle.png"],
    "terrain_dirt": ["tiles/dirt.png", "tiles/dirtHalf_left.png"],
    "terrain_grass": ["tiles/grassCenter_round.png"],
    "terrain_planet": ["tiles/planetMid.png"],
    "terrain_sand": ["tiles/sandCliffAlt_right.png"],
    "terrain_snow": ["tiles/snowHill_left.png"],
    "terrain_stone": ["tiles/stoneCorner_left.png"],
    "tank_blue": ["topdown_tanks/tankBlue_barrel2_outline.png", "topdown_tanks/tank_blue.png"],
    "tank_dark": ["topdown_tanks/tankBody_darkLarge_outline.png", "topdown_tanks/tankDark_barrel1.png"],
    "tank_green": ["topdown_tanks/tankBody_green.png"],
    "tank_red": ["topdown_tanks/tankRed_barrel3.png", "topdown_tanks/tankBody_red_outline.png"],
    "tank_sand": ["topdown_tanks/tank_sand.png"],
    "card_clubs": ["cards/cardClubs10.png", "cards/cardClubsK.png"],
    "card_diamonds": ["cards/cardDiamondsA.png"],
    "card_hearts": ["cards/cardHearts2.png"],
    "card_spades": ["cards/cardSpadesQ.png"],
    "cardback_blue": ["cards/cardBack_blue1.png"],
    "cardback_green": ["cards/cardBack_green5.png"],
    "cardback_red": ["cards/cardBack_red3.png"],
    "alien_blue": ["alien/alienBlue_front.png"],
    "topdown_grass_road": ["topdown_tanks/tileGrass1.png", "topdown_tanks/tileGrass_roadSplitW.png"],
    "topdown_sand_road": ["topdown_tanks/tileSand_roadCornerUL.png"],
    "coin_gold": ["items/coinGold_ll.png", "items/gold_3.png"],
}
KENNEY_LEFT_OUT = [
    "tiles/grass_sprout.png",
    "tiles/snow_pile.png",
    "topdown_tanks/tankBody_bigRed.png",
    "topdown_tanks/tankBody_huge.png",
    "topdown_tanks/tileGrass_roadTransitionE_dirt.png",
    "topdown_tanks/tileGrass_transitionN.png",
    "cards/cardJoker.png",
    "items/coinSilver.png",
    "enemies/slimeBlue.png",
]
NOT_EMPTY = "DEST exists and is not empty; pass --force to replace it"
CC0_TEXT = "Everything in this package is licensed CC0 (see below)."
IMAGES = "arcade/resources/assets/images"


def _png_bytes(seed: int) -> bytes:
    rgba = np.random.default_rng(seed).integers(0, 256, size=(4, 5, 4), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def fake_wheel(tmp_path: Path) -> Path:
    """A wheel-shaped zip holding a few tiny PNGs at arcade 3.3.3's paths, its License.txt and VERSION."""
    path = tmp_path / "wheels" / "arcade-3.3.3-py3-none-any.whl"
    path.parent.mkdir()
    names = [n for files in KENNEY_SAMPLE.values() for n in files] + KENNEY_LEFT_OUT
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("arcade/VERSION", "3.3.3")
        wheel.writestr(f"{IMAGES}/License.txt", f"\n\t{CC0_TEXT}\n")
        for seed, name in enumerate(names):
            wheel.writestr(f"{IMAGES}/{name}", _png_bytes(seed))
    return path


def test_kenney_rules_are_explicit_and_keep_color_groups_apart() -> None:
    def owners(name: str) -> list[str]:
        return [c for c, rule in KENNEY_CLASSES.items() if rule.matches(PurePosixPath(name))]

    assert len(KENNEY_CLASSES) == 28
    for cls, files in KENNEY_SAMPLE.items():
        for name in files:
            assert owners(name) == [cls], name
    for name in KENNEY_LEFT_OUT:
        assert owners(name) == [], name
    assert owners("tiles/grassCenter.jpg") == []  # PNGs only


def test_kenney_from_a_wheel_writes_one_folder_per_class_and_dataset_json(
    fake_wheel: Path, tmp_path: Path, cache_dir: Path
) -> None:
    dest = tmp_path / "kenney"
    body = build_kenney(dest, source=fake_wheel)
    expected = {cls: len(files) for cls, files in sorted(KENNEY_SAMPLE.items())}
    assert {p.name: len(list(p.iterdir())) for p in dest.iterdir() if p.is_dir()} == expected
    assert (dest / "char_robot" / "robot_walk7.png").is_file()
    assert not list(dest.rglob("grass_sprout.png")) and not list(dest.rglob("cardJoker.png"))

    on_disk = _manifest(dest)
    assert on_disk == body
    assert body["dataset"] == "kenney"
    assert body["license"] == "CC0-1.0" and CC0_TEXT in body["license_text"]
    assert body["version"] == "3.3.3"
    assert body["num_classes"] == 28 and body["num_images"] == 36
    assert body["classes"] == expected
    assert body["files"]["coin_gold"] == ["items/coinGold_ll.png", "items/gold_3.png"]
    assert body["built_by"]["options"] == {"source": str(fake_wheel)}
    assert not (cache_dir / "downloads").exists()  # --source: nothing fetched or cached


def test_kenney_images_keep_their_pixels_and_alpha(fake_wheel: Path, tmp_path: Path) -> None:
    build_kenney(tmp_path / "kenney", source=fake_wheel)
    with zipfile.ZipFile(fake_wheel) as wheel:
        original = wheel.read(f"{IMAGES}/tiles/planetMid.png")
    expected = np.array(Image.open(BytesIO(original)))
    written = _pixels(tmp_path / "kenney" / "terrain_planet" / "planetMid.png")
    assert written.shape == (4, 5, 4)
    np.testing.assert_array_equal(written, expected)


def test_kenney_from_an_extracted_folder_or_its_images_folder(fake_wheel: Path, tmp_path: Path) -> None:
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(fake_wheel) as wheel:
        wheel.extractall(extracted)
    from_root = build_kenney(tmp_path / "a", source=extracted)
    from_images = build_kenney(tmp_path / "b", source=extracted / IMAGES)
    assert (
        from_root["classes"]
        == from_images["classes"]
        == {c: len(f) for c, f in sorted(KENNEY_SAMPLE.items())}
    )
    assert from_root["version"] == from_images["version"] == "3.3.3"
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_kenney_fetches_the_wheel_once_then_works_offline_from_the_cache(
    fake_wheel: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_download(requirement: str, folder: Path) -> None:
        calls.append(requirement)
        shutil.copy(fake_wheel, folder / fake_wheel.name)

    monkeypatch.setattr(kenney, "_pip_download", fake_download)
    monkeypatch.setattr(kenney, "ARCADE_SHA256", hashlib.sha256(fake_wheel.read_bytes()).hexdigest())
    build_kenney(tmp_path / "first")
    assert calls == ["arcade==3.3.3"]
    cached = cache_dir / "downloads" / "arcade-3.3.3-py3-none-any.whl"
    assert cached.read_bytes() == fake_wheel.read_bytes()

    def offline(requirement: str, folder: Path) -> None:
        raise AssertionError("the network was used although the wheel is cached")

    monkeypatch.setattr(kenney, "_pip_download", offline)
    second = build_kenney(tmp_path / "second")
    assert second["num_images"] == 36
    assert _files(tmp_path / "first") == _files(tmp_path / "second")

    cached.write_bytes(cached.read_bytes()[:-10])  # damaged in the cache since
    with pytest.raises(
        BuildError, match=f"{cached}: sha256 .* is not the expected .*; delete it to download"
    ):
        build_kenney(tmp_path / "third")


def test_kenney_names_a_damaged_member_of_the_wheel_in_one_line(fake_wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(fake_wheel) as wheel:
        info = wheel.getinfo(f"{IMAGES}/License.txt")
    data = bytearray(fake_wheel.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 2] ^= 0xFF  # one byte of the stored text: its CRC no longer matches
    fake_wheel.write_bytes(bytes(data))
    with pytest.raises(BuildError, match=r"License\.txt is damaged in the wheel \(Bad CRC-32") as error:
        build_kenney(tmp_path / "kenney", source=fake_wheel)
    assert "\n" not in str(error.value) and not (tmp_path / "kenney").exists()


def test_kenney_refuses_a_downloaded_wheel_with_another_hash(
    fake_wheel: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kenney, "_pip_download", lambda req, folder: shutil.copy(fake_wheel, folder))
    with pytest.raises(BuildError, match="sha256 .* is not the expected 25f4e0e5b8bcbe7a"):
        build_kenney(tmp_path / "kenney")
    assert not (cache_dir / "downloads" / fake_wheel.name).exists()
    assert not (tmp_path / "kenney").exists()


def test_kenney_refuses_a_source_missing_a_class_naming_it(tmp_path: Path) -> None:
    wheel = tmp_path / "partial.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{IMAGES}/License.txt", CC0_TEXT)
        archive.writestr(f"{IMAGES}/alien/alienBlue_front.png", _png_bytes(0))
    with pytest.raises(
        BuildError, match="no images for class 'char_female_adventurer' \\(27 classes empty\\)"
    ):
        build_kenney(tmp_path / "kenney", source=wheel)
    assert not (tmp_path / "kenney").exists()


# ---------------------------------------------------------------- Wesnoth

UNITS = Path("usr/share/games/wesnoth/1.16/data/core/images/units")
TC_MID = (0xEC, 0x00, 0x8C)  # a magenta of the team-color palette -> A10000
TC_REFERENCE = (0xF4, 0x9A, 0xC1)  # the palette's reference color -> FF0000
NEAR_TC = (0xEC, 0x00, 0x8D)  # one step off the palette: not team color for the game either


def _sprite(seed: int) -> np.ndarray:
    """A 3x4 RGBA sprite: team color (one pixel half transparent), a near miss, a transparent pixel, noise."""
    rgba = np.random.default_rng(seed).integers(0, 120, size=(3, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0] = (*TC_MID, 255)
    rgba[0, 1] = (*TC_REFERENCE, 128)
    rgba[0, 2] = (*NEAR_TC, 255)
    rgba[0, 3] = (0, 0, 0, 0)
    return rgba


@pytest.fixture
def unit_tree(tmp_path: Path) -> Path:
    """A package root with a fake units folder: 3 units of 4, 3 and 2 sprites, and a file of no unit."""
    units = tmp_path / "pkg" / UNITS
    names = [
        "human-loyalists/spearman.png",
        "human-loyalists/spearman-attack-1.png",
        "human-loyalists/spearman-ne-defend.png",
        "human-loyalists/knight.png",
        "human-loyalists/knight/knight-n-attack1.png",
        "human-loyalists/knight/knight-se-bob2.png",
        "human-loyalists/spearman-melee-2.png",
        "undead/bat-se-1.png",
        "undead/bat-se-2.png",
        "unknown-unit.png",
    ]
    for seed, name in enumerate(names):
        _png(units / name, _sprite(seed))
    doc = tmp_path / "pkg" / "usr/share/doc/wesnoth-1.16-data"
    doc.mkdir(parents=True)
    with gzip.open(doc / "changelog.Debian.gz", "wt") as changelog:
        changelog.write("wesnoth-1.16 (1:1.16.9-1) unstable; urgency=medium\n\n  * New upstream release.\n")
    return tmp_path / "pkg"


@pytest.mark.parametrize(
    ("stem", "unit"),
    [
        ("spearman", "spearman"),
        ("spearman-ne-attack-2", "spearman"),
        ("knight-n-attack10", "knight"),
        ("bowman-ne-bow-attack-1", "bowman"),
        ("white-mage+female-magic-1", "white-mage+female"),
        ("wose-ancient-attack-1", "wose-ancient"),
        ("zombie-wolf-die-1", "zombie-wolf"),
        ("giant-mudcrawler", "giant-mudcrawler"),
        ("bat-se-3", "bat"),
        ("fire-fire-inhale-1", "fire"),
        ("thrasher-spear-s-2", "thrasher"),
        ("crocodile-no-tail", "crocodile"),
    ],
)
def test_the_unit_is_the_file_name_up_to_its_first_pose_or_frame_token(stem: str, unit: str) -> None:
    assert unit_name(stem) == unit


def test_team_color_mapping_follows_the_games_recolor_rule() -> None:
    mapping = recolor_map()
    assert len(mapping) == 19
    # The reference F49AC1 (mean 197) is the range's mid color.
    assert mapping[0xF49AC1] == 0xFF0000
    # 3F0016: mean 28, ratio 28/197, red 255 * 28/197 = 36.2 -> 36 = 0x24.
    assert mapping[0x3F0016] == 0x240000
    # EC008C: mean 125, red 255 * 125/197 = 161.8 -> 161 = 0xA1.
    assert mapping[0xEC008C] == 0xA10000
    # FDE9F1: mean 242 > 197, ratio (255-242)/(255-197); green = blue = 255 * 45/58 = 197.8 -> 197 = 0xC5.
    assert mapping[0xFDE9F1] == 0xFFC5C5


def test_wesnoth_writes_one_class_per_unit_with_team_color_made_red(unit_tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wesnoth"
    body = build_wesnoth(dest, source=unit_tree, min_frames=1)
    assert body["classes"] == {"human-loyalists__knight": 3, "human-loyalists__spearman": 4, "undead__bat": 2}
    assert (
        dest / "human-loyalists__knight" / "knight-n-attack1.png"
    ).is_file()  # from units/<faction>/knight/
    assert not list(dest.rglob("unknown-unit.png"))

    source = _sprite(1)  # human-loyalists/spearman-attack-1.png
    written = _pixels(dest / "human-loyalists__spearman" / "spearman-attack-1.png")
    assert tuple(written[0, 0]) == (0xA1, 0x00, 0x00, 255)
    assert tuple(written[0, 1]) == (0xFF, 0x00, 0x00, 128)  # recolored, alpha kept
    unchanged = np.ones((3, 4), dtype=bool)
    unchanged[0, :2] = False
    np.testing.assert_array_equal(written[unchanged], source[unchanged])  # near-miss, transparent, the rest
    np.testing.assert_array_equal(written[..., 3], source[..., 3])

    assert body["license"] == "GPL-2.0-or-later"
    assert body["version"] == "1:1.16.9-1"
    assert body["team_color"]["mapping"]["EC008C"] == "A10000"
    assert body["team_color"]["recolored_images"] == 9
    assert body["team_color"]["recolored_pixels"] == 18
    assert _manifest(dest) == body


def test_wesnoth_source_may_be_the_units_folder_itself(unit_tree: Path, tmp_path: Path) -> None:
    body = build_wesnoth(tmp_path / "w", source=unit_tree / UNITS, min_frames=1)
    assert body["num_images"] == 9
    assert body["version"] == "unknown"  # no package root, no changelog


def test_wesnoth_refuses_a_source_that_is_neither_a_package_root_nor_a_units_folder(tmp_path: Path) -> None:
    (tmp_path / "docs" / "readme").mkdir(parents=True)
    (tmp_path / "docs" / "readme" / "notes.txt").write_text("no sprites here")
    with pytest.raises(BuildError, match="neither a wesnoth-1.16-data root .* nor its units folder"):
        build_wesnoth(tmp_path / "w", source=tmp_path / "docs")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to make a .deb")
def test_wesnoth_source_may_be_a_deb_file(unit_tree: Path, tmp_path: Path) -> None:
    control = unit_tree / "DEBIAN" / "control"
    control.parent.mkdir()
    control.write_text(
        "Package: wesnoth-1.16-data\nVersion: 1:1.16.9-1\nArchitecture: all\n"
        "Maintainer: MemoPainter tests\nDescription: fake\n"
    )
    deb = tmp_path / "wesnoth-1.16-data_1.16.9-1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "-Zgzip", str(unit_tree), str(deb)], check=True, capture_output=True
    )
    body = build_wesnoth(tmp_path / "w", source=deb, min_frames=1)
    assert body["num_classes"] == 3 and body["num_images"] == 9
    assert body["version"] == "1:1.16.9-1"


def test_wesnoth_min_frames_and_max_units_pick_units_deterministically(
    unit_tree: Path, tmp_path: Path
) -> None:
    body = build_wesnoth(tmp_path / "min3", source=unit_tree, min_frames=3)
    assert body["classes"] == {"human-loyalists__knight": 3, "human-loyalists__spearman": 4}
    assert body["units_found"] == 3 and body["units_eligible"] == 2

    def pick(seed: int, name: str) -> list[str]:
        body = build_wesnoth(tmp_path / name, source=unit_tree, min_frames=1, max_units=1, seed=seed)
        return list(body["classes"])

    picks = {seed: pick(seed, f"max1-{seed}") for seed in range(6)}
    assert all(len(classes) == 1 for classes in picks.values())
    assert len({classes[0] for classes in picks.values()}) > 1  # the seed matters
    assert pick(3, "again") == picks[3]


def test_wesnoth_refuses_when_no_unit_has_enough_frames(unit_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no unit has --min-frames 5 sprites or more"):
        build_wesnoth(tmp_path / "w", source=unit_tree, min_frames=5)
    assert not (tmp_path / "w").exists()


def test_wesnoth_fetch_caches_only_the_unpacked_parts_it_reads(
    unit_tree: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_apt(folder: Path) -> Path:
        calls.append("apt-get download")
        deb = folder / "wesnoth-1.16-data_1%3a1.16.9-1_all.deb"
        deb.write_bytes(b"!<arch>\n")
        return deb

    def fake_dpkg(deb: Path, folder: Path) -> None:
        shutil.copytree(unit_tree, folder)
        (folder / "usr/share/games/wesnoth/1.16/data/core/music.ogg").write_bytes(b"not kept")

    monkeypatch.setattr(wesnoth, "_apt_download", fake_apt)
    monkeypatch.setattr(wesnoth, "_dpkg_extract", fake_dpkg)
    first = build_wesnoth(tmp_path / "first", min_frames=1)
    cached = cache_dir / "downloads" / "wesnoth-1.16-data"
    assert (cached / UNITS / "undead" / "bat-se-1.png").is_file()
    assert not (cached / "usr/share/games/wesnoth/1.16/data/core/music.ogg").exists()
    assert first["version"] == "1:1.16.9-1"

    monkeypatch.setattr(wesnoth, "_apt_download", lambda folder: pytest.fail("fetched although cached"))
    second = build_wesnoth(tmp_path / "second", min_frames=1)
    assert calls == ["apt-get download"]
    assert second["classes"] == first["classes"]
    assert not list((cache_dir / "downloads").glob(".*"))  # no temp folders left behind


def test_wesnoth_without_apt_says_how_to_get_the_package(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wesnoth.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match="apt-get and dpkg are needed .* pass --source FILE.deb"):
        build_wesnoth(tmp_path / "w")


# ---------------------------------------------------------------- folder


def test_folder_keeps_classes_resaves_png_and_lists_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    rgba = np.random.default_rng(0).integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    _png(src / "cats" / "tabby.png", rgba)
    Image.new("RGB", (4, 4), (200, 100, 50)).save(src / "cats" / "ginger.bmp")
    _png(src / "dogs" / "puppies" / "pug.png")
    (src / "dogs" / "broken.png").write_bytes(b"not a png at all")
    (src / "dogs" / "notes.txt").write_text("not an image")

    dest = tmp_path / "dest"
    assert _cli(["data", "folder", str(src), str(dest), "--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "dogs/broken.png" in err and len(err.strip().splitlines()) == 1
    assert _files(dest) == ["cats/ginger.png", "cats/tabby.png", "dataset.json", "dogs/puppies__pug.png"]
    np.testing.assert_array_equal(_pixels(dest / "cats" / "tabby.png"), rgba)  # alpha kept
    with Image.open(dest / "cats" / "ginger.png") as ginger:
        assert ginger.mode == "RGB" and ginger.getpixel((0, 0)) == (200, 100, 50)

    body = _manifest(dest)
    assert body["classes"] == {"cats": 2, "dogs": 1}
    assert body["layout"] == "classes"
    assert [entry["path"] for entry in body["unreadable"]] == ["dogs/broken.png"]


def test_folder_exits_1_after_leaving_out_unreadable_images_unless_skip_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    _png(src / "cats" / "tabby.png")
    (src / "cats" / "empty.png").write_bytes(b"")
    assert _cli(["data", "folder", str(src), str(tmp_path / "dest")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("folder: wrote 1 images in 1 classes to ")  # written all the same
    assert captured.err.splitlines() == [
        "skipped unreadable cats/empty.png: empty file (0 bytes)",
        "error: 1 unreadable image left out (listed above); pass --skip-bad to "
        "accept that with exit status 0",
    ]
    assert _files(tmp_path / "dest") == ["cats/tabby.png", "dataset.json"]


def test_a_flat_folder_is_written_flat_without_classes(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    _png(src / "a.png")
    Image.new("L", (3, 3), 128).save(src / "b.jpg")
    body = build_folder(src, tmp_path / "dest")
    assert _files(tmp_path / "dest") == ["a.png", "b.png", "dataset.json"]
    assert body["layout"] == "flat"
    assert body["num_classes"] == 0 and body["num_images"] == 2 and body["classes"] == {}


def test_folder_top_level_images_next_to_classes_stay_unlabelled(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "loose.png")
    _png(src / "cats" / "tabby.png")
    body = build_folder(src, tmp_path / "dest")
    assert _files(tmp_path / "dest") == ["cats/tabby.png", "dataset.json", "loose.png"]
    assert body["layout"] == "mixed" and body["unlabelled_images"] == 1 and body["num_images"] == 2


def test_folder_keeps_apart_images_that_differ_only_by_extension(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "cats" / "tom.png", color=(1, 2, 3))
    Image.new("RGB", (2, 2), (250, 0, 0)).save(src / "cats" / "tom.bmp")
    build_folder(src, tmp_path / "dest")
    assert _files(tmp_path / "dest" / "cats") == ["tom_bmp.png", "tom_png.png"]


def test_folder_refuses_when_nothing_is_readable_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.png").write_bytes(b"garbage")
    with pytest.raises(BuildError, match="none of its 1 images could be read"):
        build_folder(src, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no DEST, no .partial folder


# ---------------------------------------------------------------- split


@pytest.fixture
def classes_dir(tmp_path: Path) -> Path:
    """A class-folder dataset: red 8 images, green 6, blue 5 (named img0.png, img1.png, ...)."""
    root = tmp_path / "classes"
    sizes = {"red": ((220, 30, 30), 8), "green": ((30, 200, 40), 6), "blue": ((20, 40, 210), 5)}
    for name, (color, count) in sizes.items():
        for i in range(count):
            _png(root / name / f"img{i}.png", color=color)
    return root


def test_split_writes_k_train_and_t_test_images_per_class_disjoint_and_copied(
    classes_dir: Path, tmp_path: Path
) -> None:
    before = _files(classes_dir)
    body = build_split(classes_dir, tmp_path / "split", shots=2, test_per_class=3, seed=7)
    assert _files(classes_dir) == before  # copied, not moved
    for name in ("red", "green", "blue"):
        train = _files(tmp_path / "split" / "train" / name)
        test = _files(tmp_path / "split" / "test" / name)
        assert len(train) == 2 and len(test) == 3
        assert not set(train) & set(test)
        assert body["train"][name] == train and body["test"][name] == test
    assert body["protocol"] == {
        "shots": 2,
        "ways": 3,
        "ways_option": None,
        "test_per_class": 3,
        "seed": 7,
        "classes_in_src": 3,
    }
    assert body["num_train"] == 6 and body["num_test"] == 9


def test_split_without_test_per_class_tests_on_all_remaining_images(
    classes_dir: Path, tmp_path: Path
) -> None:
    body = build_split(classes_dir, tmp_path / "split", shots=1)
    assert {name: len(files) for name, files in body["test"].items()} == {"blue": 4, "green": 5, "red": 7}
    assert body["num_train"] == 3
    assert _manifest(tmp_path / "split") == body


def test_split_is_the_same_for_a_seed_and_differs_between_seeds(classes_dir: Path, tmp_path: Path) -> None:
    def draw(seed: int, name: str) -> dict:
        body = build_split(classes_dir, tmp_path / name, shots=3, seed=seed)
        return {"train": body["train"], "test": body["test"]}

    first, again, other = draw(1, "a"), draw(1, "b"), draw(2, "c")
    assert first == again
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert first != other


def test_split_refuses_a_class_with_fewer_than_k_plus_one_images_naming_it(
    classes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _png(classes_dir / "gray" / "a.png")
    _png(classes_dir / "gray" / "b.png")
    assert _cli(["data", "split", str(classes_dir), str(tmp_path / "split"), "--shots", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "class 'gray' has 2 images, fewer than --shots 2 + 1" in err
    assert not (tmp_path / "split").exists()


def _bad_files(folder: Path) -> list[str]:
    """A decompression bomb, a text file named .png and a zero-byte .png in `folder`; their names."""
    _png_header_only(folder / "bomb.png", 12_000, 12_000)
    (folder / "notes.png").write_text("not an image at all")
    (folder / "zero.png").write_bytes(b"")
    return ["bomb.png", "notes.png", "zero.png"]


def test_split_leaves_out_files_that_are_no_readable_image_and_lists_them(
    classes_dir: Path, tmp_path: Path
) -> None:
    bad = _bad_files(classes_dir / "red")
    body = build_split(classes_dir, tmp_path / "split", shots=2, seed=0)
    assert [entry["path"] for entry in body["unreadable"]] == [f"red/{name}" for name in bad]
    assert body["unreadable"][0]["problem"].startswith("too many pixels (12000x12000")
    assert body["unreadable"][2]["problem"] == "empty file (0 bytes)"
    copied = {path.rsplit("/", 1)[-1] for path in _files(tmp_path / "split")}
    assert not copied & set(bad)
    assert len(body["train"]["red"]) + len(body["test"]["red"]) == 8  # every readable image, none else
    assert _manifest(tmp_path / "split")["unreadable"] == body["unreadable"]


def test_split_exits_1_naming_each_unreadable_file_unless_skip_bad(
    classes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_files(classes_dir / "green")
    argv = ["data", "split", str(classes_dir), str(tmp_path / "strict"), "--shots", "1"]
    assert _cli(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err[:3]] == [f"skipped unreadable green/{name}" for name in bad]
    assert err[3].startswith("error: 3 unreadable images left out (listed above)")
    assert (tmp_path / "strict" / "dataset.json").is_file()
    assert _cli([*argv[:3], str(tmp_path / "lenient"), *argv[4:], "--skip-bad"]) == 0
    assert len(capsys.readouterr().err.splitlines()) == 3  # still listed, no error


def test_split_says_when_a_class_is_short_because_files_were_left_out(tmp_path: Path) -> None:
    _png(tmp_path / "src" / "gray" / "a.png")
    (tmp_path / "src" / "gray" / "b.png").write_bytes(b"")
    with pytest.raises(
        BuildError, match=r"has 1 image, fewer .* \(1 unreadable left out, first gray/b\.png\)"
    ):
        build_split(tmp_path / "src", tmp_path / "split", shots=1)
    assert not (tmp_path / "split").exists()


def test_split_ways_draws_n_classes_with_the_seed_and_refuses_too_many(
    classes_dir: Path, tmp_path: Path
) -> None:
    drawn = {
        seed: sorted(build_split(classes_dir, tmp_path / f"w{seed}", shots=1, ways=2, seed=seed)["train"])
        for seed in range(5)
    }
    assert all(len(names) == 2 for names in drawn.values())
    assert len({tuple(names) for names in drawn.values()}) > 1
    assert sorted(p.name for p in (tmp_path / "w0" / "train").iterdir()) == drawn[0]
    with pytest.raises(BuildError, match="--ways 4 exceeds the 3 classes of SRC"):
        build_split(classes_dir, tmp_path / "too-many", shots=1, ways=4)


def test_split_shots_of_a_class_do_not_depend_on_which_other_classes_are_drawn(
    classes_dir: Path, tmp_path: Path
) -> None:
    all_classes = build_split(classes_dir, tmp_path / "all", shots=1, seed=4)
    some = build_split(classes_dir, tmp_path / "some", shots=1, ways=2, seed=4)
    for name in some["train"]:
        assert some["train"][name] == all_classes["train"][name]


def test_split_records_the_license_of_a_built_source(unit_tree: Path, tmp_path: Path) -> None:
    build_wesnoth(tmp_path / "wesnoth", source=unit_tree, min_frames=2)
    body = build_split(tmp_path / "wesnoth", tmp_path / "split", shots=1, seed=0)
    assert body["license"] == "GPL-2.0-or-later"
    assert body["origin"]["dataset"] == "wesnoth" and body["origin"]["version"] == "1:1.16.9-1"


# ---------------------------------------------------------------- DEST handling and the command line


def test_an_existing_non_empty_dest_is_refused_unless_force(classes_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "keep.txt").write_text("precious")
    with pytest.raises(BuildError, match=NOT_EMPTY):
        build_folder(classes_dir, dest)
    assert (dest / "old" / "keep.txt").read_text() == "precious"

    build_folder(classes_dir, dest, force=True)
    assert not (dest / "old").exists() and (dest / "red" / "img0.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes", "dest"]  # no temp or old folder left


def test_an_empty_dest_folder_is_filled_without_force(classes_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    assert build_folder(classes_dir, tmp_path / "dest")["num_images"] == 19


def test_a_dest_inside_the_source_is_refused(classes_dir: Path) -> None:
    with pytest.raises(BuildError, match="DEST overlaps SRC"):
        build_split(classes_dir, classes_dir / "split", shots=1)
    with pytest.raises(BuildError, match="DEST overlaps SRC"):
        build_folder(classes_dir, classes_dir, force=True)
    assert (classes_dir / "red" / "img0.png").is_file()


def test_cli_errors_are_one_line_on_stderr_with_a_non_zero_exit(
    classes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    assert _cli(["data", "folder", str(classes_dir), str(dest)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("folder: wrote 19 images in 3 classes to ")
    assert _cli(["data", "folder", str(classes_dir), str(dest)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {dest}: {NOT_EMPTY}\n"
    assert _cli(["data", "kenney", str(tmp_path / "k"), "--source", str(tmp_path / "missing.whl")]) == 1
    assert capsys.readouterr().err.strip().endswith("missing.whl: --source does not exist")
    blocker = tmp_path / "red.png"
    blocker.write_bytes(b"a file")
    assert _cli(["data", "folder", str(classes_dir), str(blocker / "dest")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(blocker) in err and not (blocker / "dest").exists()
