"""The package's layers: every import inside memopainter points down the README's layer order."""

from __future__ import annotations

import ast
from pathlib import Path

import memopainter

PACKAGE = Path(memopainter.__file__).parent

# Lower numbers are lower layers. A module may import its own unit and any unit of a lower layer; units of one
# layer are siblings and never import each other (training and inference above all).
LAYERS = {
    "memopainter": 0,  # the version
    "memopainter.files": 0,
    "memopainter.paths": 0,
    "memopainter.downloads": 0,
    "memopainter.color": 1,
    "memopainter.data": 2,
    "memopainter.networks": 2,
    "memopainter.memory": 2,
    "memopainter.config": 3,
    "memopainter.core": 4,
    "memopainter.training": 5,
    "memopainter.inference": 5,
    "memopainter.evaluation": 6,
    "memopainter.experiments": 7,
    "memopainter.demo": 7,
    "memopainter.web": 8,
    "memopainter.cli": 9,
    "memopainter.__main__": 10,
}


def unit(module: str) -> str:
    """The longest entry of LAYERS that `module` is, or lies inside."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return name
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    parts = ["memopainter", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every memopainter module named by an import anywhere in the tree, relative imports resolved."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
    return {name for name in names if name == "memopainter" or name.startswith("memopainter.")}


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        source = unit(module)
        for target in imported(ast.parse(path.read_text(encoding="utf-8")), module, path.stem == "__init__"):
            target_unit = unit(target)
            if target_unit != source and LAYERS[target_unit] >= LAYERS[source]:
                found.append(f"{module} imports {target} (layer {LAYERS[target_unit]} >= {LAYERS[source]})")
    return found


def test_every_module_imports_only_lower_layers_or_its_own_package() -> None:
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("from memopainter.inference.api import Colorizer\nimport memopainter.cli.main\n")
    targets = imported(tree, "memopainter.training.loop", is_package=False)
    assert targets == {"memopainter.inference.api", "memopainter.cli.main"}
    assert LAYERS[unit("memopainter.inference.api")] >= LAYERS[unit("memopainter.training.loop")]
    relative = imported(ast.parse("from ..core import model\n"), "memopainter.training.loop", False)
    assert relative == {"memopainter.core"}
