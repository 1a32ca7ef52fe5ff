"""Any folder of images normalised into the dataset layout: PNGs, one sub-folder per class, plus dataset.json.

SRC's top-level sub-folders are the classes (images anywhere below one belong to it); images at SRC's top
level are unlabelled and written at DEST's top level, so a flat SRC gives a flat DEST (as the training data
loader reads folders: top-level images get no class). Every readable image is re-saved as an 8-bit PNG
(alpha kept); unreadable ones are listed in dataset.json and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from memopainter.data.builders.common import (
    BuildError,
    Manifest,
    atomic_dest,
    check_separate,
    manifest,
    one_torch_thread,
    write_manifest,
    write_png,
)
from memopainter.data.images import ImageLoadError, list_images, load_image

UNLABELLED = ""  # the plan's key for images at the top level, which have no class


def plan_folder(src: Path) -> dict[str, dict[str, Path]]:
    """For each class ("" for top-level images), the PNG name each source image will be written under."""
    if not src.is_dir():
        raise BuildError(f"{src}: SRC is not a folder")
    images = list_images(src)
    if not images:
        raise BuildError(f"{src}: SRC holds no images")
    top = [f for f in images if f.parent == src]
    classes: dict[str, list[Path]] = {}
    for image in images:
        if image.parent != src:
            classes.setdefault(image.relative_to(src).parts[0], []).append(image)
    plan = {UNLABELLED: _png_names(src, top)} if top else {}
    for name, files in sorted(classes.items()):
        plan[name] = _png_names(src / name, files)
    return plan


def _png_names(folder: Path, files: Iterable[Path]) -> dict[str, Path]:
    """PNG names of images below `folder`: sub-folders joined by "__"; "a.jpg" beside "a.png": "a_jpg.png"."""
    stems: dict[str, list[Path]] = {}
    for file in files:
        relative = file.relative_to(folder)
        stem = "__".join([*relative.parts[:-1], relative.stem])
        stems.setdefault(stem, []).append(file)
    names: dict[str, Path] = {}
    for stem, same in stems.items():
        for file in same:
            suffix = file.suffix.lower().lstrip(".")
            name = f"{stem}.png" if len(same) == 1 else f"{stem}_{suffix}.png"
            if name in names:
                raise BuildError(f"{file}: two images in {folder} would both be written as {name}")
            names[name] = file
    return names


def build_folder(src: Path, dest: Path, force: bool = False) -> Manifest:
    """Normalise the images of SRC into DEST (PNG, class sub-folders kept); return the dataset.json body."""
    src, dest = Path(src), Path(dest)
    check_separate(src, dest)
    plan = plan_folder(src)
    unreadable: list[dict[str, str]] = []
    written: dict[str, int] = {}
    with atomic_dest(dest, force) as temp, one_torch_thread():
        for name, files in plan.items():
            for png, file in files.items():
                try:
                    rgb, alpha = load_image(file)
                except ImageLoadError as err:
                    unreadable.append({"path": file.relative_to(src).as_posix(), "problem": err.problem})
                    continue
                write_png(temp / name / png, rgb, alpha)
                written[name] = written.get(name, 0) + 1
        if not written:
            raise BuildError(f"{src}: none of its {sum(len(f) for f in plan.values())} images could be read")
        classes = {name: count for name, count in written.items() if name != UNLABELLED}
        unlabelled = written.get(UNLABELLED, 0)
        body = manifest(
            "folder",
            {"src": str(src)},
            classes,
            sum(written.values()),
            source=str(src.resolve()),
            version=None,
            license="unknown (that of the source images)",
            layout="flat" if not classes else "mixed" if unlabelled else "classes",
            unlabelled_images=unlabelled,
            how="every readable image re-saved as an 8-bit PNG (RGBA when it had transparency); top-level "
            "sub-folders kept as classes, deeper folders joined into the file name with '__', top-level "
            "images kept at the top level without a class",
            unreadable=unreadable,
        )
        write_manifest(temp, body)
    return body
