"""The training configuration: one flat dataclass that flows from YAML/flags to the trainer to the result row.

Checks follow nanoGPT's configurator (an override's type must match the default, unknown keys are errors) without
its ``exec``. ``TrainConfig`` is a pydantic dataclass in strict mode, so the trainer and the search backends can
trust it, and its errors read like the study files' (``sparsity_search.validation``): one line, field first.
It stays a dataclass (``dataclasses.fields``/``asdict``/``replace`` work) because the trainer and the population
code treat it as one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Union, get_args

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from . import factories
from .errors import ConfigError
from .validation import validation_error_parts

Dataset = Literal["digits", "mnist", "fashion_mnist", "cifar10"]
Model = Literal["mlp", "convnet", "vgg5", "vgg9", "vgg11"]
DATASETS: tuple[str, ...] = get_args(Dataset)
MODELS: tuple[str, ...] = get_args(Model)
OPTION_PREFIX = "model."  # search-space parameters and --set keys that are options of a user's model factory

# Finite numbers in a range; ints are accepted for floats (lossless), nothing else is coerced.
Fraction = Annotated[float, Field(gt=0.0, le=0.5, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


_STRICT = ConfigDict(strict=True, extra="forbid")


def _error(kind: str, message: str, field: str | None = None) -> PydanticCustomError:
    """A validation error whose text is ``message`` as is (pydantic formats ``{...}`` in its templates)."""
    return PydanticCustomError(kind, "{message}", {"message": message, **({"field": field} if field else {})})


def _factory_string(value: Any, field: str) -> Any:
    """A callable given as a factory becomes its ``MODULE:NAME`` (``factories.callable_path``): configs stay data."""
    if not callable(value) or isinstance(value, str):
        return value
    try:
        return factories.callable_path(value, field)
    except ConfigError as exc:
        raise _error("factory", exc.reason) from None


@dataclass(config=_STRICT)
class UserModel:
    """A network the user brings: ``factory(input_shape, num_classes, **options)`` returns a ``torch.nn.Module``.

    ``step_mode``: ``single`` calls ``forward(x [B, ...])`` once per timestep, ``multi`` calls
    ``forward(x_seq [T, B, ...])`` once. ``spiking`` names neuron classes (``MODULE:CLASS``) of plain-torch models
    (snnTorch, SpikingJelly, norse and sinabs neurons are found without it). ``module_dir`` is searched first for
    the modules named here: a study or config file sets it to its own folder.
    """

    factory: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    step_mode: Literal["single", "multi"] = "single"
    spiking: list[str] = dataclasses.field(default_factory=list)
    module_dir: str = ""

    @field_validator("factory", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return _factory_string(value, "model.factory")

    @field_validator("spiking", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_factory_string(v, "model.spiking") for v in value]
        return value


@dataclass(config=_STRICT)
class UserDataset:
    """Data the user brings: ``factory(**options)`` returning ``(train, val, test)`` or ``(train, test)`` torch
    Datasets, or ``path``: an ``.npz`` file with ``x_train, y_train, x_test, y_test`` (optional ``x_val, y_val``).
    Relative paths are relative to the study or config file that names them (recorded absolute)."""

    factory: str = ""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: str = ""
    module_dir: str = ""

    @field_validator("factory", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return _factory_string(value, "dataset.factory")

    @model_validator(mode="after")
    def _one_source(self) -> "UserDataset":
        if bool(self.factory) == bool(self.path):
            raise _error("source", "give either factory (MODULE:FUNCTION) or path (an .npz file)")
        if self.path and self.options:
            raise _error("options", "options are arguments of a dataset factory; a path takes none", "options")
        return self

    @property
    def name(self) -> str:
        """How logs and rows name the data: the factory, or the file's name."""
        return self.factory or Path(self.path).name


def _nested(kind: type, value: Any, field: str) -> Any:
    """Build ``kind`` (a strict dataclass) from a mapping; its first error becomes this field's, ``model.step_mode``."""
    try:
        return kind(**value)
    except ValidationError as exc:
        inner, message = validation_error_parts(exc)
        raise _error("nested", message, f"{field}.{inner}" if inner else field) from None


