"""Study files (``studies/*.yaml``): what to search, how, and where results go. Validated before anything runs.

    name: quickstart
    dataset: digits            # shortcuts for train.dataset / train.model
    model: mlp
    train: {epochs: 8}         # fixed TrainConfig fields for every trial
    search_space: ../search_spaces/paper.yaml   # relative to this file, or an inline {params: ...}
    objectives: [val_accuracy, spikes_per_sample]   # or energy_uj; directions are implied (or {name, direction})
    sampler: {name: tpe, options: {n_startup_trials: 8}}
    n_trials: 24
    baseline: true             # a lambda = 0 trial runs first; reductions are reported against it
    constraints: {min_accuracy: 0.8}

Every error names the file and the field (``studies/x.yaml: sampler.name: ...``); nothing touches storage before
the whole file validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..config import TrainConfig, anchor, from_dict, load_yaml, with_options
from ..errors import ConfigError
from ..moasha import TieBreak
from ..validation import Strict, format_validation_error
from . import _samplers
from .pbt_settings import PBTSettings, check_pbt
from .space import SearchSpace, parse_space

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

# Metrics a study can optimise, with the direction each is optimised in.
OBJECTIVES: dict[str, str] = {
    "val_accuracy": "maximize", "test_accuracy": "maximize", "spikes_per_sample": "minimize",
    "energy_uj": "minimize", "firing_rate": "minimize", "synops_per_sample": "minimize",
}
DEFAULT_RESULTS = "results"
SNAPSHOT = "study.yaml"  # a launch's copy of the validated study file, in <results>/<name>/


class ObjectiveSpec(Strict):
    """One objective of a study: a metric the trainer reports, and the direction it is optimised in."""

    name: str
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="after")
    def _known(self) -> "ObjectiveSpec":
        if self.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; choose from {', '.join(OBJECTIVES)}")
        if self.direction is None:
            self.direction = OBJECTIVES[self.name]  # type: ignore[assignment]
        elif self.direction != OBJECTIVES[self.name]:
            raise ValueError(f"{self.name} must be {OBJECTIVES[self.name]}d, not {self.direction}d")
        return self


class Sampler(Strict):
    name: _samplers.SamplerName = "tpe"
    options: dict[str, Any] = Field(default_factory=dict)


class Constraints(Strict):
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)


class EarlyStopping(Strict):
    kind: Literal["moasha", "none"] = "none"
    min_epochs: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)
    max_epochs: int | None = Field(default=None, ge=1)  # default: the training epochs
    tie_break: TieBreak = "hypervolume"  # inside a front: moasha.rank_records
    # stopping: a trial at a rung trains on or ends (moasha.should_continue); promotion: it pauses and a free
    # worker (Optuna) or Tune slot (Ray) resumes the best paused one first (moasha.promotable)
    mode: Literal["stopping", "promotion"] = "promotion"  # measured faster to the front: docs/benchmarks.md


class Heartbeat(Strict):
    """How fast a dead worker's trial is noticed: failed after ``grace_period`` s without a heartbeat, then retried."""

    interval: int = Field(default=5, ge=1)
    grace_period: int = Field(default=30, ge=2)

    @model_validator(mode="after")
    def _longer_than_interval(self) -> "Heartbeat":
        if self.grace_period <= self.interval:
            raise ValueError("grace_period must be longer than interval")
        return self


class Population(Strict):
    size: int = Field(default=1, ge=1)


class RaySettings(Strict):
    cpus_per_trial: float = Field(default=1.0, gt=0)
    max_concurrent: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=1, ge=0)


class StudySpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    backend: Literal["optuna", "ray"] = "optuna"
    dataset: Union[str, dict[str, Any], None] = None  # a built-in name, or the user's: {factory: ...} / {path: ...}
    model: Union[str, dict[str, Any], None] = None  # a built-in name, or the user's: {factory: MODULE:FUNCTION, ...}
    train: dict[str, Any] = Field(default_factory=dict)
    search_space: Union[str, SearchSpace]
    objectives: list[Union[str, ObjectiveSpec]] = Field(default_factory=lambda: ["val_accuracy", "spikes_per_sample"],
                                                    validate_default=True)
    sampler: Sampler = Field(default_factory=Sampler)
    n_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    seed: int = 0
    storage: str | None = None
    results: str | None = None
    baseline: bool = True
    constraints: Constraints = Field(default_factory=Constraints)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    population: Population = Field(default_factory=Population)
    pbt: PBTSettings | None = None  # population-based training of each population round (pbt_settings)
    ray: RaySettings = Field(default_factory=RaySettings)
    # Recorded by parse_study, not written by users: the file to edit to change the search space (the search-space
    # file, or the study file of an inline space), absolute; kept in snapshots so boundary notes can name it.
    search_space_file: str | None = None

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[Union[str, ObjectiveSpec]]) -> list[ObjectiveSpec]:
        objs = [ObjectiveSpec(name=o) if isinstance(o, str) else o for o in value]
        if len(objs) < 2:
            raise ValueError("a multi-objective study needs at least two objectives")
        if len({o.name for o in objs}) != len(objs):
            raise ValueError("objectives must be distinct")
        if not any(o.direction == "maximize" for o in objs):
            raise ValueError("one objective must be an accuracy (val_accuracy or test_accuracy)")
        return objs

    @model_validator(mode="after")
    def _budget(self) -> "StudySpec":
        if self.n_trials is None and self.timeout is None:
            raise ValueError("n_trials: give n_trials and/or timeout")
        return self

    @model_validator(mode="after")
    def _rungs_have_objectives(self) -> "StudySpec":
        # MO-ASHA compares trials on each epoch's metrics; the test split is evaluated once, after training.
        if self.early_stopping.kind == "moasha" and "test_accuracy" in self.objective_names:
            raise ValueError("early_stopping: moasha compares trials every epoch, but test_accuracy is only "
                             "measured at the end; use val_accuracy")
        return self

    # -- derived views ---------------------------------------------------------------------------------------
    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]  # type: ignore[union-attr]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]  # type: ignore[union-attr]

    @property
    def accuracy_metric(self) -> str:
        return next(o.name for o in self.objectives if o.direction == "maximize")  # type: ignore[union-attr]

    @property
    def cost_metric(self) -> str:
        return next(o.name for o in self.objectives if o.direction == "minimize")  # type: ignore[union-attr]

    # The timesteps of data with its own time axis (encoding: none), when the file does not give them: set by
    # ``preflight`` in every process that trains, never recorded (the file and the snapshot keep agreeing).
    _data_timesteps: int | None = PrivateAttr(default=None)

    def fixed(self) -> dict[str, Any]:
        """The TrainConfig fields the study file sets for every trial (train: plus the dataset/model shortcuts)."""
        fixed = dict(self.train)
        fixed.update({k: v for k, v in (("dataset", self.dataset), ("model", self.model)) if v is not None})
        return fixed

    def _trained(self) -> dict[str, Any]:
        """``fixed`` plus what the data decides (its own timesteps): the settings every trial trains with."""
        fixed = self.fixed()
        if self._data_timesteps is not None and "timesteps" not in fixed:
            fixed["timesteps"] = self._data_timesteps
        return fixed

    def take_data_timesteps(self, steps: int) -> None:
        """Train with the data's own number of timesteps unless the study file sets ``timesteps``."""
        self._data_timesteps = steps

    def space(self) -> SearchSpace:
        assert isinstance(self.search_space, SearchSpace), "resolved by load_study_file"
        return self.search_space

    def sampled_config(self, params: dict[str, Any]) -> TrainConfig:
        """The config a sampled trial trains: fixed settings, then the sampled parameters (``model.NAME`` ones
        become options of the user's model factory)."""
        return from_dict(with_options({**self._trained(), **params}, {}))

    def baseline_config(self) -> TrainConfig:
        """lambda = 0 with every other setting at the study's fixed value or the trainer default."""
        return from_dict({**self._trained(), "lambda_max": 0.0})

    def make_sampler(self, seed: int | None = None) -> "BaseSampler":
        """The study's Optuna sampler (``seed`` defaults to the study's), constrained when the study has constraints."""
        constrained = _samplers.stored_constraints if self.constraints.min_accuracy is not None else None
        return _samplers.make_sampler(self.sampler.name, self.sampler.options, self.seed if seed is None else seed,
                                      constrained)

    def constraint_values(self, metrics: dict[str, Any]) -> list[float]:
        """Optuna's convention: each value <= 0 means satisfied. Stored on each trial (``_samplers.CONSTRAINTS_ATTR``)
        for the sampler's ``constraints_func``."""
        if self.constraints.min_accuracy is None:
            return []
        return [self.constraints.min_accuracy - float(metrics[self.accuracy_metric])]

    def rung_limits(self) -> list[float | None] | None:
        """``constraints.min_accuracy`` as MO-ASHA's ranking limits (``moasha``: Deb's constrained domination), or
        None; both backends' promotion ranks rungs with it."""
        floor = self.constraints.min_accuracy
        if floor is None:
            return None
        return [floor if name == self.accuracy_metric else None for name in self.objective_names]

    def results_dir(self, override: str | None = None) -> Path:
        return Path(override or self.results or DEFAULT_RESULTS) / self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _check_sampler_options(spec: StudySpec, source: str) -> None:
    """Options must be arguments the chosen sampler takes, of the types it takes (checked without building it)."""
    problem = _samplers.option_problem(spec.sampler.name, spec.sampler.options)
    if problem is not None:
        key, reason = problem
        raise ConfigError(reason, field=f"sampler.options.{key}", source=source)


