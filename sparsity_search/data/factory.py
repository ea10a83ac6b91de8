"""The user's dataset factory: ``factory(**options)`` returning ``(train, test)`` or ``(train, val, test)`` map-style
torch Datasets with ``(x, y)`` items. Each is one ``DatasetPool``, read item by item (``load``)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import IterableDataset

from .. import factories
from ..config import UserDataset
from ..errors import ConfigError, DataError
from .pools import DatasetPool, Source, describe, item_pair

FIELD = "dataset.factory"


def factory_source(spec: UserDataset) -> Source:
    """Call the factory and check what it returned; the pools' labels are set when they are read."""
    fn = factories.load_callable(spec.factory, spec.module_dir, FIELD)
    out = factories.call_user(fn, f"dataset factory {spec.factory}", FIELD, **spec.options)
    expected = "expected (train, test) or (train, val, test) map-style torch Datasets with (x, y) items"
    if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
        raise ConfigError(f"{spec.factory} returned {describe(out)}; {expected}", field=FIELD)
    names = ("train", "test") if len(out) == 2 else ("train", "val", "test")
    for name, dataset in zip(names, out):
        if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__") \
                or not hasattr(dataset, "__len__"):
            raise ConfigError(f"{spec.factory} returned {describe(dataset)} as its {name} set; {expected}",
                              field=FIELD)
        if not factories.call_user(len, f"len() of the {name} set of {spec.factory}", FIELD, dataset):
            raise ConfigError(f"{spec.factory} returned an empty {name} set", field=FIELD)
    shape = _sample_shape(spec.factory, out[0])
    pools = {n: DatasetPool(d, f"{spec.factory}: {n} set", shape) for n, d in zip(names, out)}
    return Source(spec.factory, pools["train"], pools.get("val"), pools["test"])


def _sample_shape(factory: str, train: Any) -> tuple[int, ...]:
    """The shape of item 0 of the training set, which every item of every set must have."""
    item = factories.call_user(train.__getitem__, f"item 0 of the train set of {factory}", FIELD, 0)
    try:
        x, _ = item_pair(item, None)
    except ValueError as exc:
        raise DataError(f"{factory}: train set item 0: {exc}") from None
    return tuple(x.shape)
