"""Dataset builders: Kenney and Wesnoth sprites, skin-tone emoji, any image folder and few-shot splits."""

from memopainter.data.builders.common import MANIFEST, BuildError, Manifest, atomic_dest, downloads_dir
from memopainter.data.builders.emoji import build_emoji
from memopainter.data.builders.folder import build_folder
from memopainter.data.builders.kenney import KENNEY_CLASSES, KenneyClass, build_kenney
from memopainter.data.builders.split import build_split, draw_split, list_classes
from memopainter.data.builders.team_color import MAGENTA_PALETTE, recolor_map, recolor_team_color
from memopainter.data.builders.wesnoth import build_wesnoth, group_units, unit_name

__all__ = [
    "KENNEY_CLASSES",
    "MAGENTA_PALETTE",
    "MANIFEST",
    "BuildError",
    "KenneyClass",
    "Manifest",
    "atomic_dest",
    "build_emoji",
    "build_folder",
    "build_kenney",
    "build_split",
    "build_wesnoth",
    "downloads_dir",
    "draw_split",
    "group_units",
    "list_classes",
    "recolor_map",
    "recolor_team_color",
    "unit_name",
]