def _anchored(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The study's user model and data tied to ``base_dir`` (``config.anchor``): ``model``/``dataset`` and their
    twins under ``train``, callables named by their import path."""
    data = {**data, **anchor({k: data[k] for k in ("model", "dataset") if data.get(k) is not None}, base_dir)}
    if isinstance(data.get("train"), dict):
        data["train"] = anchor(data["train"], base_dir)
    return data


def parse_study(data: Any, source: str, base_dir: Path) -> StudySpec:
    """Validate a study mapping; a search-space path is resolved against ``base_dir`` and loaded, and so are the
    user's model and data (``_anchored``); a callable given as a factory is recorded by its import path."""
    if isinstance(data, dict):
        try:
            data = _anchored(data, base_dir)
        except ConfigError as exc:
            raise ConfigError(exc.reason, field=exc.field, source=source) from None
    if isinstance(data, dict) and isinstance(data.get("search_space"), dict):  # inline: its own field names
        data = {**data, "search_space": parse_space(data["search_space"], f"{source}: search_space")}
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source=source) from None
    if isinstance(spec.search_space, str):
        path = Path(spec.search_space)
        path = path if path.is_absolute() else base_dir / path
        if not path.exists():
            raise ConfigError(f"file not found: {path}", field="search_space", source=source)
        spec.search_space = parse_space(load_yaml(path), str(path))
        spec.search_space_file = str(path.resolve())
    elif spec.search_space_file is None and Path(source).is_file() and Path(source).name != SNAPSHOT:
        # an inline space names its study file; not a storage's copy, nor a snapshot older than this record
        spec.search_space_file = str(Path(source).resolve())
    try:
        fixed = from_dict(spec.fixed()).to_dict()
    except ConfigError as exc:
        raise ConfigError(exc.reason, field=f"train.{exc.field}", source=source) from None
    spec.space().check_against({k: fixed[k] for k in spec.fixed()}, source)
    _check_sampler_options(spec, source)
    check_population(spec.backend, spec.population.size, "population", source)
    if spec.pbt is not None:
        check_pbt(spec.pbt, spec.space(), fixed["epochs"], spec.population.size, spec.early_stopping.kind,
                  spec.objective_names, source)
    return spec


def check_population(backend: str, size: int | None, field: str, source: str | None = None) -> None:
    """The one statement of the rule: a population (K > 1 members trained as one network) is an Optuna feature."""
    if (size or 1) > 1 and backend != "optuna":
        raise ConfigError("population training runs on the optuna backend only", field=field, source=source)


def load_study_file(path: str | Path) -> StudySpec:
    path = Path(path)
    return parse_study(load_yaml(path), str(path), path.parent)
