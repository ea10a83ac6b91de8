"""The training configuration: one flat dataclass that flows from YAML/flags to the trainer to the result row.

Checks follow nanoGPT's configurator (an override's type must match the default, unknown keys are errors) without
its ``exec``: every value is validated here, so the trainer and the search backends can trust a ``TrainConfig``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
MODELS = ("mlp", "convnet", "vgg5", "vgg9", "vgg11")


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict[str, Any]:
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


@dataclass
class TrainConfig:
    """Everything one training run needs. Defaults train an MLP SNN on the embedded digits data in seconds."""

    # data
    dataset: str = field(default="digits", metadata=_choices(*DATASETS))
    data_dir: str = "data"  # folder holding MNIST / Fashion-MNIST / CIFAR-10 in torchvision's layout
    download: bool = False  # only fetch datasets when asked
    val_fraction: float = field(default=0.15, metadata=_range(0.0, 0.5, lo_open=True))
    test_fraction: float = field(default=0.2, metadata=_range(0.0, 0.5, lo_open=True))  # digits only
    train_subset: int = field(default=0, metadata=_range(0))  # 0 = all training samples
    # model
    model: str = field(default="mlp", metadata=_choices(*MODELS))
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden sizes
    channels: list[int] = field(default_factory=lambda: [32, 64])  # convnet channels
    neuron: str = field(default="lif", metadata=_choices("lif", "if"))
    beta: float = field(default=0.9, metadata=_range(0.0, 1.0, lo_open=True))  # LIF leak per step
    tau: float = field(default=0.0, metadata=_range(0.0))  # if > 0, beta = exp(-1/tau)
    threshold: float = field(default=1.0, metadata=_range(0.0, lo_open=True))
    reset: str = field(default="soft", metadata=_choices("soft", "hard"))
    surrogate: str = field(default="fast_sigmoid", metadata=_choices("fast_sigmoid", "arctan", "triangle"))
    surrogate_slope: float = field(default=5.0, metadata=_range(0.0, lo_open=True))
    encoding: str = field(default="direct", metadata=_choices("direct", "poisson"))
    timesteps: int = field(default=4, metadata=_range(1))
    implementation: str = field(default="fast", metadata=_choices("fast", "reference"))
    # optimisation
    epochs: int = field(default=20, metadata=_range(1))
    batch_size: int = field(default=64, metadata=_range(1))
    optimizer: str = field(default="adam", metadata=_choices("adam", "sgd"))
    lr: float = field(default=2e-3, metadata=_range(0.0, lo_open=True))
    momentum: float = field(default=0.9, metadata=_range(0.0, 1.0))
    weight_decay: float = field(default=0.0, metadata=_range(0.0))
    lr_schedule: str = field(default="cosine", metadata=_choices("cosine", "step", "constant"))
    lr_step_epochs: int = field(default=10, metadata=_range(1))
    lr_gamma: float = field(default=0.1, metadata=_range(0.0, 1.0, lo_open=True))
    # sparsity term: loss = CE + lambda(t) * S
    schedule: str = field(default="annealing", metadata=_choices("constant", "linear", "annealing"))
    lambda_max: float = field(default=0.0, metadata=_range(0.0))
    temperature: float = field(default=0.3, metadata=_range(0.0, lo_open=True))
    warmup_epochs: float = field(default=0.0, metadata=_range(0.0))
    layer_weights: list[float] = field(default_factory=list)  # per spiking layer; empty = neuron-weighted mean
    # runtime
    seed: int = 0
    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    precision: str = field(default="fp32", metadata=_choices("fp32", "bf16", "auto"))
    threads: int = field(default=0, metadata=_range(0))  # torch intra-op threads; 0 = torch's default
    checkpoint_dir: str = ""  # "" = no checkpoints; else one file per run, rewritten every epoch
    resume: bool = False  # continue from checkpoint_dir's checkpoint when it exists

    def __post_init__(self) -> None:
        validate(self)

    @property
    def leak(self) -> float:
        """The per-step membrane decay actually used: 1 for IF, exp(-1/tau) when tau is set, else beta."""
        if self.neuron == "if":
            return 1.0
        return math.exp(-1.0 / self.tau) if self.tau > 0 else self.beta

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return from_dict({**self.to_dict(), **changes})


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _field_type(name: str) -> type:
    default = FIELDS[name].default
    if default is dataclasses.MISSING:
        default = FIELDS[name].default_factory()  # type: ignore[misc]
    return type(default)


def _coerce(name: str, value: Any, source: str | None) -> Any:
    """Return ``value`` as the field's type, allowing only lossless coercions (int -> float)."""
    want = _field_type(name)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", field=name, source=source)
        inner = int if name == "hidden" or name == "channels" else float
        out = []
        for v in value:
            if inner is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if type(v) is not inner:
                raise ConfigError(f"expected a list of {inner.__name__}, got {value!r}", field=name, source=source)
            out.append(v)
        return out
    if type(value) is not want:
        raise ConfigError(f"expected {want.__name__}, got {value!r}", field=name, source=source)
    return value


