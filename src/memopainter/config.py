"""One typed configuration for a run: defaults in code, a TOML file, `key=value` overrides, all validated.

The resolved config is saved with every run and every checkpoint as plain values (`to_dict`), so inference
needs nothing but the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from memopainter.data.descriptors import DEFAULT as DEFAULT_DESCRIPTORS
from memopainter.data.descriptors import LEGACY as LEGACY_DESCRIPTORS
from memopainter.data.descriptors import LEGACY_LIGHTNESS_BINS, LIGHTNESS_BINS, parse_descriptors
from memopainter.networks.backbones import DEFAULT_BACKBONE
from memopainter.networks.classification import ANNEALED_TEMPERATURE, REBALANCE_LAMBDA
from memopainter.networks.generator import HEADS, NORMS  # model.norm and model.head choices

INPUTS = ("gray", "lineart")  # data.input: what the generator and the query see
# The paper's configuration where our measured defaults differ: its GAN generator, its pooled query feature.
PAPER_SETTINGS = ("model.head=ab", "memory.descriptors=pooled")

# Options measured and deleted. Saved configs (config.json, checkpoints) that still hold them load without
# them; a TOML file or --set naming them is refused like any unknown key.
REMOVED_KEYS = frozenset({"train.retrieved_condition", "train.hue_rotation"})


# Keys whose default changed by measurement after they were saved: a saved config without one was trained
# with the value here (the pooled query feature alone; the paper's GAN generator; the bins head's
# cross-entropy alone; the color feature as it is, not normalised).
LEGACY_VALUES = {
    "memory.descriptors": LEGACY_DESCRIPTORS,
    "memory.lightness_bins": LEGACY_LIGHTNESS_BINS,
    "model.head": "ab",
    "model.cond_norm": False,
    "loss.bins_l1": 0.0,
}


class ConfigError(ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""


@dataclass
class DataConfig:
    """What the networks see: image size and the color feature stored in memory."""

    image_size: int = 64  # square side the networks train at; a power of two from 32 to 512
    feature: str = "dist"  # "dist": 313-bin ab distribution; "rgb": 10 dominant colors
    # "gray": the generator sees the frame's lightness and predicts ab (the paper's); "lineart": it sees
    # black lines on white (memopainter.data.lineart) and predicts lightness and ab, and the query sees
    # the lines too. Saved configs without this key mean "gray".
    input: str = "gray"
    # input "lineart": a folder of line art under the same relative paths as the training images (as
    # `data split --lineart` and `data openmoji` write it); frames without one there, or all frames when
    # empty, train on lines extracted from their colors.
    lineart: str = ""


@dataclass
class MemoryConfig:
    """The key-value-age memory and its query network (paper section 3.1)."""

    enabled: bool = True  # False: the paper's Res-cGAN ablation (no memory, no color condition)
    supervised: bool = False  # decide matches by class label (the paper's Table 2 upper bound)
    backbone: str = DEFAULT_BACKBONE
    # What the query head sees, joined by "+" (memopainter.data.descriptors): the backbone's pooled feature
    # and the histogram of the image's lightness. Saved configs without this key mean "pooled".
    descriptors: str = DEFAULT_DESCRIPTORS
    # Bins of the lightness histogram over L in [0, 100]; saved configs without this key mean 16.
    lightness_bins: int = LIGHTNESS_BINS
    size: int = 0  # slots; 0 means 1.2 x the number of training images
    key_dim: int = 512
    top_k: int = 0  # 0 means the feature's default (256 for dist, 32 for rgb)
    threshold: float = 0.0  # 0 means the feature's default
    margin: float = 0.0  # 0 means the feature's default
    lr: float = 1e-4


@dataclass
class ModelConfig:
    """Generator and discriminator sizes."""

    base_channels: int = 32  # channels of the first U-Net level; doubled per level up to 8x
    mlp_hidden: int = 256  # width of the MLP that turns the color feature into AdaIN parameters
    dropout: float = 0.5  # in the first three decoder blocks, as pix2pix
    # Centre and scale the color feature on the training set before the AdaIN MLP (Generator.fit_condition).
    # Without it the MLP hardly varies with the feature on sprites that share most colors: on Wesnoth units
    # (500 frames, 800 steps) the generator then ignored even the true feature of a frame.
    cond_norm: bool = True
    # "adain": AdaIN driven by the color feature (eq. 13); "batch": BatchNorm in its place, unconditioned:
    # the pix2pix U-Net baseline (memory.enabled = false only).
    norm: str = "adain"
    # "bins": 313 logits over the ab bins, trained by classification as Zhang, Isola & Efros 2016 (with
    # memory.enabled = false, their baseline; with a memory, conditioned through AdaIN on the memory's color
    # feature); "ab": the paper's GAN generator, 2 tanh channels (ab / 110) under the adversarial and smooth
    # L1 losses. bins was lower in delta_e2000 on Kenney, Wesnoth, emoji and OpenMoji and nearer the truth's
    # colorfulness (README "Choosing the generator"); `train --paper` restores the paper's.
    head: str = "bins"
    # head "bins": the annealed-mean temperature that decodes the bin distribution into ab (Zhang et al.:
    # 0.38; 1 is the plain mean, towards 0 the mode).
    bins_temperature: float = ANNEALED_TEMPERATURE


@dataclass
class LossConfig:
    """Weights of the loss terms (paper eqs. 10 to 12)."""

    adversarial: float = 1.0
    # pix2pix's L1 weight: the adversarial term alone drifts to plausible but wrong colors, and the
    # reconstruction term is what ties the output to the condition's colors.
    smooth_l1: float = 100.0
    smooth_l1_delta: float = 1.0 / 110.0  # delta of eq. 10 in the network's ab / 110 units: one ab unit
    # model.head "bins": lambda of Zhang et al.'s class rebalancing, w ~ ((1 - lambda) p + lambda / 313)^-1
    # (0.5 as theirs; 1 gives every bin the weight 1, i.e. no rebalancing).
    rebalance_lambda: float = REBALANCE_LAMBDA
    # model.head "bins": weight of an adversarial term beside the cross-entropy, BCE(D(fake) -> 1) on the
    # annealed-mean ab judged by the paper's discriminator, which then trains beside the generator; 0 trains
    # by classification alone.
    bins_adversarial: float = 0.0
    # model.head "bins": weight of an L1 term beside the cross-entropy, on the annealed-mean ab (ab / 110, as
    # colorize decodes them) against the truth's; 0 trains by classification alone. 10 puts the two terms
    # of the same order (cross-entropy ~2, L1 ~0.05 to 0.1); not tuned. It lowered delta_e2000 on Kenney,
    # Wesnoth, emoji and OpenMoji (README "Choosing the generator"). Saved configs without it mean 0.
    bins_l1: float = 10.0


@dataclass
class TrainConfig:
    """Optimisation, schedule and bookkeeping."""

    steps: int = 0  # 0: use epochs
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    device: str = "cpu"
    sample_every: int = 200  # steps between sample grids
    checkpoint_every: int = 500  # steps between checkpoints


@dataclass
class RunConfig:
    """Everything a run needs, grouped by part of the system."""

    data: DataConfig = field(default_factory=DataConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        """Plain nested dict of the values (JSON and TOML ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        """Build from a saved nested dict (config.json, a checkpoint's meta); errors name `source`.

        REMOVED_KEYS are dropped; any other unknown key or a wrong type is an error. A key missing from it
        takes its LEGACY_VALUES value where it has one (what runs did before the key existed), else the
        default.
        """
        config = _from_values(values, source, REMOVED_KEYS)
        for key, value in LEGACY_VALUES.items():
            section, name = key.split(".")
            if name not in values.get(section, {}):
                setattr(getattr(config, section), name, value)
        return config

    def override(self, assignments: list[str]) -> RunConfig:
        """Apply `section.key=value` strings (values parsed as TOML, bare words as strings)."""
        for text in assignments:
            if "=" not in text:
                raise ConfigError(f"--set {text!r}: expected section.key=value")
            key, raw = text.split("=", 1)
            _assign(self, key.strip(), _parse_value(raw.strip()), "--set")
        self.validate()
        return self

    def validate(self) -> None:
        """Check ranges and choices; raises ConfigError with the offending key."""
        for key in _float_keys():
            if not math.isfinite(_get(self, key)):  # inf passes every "> 0" below and breaks training late
                raise ConfigError(f"{key} must be a finite number, got {_get(self, key)!r}")
        checks = [
            (
                "data.image_size",
                _is_power_of_two(self.data.image_size) and 32 <= self.data.image_size <= 512,
                "a power of two from 32 to 512",
            ),
            ("data.feature", self.data.feature in ("dist", "rgb"), '"dist" or "rgb"'),
            ("data.input", self.data.input in INPUTS, " or ".join(f'"{i}"' for i in INPUTS)),
            ("memory.size", self.memory.size >= 0, ">= 0 (0 means 1.2 x the images)"),
            ("memory.key_dim", 1 <= self.memory.key_dim <= 4096, "from 1 to 4096"),
            ("memory.top_k", self.memory.top_k >= 0, ">= 0 (0 means the feature's default)"),
            ("memory.threshold", self.memory.threshold >= 0, ">= 0 (0 means the feature's default)"),
            ("memory.margin", self.memory.margin >= 0, ">= 0 (0 means the feature's default)"),
            ("memory.lr", self.memory.lr > 0, "> 0"),
            ("model.base_channels", 4 <= self.model.base_channels <= 256, "from 4 to 256"),
            ("model.mlp_hidden", 8 <= self.model.mlp_hidden <= 4096, "from 8 to 4096"),
            ("model.dropout", 0 <= self.model.dropout < 1, "in [0, 1)"),
            ("model.norm", self.model.norm in NORMS, " or ".join(f'"{n}"' for n in NORMS)),
            ("model.head", self.model.head in HEADS, " or ".join(f'"{h}"' for h in HEADS)),
            ("model.bins_temperature", self.model.bins_temperature >= 0.01, ">= 0.01"),
            ("loss.adversarial", self.loss.adversarial >= 0, ">= 0"),
            ("loss.smooth_l1", self.loss.smooth_l1 >= 0, ">= 0"),
            ("loss.smooth_l1_delta", self.loss.smooth_l1_delta > 0, "> 0"),
            ("loss.rebalance_lambda", 0 < self.loss.rebalance_lambda <= 1, "in (0, 1]"),
            ("loss.bins_adversarial", self.loss.bins_adversarial >= 0, ">= 0"),
            ("loss.bins_l1", self.loss.bins_l1 >= 0, ">= 0"),
            ("train.steps", self.train.steps >= 0, ">= 0 (0 means use epochs)"),
            ("train.epochs", self.train.epochs >= 1, ">= 1"),
            ("train.batch_size", self.train.batch_size >= 1, ">= 1"),
            ("train.lr", self.train.lr > 0, "> 0"),
            ("train.beta1", 0 <= self.train.beta1 < 1, "in [0, 1)"),
            ("train.beta2", 0 <= self.train.beta2 < 1, "in [0, 1)"),
            ("train.device", re.fullmatch(r"cpu|cuda(:\d+)?", self.train.device), '"cpu" or "cuda[:N]"'),
            ("train.seed", abs(self.train.seed) < 2**32, "between -2**32 and 2**32"),
            ("memory.lightness_bins", 2 <= self.memory.lightness_bins <= 256, "from 2 to 256"),
            ("train.sample_every", self.train.sample_every >= 1, ">= 1"),
            ("train.checkpoint_every", self.train.checkpoint_every >= 1, ">= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{key} must be {expected}, got {_get(self, key)!r}")
        try:
            parse_descriptors(self.memory.descriptors)
        except ValueError as error:
            raise ConfigError(f"memory.descriptors: {error}") from error
        if self.data.input == "lineart" and self.model.head != "bins":
            # Line art carries no lightness: only the bins head has the extra channel that predicts it.
            raise ConfigError('data.input = "lineart" trains the bins head: it needs model.head = "bins"')
        if self.data.lineart and self.data.input != "lineart":
            raise ConfigError('data.lineart names line art for data.input = "lineart" only')
        if self.memory.supervised and not self.memory.enabled:
            raise ConfigError("memory.supervised needs memory.enabled: --supervised and --no-memory conflict")
        if self.model.norm == "batch" and self.memory.enabled:
            raise ConfigError(
                'model.norm = "batch" is a baseline without a color condition: it needs '
                "memory.enabled = false (--no-memory)"
            )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the TOML file at `path` (if any), then `overrides`; validated."""
    config = RunConfig()
    if path is not None:
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from error
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not valid TOML ({error})") from error
        config = _from_values(values, str(path), frozenset())
    return config.override(overrides or [])


def _from_values(values: dict, source: str, dropped: frozenset[str]) -> RunConfig:
    """A validated config from a nested dict, skipping the `dropped` "section.key" names."""
    config = RunConfig()
    for section, entries in values.items():
        if section not in _sections():
            known = ", ".join(sorted(_sections()))
            raise ConfigError(f"{source}: unknown section [{section}]; expected one of {known}")
        if not isinstance(entries, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of settings, got {entries!r}")
        for key, value in entries.items():
            if f"{section}.{key}" not in dropped:
                _assign(config, f"{section}.{key}", value, source)
    config.validate()
    return config


def _sections() -> dict[str, type]:
    return {f.name: f.type for f in dataclasses.fields(RunConfig)}


def _float_keys() -> list[str]:
    """Every "section.name" whose setting is a float."""
    keys = []
    for section in dataclasses.fields(RunConfig):
        hints = typing.get_type_hints(section.default_factory)
        keys += [f"{section.name}.{name}" for name, hint in hints.items() if hint is float]
    return keys


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _get(config: RunConfig, key: str):
    section, name = key.split(".", 1)
    return getattr(getattr(config, section), name)


def _assign(config: RunConfig, key: str, value, source: str) -> None:
    """Set `section.name` to `value`, converting int to float where the field is a float."""
    section_name, _, name = key.partition(".")
    section = getattr(config, section_name, None)
    if not name or section is None or not dataclasses.is_dataclass(section):
        raise ConfigError(f"{source}: unknown key {key!r}; keys look like train.steps or memory.threshold")
    hints = typing.get_type_hints(type(section))
    if name not in hints:
        known = ", ".join(sorted(hints))
        raise ConfigError(f"{source}: unknown key {key!r}; [{section_name}] has {known}")
    expected = hints[name]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not _matches(value, expected):
        raise ConfigError(f"{source}: {key} must be {_type_name(expected)}, got {value!r}")
    setattr(section, name, value)


def _matches(value, expected) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        expected, str(expected)
    )


def _parse_value(raw: str):
    """TOML scalar syntax (1, 0.5, true, "x"); a bare word that isn't TOML is taken as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
