"""The training configuration: one flat dataclass that flows from YAML/flags to the trainer to the result row.

Checks follow nanoGPT's configurator (an override's type must match the default, unknown keys are errors) without
its ``exec``. ``TrainConfig`` is a pydantic dataclass in strict mode, so the trainer and the search backends can
trust it, and its errors read like the study files' (``sparsity_search.validation``): one line, field first.
It stays a dataclass (``dataclasses.fields``/``asdict``/``replace`` work) because the trainer and the population
code treat it as one.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, get_args

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from .errors import ConfigError
from .validation import validation_error_parts

Dataset = Literal["digits", "mnist", "fashion_mnist", "cifar10"]
Model = Literal["mlp", "convnet", "vgg5", "vgg9", "vgg11"]
DATASETS: tuple[str, ...] = get_args(Dataset)
MODELS: tuple[str, ...] = get_args(Model)

# Finite numbers in a range; ints are accepted for floats (lossless), nothing else is coerced.
Fraction = Annotated[float, Field(gt=0.0, le=0.5, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


@dataclass(config=ConfigDict(strict=True, extra="forbid"))
class TrainConfig:
    """Everything one training run needs. Defaults train an MLP SNN on the embedded digits data in seconds."""

    # data
    dataset: Dataset = "digits"
    data_dir: str = "data"  # folder holding MNIST / Fashion-MNIST / CIFAR-10 in torchvision's layout
    download: bool = False  # only fetch datasets when asked
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.2  # digits only
    train_subset: Annotated[int, Field(ge=0)] = 0  # 0 = all training samples
    # model
    model: Model = "mlp"
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256])  # MLP hidden sizes
    channels: list[int] = dataclasses.field(default_factory=lambda: [32, 64])  # convnet channels
    neuron: Literal["lif", "if"] = "lif"
    beta: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.9  # LIF leak per step
    tau: NonNegative = 0.0  # if > 0, beta = exp(-1/tau)
    threshold: Positive = 1.0
    reset: Literal["soft", "hard"] = "soft"
    surrogate: Literal["fast_sigmoid", "arctan", "triangle"] = "fast_sigmoid"
    surrogate_slope: Positive = 5.0
    encoding: Literal["direct", "poisson"] = "direct"
    timesteps: Count = 4
    implementation: Literal["fast", "reference"] = "fast"
    # optimisation
    epochs: Count = 20
    batch_size: Count = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Positive = 2e-3
    momentum: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.9
    weight_decay: NonNegative = 0.0
    lr_schedule: Literal["cosine", "step", "constant", "piecewise"] = "cosine"
    lr_step_epochs: Count = 10
    lr_gamma: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.1
    # sparsity term: loss = CE + lambda(t) * S
    schedule: Literal["constant", "linear", "annealing", "piecewise"] = "annealing"
    lambda_max: NonNegative = 0.0
    temperature: Positive = 0.3
    warmup_epochs: NonNegative = 0.0
    layer_weights: list[float] = dataclasses.field(default_factory=list)  # per spiking layer; [] = by neurons
    # runtime
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    threads: Annotated[int, Field(ge=0)] = 0  # torch intra-op threads; 0 = torch's default
    checkpoint_dir: str = ""  # "" = no checkpoints; else one file per run, rewritten every epoch
    resume: bool = False  # continue from checkpoint_dir's checkpoint when it exists

    # piecewise schedules (schedule / lr_schedule: piecewise; PBT exports the ones it learned): [[epoch, value], ...]
    # from epoch 0, epochs non-decreasing; each value holds from its epoch until the next point (schedules.Piecewise)
    lambda_points: list[list[float]] = dataclasses.field(default_factory=list)
    lr_points: list[list[float]] = dataclasses.field(default_factory=list)

    @field_validator("lambda_points", "lr_points")
    @classmethod
    def _points(cls, value: list[list[float]]) -> list[list[float]]:
        if any(len(p) != 2 for p in value):
            raise PydanticCustomError("points", "expected [epoch, value] pairs")
        if value and value[0][0] != 0:
            raise PydanticCustomError("points", "the first point must be at epoch 0; got {epoch}",
                                      {"epoch": value[0][0]})
        for (e0, _), (e1, v1) in zip(value, value[1:]):
            if e1 < e0:
                raise PydanticCustomError("points", "epochs must be non-decreasing; got {e1} after {e0}",
                                          {"e0": e0, "e1": e1})
        if any(not (math.isfinite(e) and math.isfinite(v) and v >= 0) for e, v in value):
            raise PydanticCustomError("points", "epochs and values must be finite and >= 0")
        return value

    @model_validator(mode="after")
    def _piecewise_has_points(self) -> "TrainConfig":
        for schedule, name, points in (("schedule", "lambda_points", self.lambda_points),
                                       ("lr_schedule", "lr_points", self.lr_points)):
            if getattr(self, schedule) == "piecewise" and not points:
                raise PydanticCustomError("points", "{schedule}: piecewise needs {name}",
                                          {"field": name, "schedule": schedule, "name": name})
            if getattr(self, schedule) != "piecewise" and points:
                raise PydanticCustomError("points", "{name} are given, but only piecewise reads them; got {value}",
                                          {"field": schedule, "name": name, "value": getattr(self, schedule)})
        if any(v <= 0 for _, v in self.lr_points):
            raise PydanticCustomError("points", "learning rates must be > 0", {"field": "lr_points"})
        return self

    @field_validator("hidden", "channels")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if not value or any(v < 1 for v in value):
            raise PydanticCustomError("sizes", "must be a non-empty list of positive sizes")
        return value

    @field_validator("layer_weights")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        if any(w < 0 or not math.isfinite(w) for w in value):
            raise PydanticCustomError("weights", "weights must be finite and >= 0")
        return value

    @model_validator(mode="after")
    def _warmup_before_the_end(self) -> "TrainConfig":
        if self.warmup_epochs >= self.epochs and self.lambda_max > 0 and self.schedule != "constant":
            raise PydanticCustomError("warmup", "must be < epochs ({epochs})",
                                      {"field": "warmup_epochs", "epochs": self.epochs})
        return self

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


def _raising_config_errors(init: Any) -> Any:
    # pydantic writes the dataclass's __init__ itself; wrap it so a bad value is a ConfigError (one line, exit 2)
    # wherever a TrainConfig is built, not a multi-line ValidationError.
    def __init__(self: TrainConfig, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            field, message = validation_error_parts(exc)
            raise ConfigError(message, field=field) from None

    __init__.__doc__ = init.__doc__
    return __init__


TrainConfig.__init__ = _raising_config_errors(TrainConfig.__init__)  # type: ignore[method-assign]

FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _field_type(name: str) -> type:
    default = FIELDS[name].default
    if default is dataclasses.MISSING:
        default = FIELDS[name].default_factory()  # type: ignore[misc]
    return type(default)


def from_dict(values: Mapping[str, Any], source: str | None = None) -> TrainConfig:
    """Build a config from a mapping; unknown keys and bad values raise ``ConfigError`` naming ``source``."""
    if not isinstance(values, Mapping):
        raise ConfigError("expected a mapping of config fields", source=source)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError("unknown key (valid keys: see `sparsity-search train --help`)", field=unknown[0], source=source)
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        raise ConfigError(exc.reason, field=exc.field, source=source) from None


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
    """Parse ``key=value`` (value in YAML syntax) from ``--set``; the key must be a config field and the value
    valid for it."""
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
    try:
        return key, getattr(from_dict({key: value}), key)
    except ConfigError as exc:
        if exc.field == key:
            raise
        return key, value  # valid alone, but a rule across fields (piecewise's points): the whole config decides


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML that ``load_config`` (and ``sparsity-search train --config``) reads back."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