def validate(cfg: TrainConfig, source: str | None = None) -> None:
    """Check every field's type, choices and range; raise ``ConfigError`` naming the first bad field."""
    for name, f in FIELDS.items():
        value = getattr(cfg, name)
        setattr(cfg, name, _coerce(name, value, source))
        value = getattr(cfg, name)
        meta = f.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"must be one of {', '.join(meta['choices'])}; got {value!r}", field=name, source=source)
        if "lo" in meta and isinstance(value, (int, float)):
            lo, hi, lo_open = meta["lo"], meta["hi"], meta["lo_open"]
            if not math.isfinite(value):
                raise ConfigError(f"must be finite; got {value!r}", field=name, source=source)
            if lo is not None and (value <= lo if lo_open else value < lo):
                raise ConfigError(f"must be {'>' if lo_open else '>='} {lo}; got {value!r}", field=name, source=source)
            if hi is not None and value > hi:
                raise ConfigError(f"must be <= {hi}; got {value!r}", field=name, source=source)
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise ConfigError("must be a non-empty list of positive sizes", field="hidden", source=source)
    if not cfg.channels or any(c < 1 for c in cfg.channels):
        raise ConfigError("must be a non-empty list of positive sizes", field="channels", source=source)
    if any(w < 0 or not math.isfinite(w) for w in cfg.layer_weights):
        raise ConfigError("weights must be finite and >= 0", field="layer_weights", source=source)
    if cfg.warmup_epochs >= cfg.epochs and cfg.lambda_max > 0 and cfg.schedule != "constant":
        raise ConfigError(f"must be < epochs ({cfg.epochs})", field="warmup_epochs", source=source)


def from_dict(values: Mapping[str, Any], source: str | None = None) -> TrainConfig:
    """Build a config from a mapping; unknown keys and bad values raise ``ConfigError``."""
    if not isinstance(values, Mapping):
        raise ConfigError("expected a mapping of config fields", source=source)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError("unknown key (valid keys: see `sparsity-search train --help`)", field=unknown[0], source=source)
    cfg = TrainConfig.__new__(TrainConfig)
    for name, f in FIELDS.items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        setattr(cfg, name, values.get(name, default))
    validate(cfg, source)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or unreadable file, a folder, bytes that are not UTF-8 text, a parse
    error or a top level that is not a mapping is a one-line ``ConfigError`` naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror or exc})", source=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a UTF-8 text file (byte {exc.start} cannot be decoded); expected YAML",
                          source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML{where}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", source=str(path))
    return data


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then ``overrides`` (already typed, e.g. from CLI flags).

    A ``linear`` or ``annealing`` schedule named without any ``lambda_max`` is an error (see
    ``_check_schedule_has_lambda``); the defaults alone train without the sparsity term.
    """
    values: dict[str, Any] = {}
    source = None
    if path is not None:
        values = load_yaml(path)
        source = str(path)
        from_dict(values, source)  # report file errors against the file, before overrides mix in
    values.update(overrides or {})
    _check_schedule_has_lambda(values, source if not overrides else None)
    return from_dict(values, source if not overrides else None)


def _check_schedule_has_lambda(values: Mapping[str, Any], source: str | None) -> None:
    """Naming a ramping schedule but no ``lambda_max`` would ramp a weight of 0: no sparsity term at all, which
    is never what asking for the schedule meant. An explicit ``lambda_max: 0`` (a baseline) is allowed."""
    schedule = values.get("schedule")
    if schedule in ("linear", "annealing") and "lambda_max" not in values:
        raise ConfigError(f"not given, so schedule {schedule!r} would ramp a sparsity weight of 0; set lambda_max "
                          "(--lambda-max) > 0, or 0 explicitly to train without the sparsity term",
                          field="lambda_max", source=source)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value in YAML syntax) from ``--set``; the key must be a config field."""
    if "=" not in text:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}", field="--set")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if key not in FIELDS:
        raise ConfigError("unknown key", field=key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"cannot parse value {raw!r}", field=key) from None
    if _field_type(key) is str and not isinstance(value, str):
        value = raw
    return key, _coerce(key, value, None)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML that ``load_config`` (and ``sparsity-search train --config``) reads back."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