@dataclass(config=_STRICT)
class TrainConfig:
    """Everything one training run needs. Defaults train an MLP SNN on the embedded digits data in seconds."""

    # data: a built-in name, or the user's (UserDataset: a factory or an .npz file)
    dataset: Union[Dataset, UserDataset] = "digits"
    data_dir: str = "data"  # folder holding MNIST / Fashion-MNIST / CIFAR-10 in torchvision's layout
    download: bool = False  # only fetch datasets when asked
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.2  # digits only
    train_subset: Annotated[int, Field(ge=0)] = 0  # 0 = all training samples
    augment: bool | None = None  # random crop (padding 4) and flip of training images; None: CIFAR-10 only
    # data placement: held on the device, or streamed through a DataLoader (same numbers either way)
    stream: bool | None = None  # None: stream only data whose float32 inputs exceed half the device's free memory
    stream_workers: Annotated[int, Field(ge=0)] = 2  # DataLoader processes reading a dataset factory's items
    # model: a built-in name, or the user's (UserModel; ``MODULE:FUNCTION`` for short)
    model: Union[Model, UserModel] = "mlp"
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256])  # MLP hidden sizes
    channels: list[int] = dataclasses.field(default_factory=lambda: [32, 64])  # convnet channels
    neuron: Literal["lif", "if"] = "lif"
    beta: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.9  # LIF leak per step
    tau: NonNegative = 0.0  # if > 0, beta = exp(-1/tau)
    threshold: Positive = 1.0
    reset: Literal["soft", "hard"] = "soft"
    surrogate: Literal["fast_sigmoid", "arctan", "triangle"] = "fast_sigmoid"
    surrogate_slope: Positive = 5.0
    encoding: Literal["direct", "poisson", "none"] = "direct"  # none: samples already have a time axis [T, ...]
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

    @field_validator("model", mode="before")
    @classmethod
    def _user_model(cls, value: Any) -> Any:
        if isinstance(value, str) and ":" in value or callable(value) and not isinstance(value, (str, type)):
            value = {"factory": value}
        if isinstance(value, str) and value not in MODELS:
            raise _error("model", f"must be one of {', '.join(MODELS)} or a MODULE:FUNCTION factory; got {value!r}")
        return _nested(UserModel, value, "model") if isinstance(value, Mapping) else value

    @field_validator("dataset", mode="before")
    @classmethod
    def _user_dataset(cls, value: Any) -> Any:
        if isinstance(value, str) and ":" in value or callable(value) and not isinstance(value, (str, type)):
            value = {"factory": value}
        if isinstance(value, str) and value not in DATASETS:
            raise _error("dataset", f"must be one of {', '.join(DATASETS)}, a MODULE:FUNCTION factory or a mapping "
                                    f"with path: FILE.npz; got {value!r}")
        return _nested(UserDataset, value, "dataset") if isinstance(value, Mapping) else value

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
    def user_model(self) -> UserModel | None:
        """The user's model, or None for a built-in one."""
        return self.model if isinstance(self.model, UserModel) else None

    @property
    def user_dataset(self) -> UserDataset | None:
        """The user's data, or None for a built-in dataset."""
        return self.dataset if isinstance(self.dataset, UserDataset) else None

    def user_code(self) -> list[str]:
        """The ``MODULE:NAME`` strings of the user's code this config names (factories and neuron classes)."""
        names = []
        if self.user_model is not None:
            names += [self.user_model.factory, *self.user_model.spiking]
        if self.user_dataset is not None and self.user_dataset.factory:
            names.append(self.user_dataset.factory)
        return names

    @property
    def leak(self) -> float:
        """The per-step membrane decay actually used: 1 for IF, exp(-1/tau) when tau is set, else beta."""
        if self.neuron == "if":
            return 1.0
        return math.exp(-1.0 / self.tau) if self.tau > 0 else self.beta

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self, names: Iterable[str]) -> tuple[str, ...]:
        """The named fields' values as a hashable key, equal exactly when the values are (dicts and lists too)."""
        values = self.to_dict()
        return tuple(json.dumps(values[n], sort_keys=True) for n in names)

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


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML keeps the last value
    silently, so a study file with two ``n_trials`` would run with whichever came last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(f"line {line}: key {key!r} appears twice in one mapping (first at line "
                                        f"{seen[key]})")
                seen[key] = line
            except TypeError:  # an unhashable key: the base loader reports it
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or unreadable file, a folder, bytes that are not UTF-8 text, a parse
    error, a key given twice or a top level that is not a mapping is a one-line ``ConfigError`` naming the file."""
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
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(str(exc), source=str(path)) from None
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
        values = anchor(load_yaml(path), Path(path).parent)
        source = str(path)
        from_dict(without_options(values), source)  # report file errors against the file, before overrides
    overrides = dict(overrides or {})
    options = {k: overrides.pop(k) for k in list(overrides) if k.startswith(OPTION_PREFIX)}
    values.update(anchor(overrides, Path.cwd()))
    values = with_options(values, options)
    _check_schedule_has_lambda(values, source if not overrides else None)
    return from_dict(values, source if not overrides and not options else None)


def anchor(values: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """``values`` with the user's model and dataset tied to ``base_dir`` (the folder of the file naming them, or the
    working directory for flags): factories are imported from there first (``module_dir``) and a relative
    ``dataset.path`` is under it. Recorded absolute, so workers and resumes started elsewhere find them; callables
    are recorded by their import path (``factories.callable_path``), so the result is plain data."""
    out = dict(values)
    base = base_dir.resolve()
    for key in ("model", "dataset"):
        value = out.get(key)
        if isinstance(value, str) and ":" in value or callable(value) and not isinstance(value, str):
            value = {"factory": value}
        if not isinstance(value, Mapping):
            continue
        value = dict(value)
        if callable(value.get("factory")):
            value["factory"] = factories.callable_path(value["factory"], f"{key}.factory")
        if isinstance(value.get("spiking"), list):
            value["spiking"] = [factories.callable_path(c, "model.spiking") if callable(c) else c
                                for c in value["spiking"]]
        if value.get("factory") or value.get("spiking"):
            value["module_dir"] = str(base / value["module_dir"]) if value.get("module_dir") else str(base)
        if key == "dataset" and isinstance(value.get("path"), str) and value["path"]:
            value["path"] = str(base / os.path.expanduser(value["path"]))
        out[key] = value
    return out


def without_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` less the ``model.NAME`` keys (options of a user's model, applied by ``with_options``)."""
    return {k: v for k, v in values.items() if not k.startswith(OPTION_PREFIX)}


