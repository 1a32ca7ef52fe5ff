"""Few-shot splits of a class-folder dataset: K training images per class, the others held out for testing.

DEST/train/<class>/ gets `shots` images of each of `ways` classes (all classes when `ways` is None, else
`ways` of them drawn with `seed`); DEST/test/<class>/ gets up to `test_per_class` of the remaining images of
the same classes (all of them when None). Files are copied, never moved or re-encoded. The draw of each
class depends only on the seed and the class name, so a class gets the same shots whichever others are drawn.
Files that cannot be loaded as images (corrupt, empty, not an image, too many pixels) are left out before the
draw and listed in dataset.json.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from memopainter.data.builders.common import (
    BuildError,
    Manifest,
    atomic_dest,
    check_separate,
    manifest,
    one_torch_thread,
    read_manifest,
    write_manifest,
)
from memopainter.data.images import ImageLoadError, list_images, load_image


def list_classes(src: Path) -> dict[str, list[Path]]:
    """The images of each class sub-folder of `src` (at any depth below it), sorted by class and path."""
    if not src.is_dir():
        raise BuildError(f"{src}: SRC is not a folder")
    classes: dict[str, list[Path]] = {}
    for image in list_images(src):
        relative = image.relative_to(src)
        if len(relative.parts) == 1:
            raise BuildError(
                f"{src}: SRC has images at its top level ({relative}); a split needs one sub-folder per class"
            )
        classes.setdefault(relative.parts[0], []).append(image)
    if not classes:
        raise BuildError(f"{src}: SRC holds no class sub-folders with images")
    return dict(sorted(classes.items()))


def drop_unreadable(
    classes: dict[str, list[Path]], src: Path
) -> tuple[dict[str, list[Path]], list[dict[str, str]]]:
    """The classes with only the files that load as images, and the others as {"path", "problem"} entries.

    Each file is decoded as training and colorizing will decode it (load_image, with its pixel cap), so a
    split never hands them a file they would refuse.
    """
    readable: dict[str, list[Path]] = {}
    unreadable: list[dict[str, str]] = []
    with one_torch_thread():
        for name, files in classes.items():
            readable[name] = []
            for file in files:
                try:
                    load_image(file)
                except ImageLoadError as err:
                    unreadable.append({"path": file.relative_to(src).as_posix(), "problem": err.problem})
                    continue
                readable[name].append(file)
    return readable, unreadable


LINEART = "lineart"  # DEST's folder of line art, beside train/ and test/


def _copy_split(drawn: dict[str, tuple[list[Path], list[Path]]], src: Path, temp: Path) -> dict:
    """Copy the drawn files into temp/train/<class>/ and temp/test/<class>/; their paths by part and class."""
    lists: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name, parts in drawn.items():
        for part, files in zip(("train", "test"), parts, strict=True):
            lists[part][name] = []
            for file in files:
                relative = file.relative_to(src / name)
                target = temp / part / name / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
                lists[part][name].append(relative.as_posix())
    return lists


def _copy_lineart(lists: dict, lineart: Path, temp: Path) -> dict:
    """Copy each split file's drawn line art (same relative path under `lineart`) into temp/lineart/<part>/;
    how many were copied and how many split files had none."""
    copied = missing = 0
    for part, classes in lists.items():
        for name, relatives in classes.items():
            for relative in relatives:
                drawing = lineart / name / relative
                if not drawing.is_file():
                    missing += 1
                    continue
                target = temp / LINEART / part / name / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(drawing, target)
                copied += 1
    return {"src": str(lineart.resolve()), "copied": copied, "missing": missing}


def draw_split(
    classes: dict[str, list[Path]],
    shots: int,
    ways: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
) -> dict[str, tuple[list[Path], list[Path]]]:
    """(train, test) files of each drawn class, both sorted; refuses classes too small for `shots` + 1."""
    if shots < 1:
        raise BuildError(f"--shots must be at least 1, got {shots}")
    if ways is not None and ways < 1:
        raise BuildError(f"--ways must be at least 1, got {ways}")
    if test_per_class is not None and test_per_class < 1:
        raise BuildError(f"--test-per-class must be at least 1, got {test_per_class}")
    if ways is not None and ways > len(classes):
        raise BuildError(f"--ways {ways} exceeds the {len(classes)} classes of SRC")
    short = [name for name, files in classes.items() if len(files) < shots + 1]
    if short:
        others = f" (and {len(short) - 1} more classes)" if len(short) > 1 else ""
        count = len(classes[short[0]])
        raise BuildError(
            f"class {short[0]!r} has {count} image{'' if count == 1 else 's'}, fewer than --shots {shots} "
            f"+ 1 (K to train and at least one to test){others}"
        )
    names = sorted(classes)
    if ways is not None:
        names = sorted(random.Random(seed).sample(names, ways))
    drawn = {}
    for name in names:
        # A string seed is hashed with SHA-512, so the draw does not depend on PYTHONHASHSEED.
        order = random.Random(f"{seed}/{name}").sample(classes[name], len(classes[name]))
        rest = order[shots:]
        test = rest if test_per_class is None else rest[:test_per_class]
        drawn[name] = (sorted(order[:shots]), sorted(test))
    return drawn


def build_split(
    src: Path,
    dest: Path,
    shots: int,
    ways: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
    force: bool = False,
    lineart: Path | None = None,
) -> Manifest:
    """Copy a few-shot split of SRC's classes into DEST/train and DEST/test; return the dataset.json body.

    With `lineart`, a folder of line art drawn for SRC's images under the same relative paths (as `data
    openmoji` writes DEST/lineart beside DEST/color), each drawn file's line art goes to
    DEST/lineart/train/ and DEST/lineart/test/ under its own relative path.
    """
    src, dest = Path(src), Path(dest)
    check_separate(src, dest)
    if lineart is not None and not Path(lineart).is_dir():
        raise BuildError(f"--lineart {lineart}: not a folder")
    classes = list_classes(src)
    with atomic_dest(dest, force) as temp:  # a non-empty DEST is refused before every file is decoded
        readable, unreadable = drop_unreadable(classes, src)
        try:
            drawn = draw_split(readable, shots, ways, test_per_class, seed)
        except BuildError as err:
            # A class may be short only because files were left out: say so, or its count looks wrong.
            left_out = (
                f" ({len(unreadable)} unreadable left out, first {unreadable[0]['path']})"
                if unreadable
                else ""
            )
            raise BuildError(f"{src}: {err}{left_out}") from err
        lists = _copy_split(drawn, src, temp)
        drawings = _copy_lineart(lists, Path(lineart), temp) if lineart is not None else None
        body = _split_manifest(
            src,
            drawn,
            lists,
            len(classes),
            unreadable,
            shots=shots,
            ways=ways,
            test_per_class=test_per_class,
            seed=seed,
        )
        if drawings is not None:
            body["lineart"] = drawings
        write_manifest(temp, body)
    return body


def _split_manifest(
    src: Path,
    drawn: dict[str, tuple[list[Path], list[Path]]],
    lists: dict[str, dict[str, list[str]]],
    classes_in_src: int,
    unreadable: list[dict[str, str]],
    *,
    shots: int,
    ways: int | None,
    test_per_class: int | None,
    seed: int,
) -> Manifest:
    """dataset.json of a split: how it was drawn, from what (SRC's own origin and license), and its files."""
    parent = read_manifest(src)
    origin = {k: parent.get(k) for k in ("dataset", "source", "version", "license")} if parent else None
    return manifest(
        "split",
        {"src": str(src), "shots": shots, "ways": ways, "test_per_class": test_per_class, "seed": seed},
        {name: len(train) + len(test) for name, (train, test) in drawn.items()},
        source=str(src.resolve()),
        origin=origin,
        license=origin["license"] if origin and origin.get("license") else "unknown (that of SRC)",
        protocol={
            "shots": shots,
            "ways": len(drawn),
            "ways_option": ways,
            "test_per_class": test_per_class,
            "seed": seed,
            "classes_in_src": classes_in_src,
        },
        how="each class's images shuffled with random.Random(f'{seed}/{class}'); the first `shots` "
        "to train/, the next `test_per_class` (default: all) to test/; classes drawn with "
        "random.Random(seed) when `ways` is given; files copied unchanged; files that do not load as "
        "images left out before the draw and listed under `unreadable`",
        num_train=sum(len(v) for v in lists["train"].values()),
        num_test=sum(len(v) for v in lists["test"].values()),
        train=lists["train"],
        test=lists["test"],
        unreadable=unreadable,
    )
