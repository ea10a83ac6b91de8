"""What a run checks before anything is stored, so a broken study is refused in one line at once.

Only studies that bring their own model or data have anything to check beyond the study file: their factories are
imported, the data loads, the model is built and probed once (``snn.build_model``: spiking modules found, logits of
the right shape), every ``model.NAME`` search parameter is an option the factory takes, and the run's layout can
reach the user's code (a factory defined in ``__main__`` exists in this process only). Data with its own time axis
(``encoding: none``) gives the study its ``timesteps`` when the file does not (``StudySpec.take_data_timesteps``).
Built-in models and datasets skip all of it: ``launch`` stays as quick as before for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import OPTION_PREFIX, TrainConfig, with_options
from .errors import ConfigError
from .factories import in_main

if TYPE_CHECKING:
    from .search import RunSettings, StudySpec


def check_config(cfg: TrainConfig, timesteps_given: bool) -> int | None:
    """Load ``cfg``'s data and build its model once on the CPU; return the data's own number of timesteps
    (``encoding: none``), else None. ``timesteps_given``: the user set ``timesteps``, so a different T in the data
    is an error rather than the value to train with. Raises the one-line errors of the factories, the data and the
    model probe."""
    from .data import data_timesteps, load_data
    from .snn import build_model

    steps = data_timesteps(cfg)
    cfg = cfg.replace(device="cpu", checkpoint_dir="", resume=False,
                      **({"timesteps": steps} if steps is not None and not timesteps_given else {}))
    data = load_data(cfg, "cpu")
    data.check(cfg)
    build_model(cfg, data.input_shape, data.num_classes)
    return steps


def _probe_values(spec: StudySpec) -> dict[str, Any]:
    """One value of each ``model.NAME`` search parameter (its low bound or first choice), to build the model with."""
    values = {}
    for name, p in spec.space().params.items():
        if name.startswith(OPTION_PREFIX):
            value = p.choices[0] if p.type == "categorical" else p.low
            values[name] = int(value) if p.type == "int" else value
    return values


def _processes(spec: StudySpec, settings: RunSettings, worker: bool) -> str | None:
    """Why this run trains outside this process (other workers, GPU slots, Ray), or None when it trains here."""
    if spec.backend == "ray":
        return "the ray backend trains in Ray worker processes"
    if worker:
        return None
    if settings.gpus and settings.device != "cpu":
        return "--gpus starts one worker process per GPU slot"
    if settings.workers > 1:
        return f"--workers {settings.workers} starts worker processes"
    return None


def preflight(spec: StudySpec, settings: RunSettings, worker: bool = False) -> None:
    """Check the study's user code and data before the run stores anything (see the module docstring)."""
    base = spec.baseline_config()
    if base.user_model is None and base.user_dataset is None and base.encoding != "none":
        return
    elsewhere = _processes(spec, settings, worker)
    main = [name for name in base.user_code() if in_main(name)]
    if main and elsewhere:
        raise ConfigError(f"{main[0]} is defined in __main__ (a script or notebook), which {elsewhere} cannot "
                          "import; move it into a module file next to the study, or run with one local worker",
                          field="model" if base.user_model is not None else "dataset")
    population = settings.population or spec.population.size
    if base.user_model is not None and population > 1:
        raise ConfigError("population training stacks the built-in models only; run a user model's trials side by "
                          "side with --workers N (or --gpus with --trials-per-gpu)", field="population")
    probe = from_dict_with(base, _probe_values(spec))
    given = "timesteps" in spec.fixed()
    steps = check_config(probe, given)
    if steps is not None and not given:
        spec.take_data_timesteps(steps)


def from_dict_with(cfg: TrainConfig, options: dict[str, Any]) -> TrainConfig:
    """``cfg`` with ``model.NAME`` options set (a search space's values)."""
    if not options:
        return cfg
    from .config import from_dict

    return from_dict(with_options(cfg.to_dict(), options))