def with_options(values: Mapping[str, Any], options: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """``values`` with the ``model.NAME`` entries of ``values`` and ``options`` (sampled or ``--set``; other keys
    are ignored) merged into the user model's factory options; they need a user model (``model: {factory: ...}``)."""
    out = without_options(values)
    options = {k: v for k, v in {**values, **options}.items() if k.startswith(OPTION_PREFIX)}
    if not options:
        return out
    model = out.get("model", "mlp")
    if isinstance(model, str) and ":" in model or callable(model) and not isinstance(model, str):
        model = {"factory": model}
    if not isinstance(model, (Mapping, UserModel)):
        raise ConfigError(f"the built-in model {model!r} takes no options; {OPTION_PREFIX}NAME sets an option of "
                          "a user model (model: {factory: MODULE:FUNCTION})", field=next(iter(options)),
                          source=source)
    model = dataclasses.asdict(model) if isinstance(model, UserModel) else dict(model)
    model["options"] = {**(model.get("options") or {}), **{k[len(OPTION_PREFIX):]: v for k, v in options.items()}}
    out["model"] = model
    return out


def with_user_code(cfg: TrainConfig, model: Any = None, dataset: Any = None) -> TrainConfig:
    """``cfg`` training the user's ``model`` / ``dataset`` factory (a callable or ``MODULE:FUNCTION``; ``None`` and
    anything that is not a factory, such as loaded data, leave the field alone); a user model keeps its options."""
    changes: dict[str, Any] = {}
    if model is not None:
        current = cfg.user_model
        changes["model"] = {"factory": model, **({} if current is None else {
            "options": current.options, "step_mode": current.step_mode, "spiking": current.spiking})}
    if isinstance(dataset, str) or callable(dataset) and not isinstance(dataset, type):
        changes["dataset"] = {"factory": dataset}
    return cfg.replace(**anchor(changes, Path.cwd())) if changes else cfg


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
    key = key.strip()
    option = key.startswith(OPTION_PREFIX) and len(key) > len(OPTION_PREFIX)
    key = key if option else key.replace("-", "_")
    if key not in FIELDS and not option:
        raise ConfigError("unknown key", field=key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"cannot parse value {raw!r}", field=key) from None
    if option:  # checked against the factory's signature when the model is built
        return key, value
    if key in ("model", "dataset") and (isinstance(value, Mapping) or ":" in str(value)):
        return key, value  # the user's: anchored to the working directory by load_config, then validated
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
