"""CIFAR-10's augmentation (random crop with padding 4, horizontal flip): seeded, on the device, training only."""

import pytest
import torch
from _fake_datasets import write_cifar10, write_npz

from sparsity_search import TrainConfig, train
from sparsity_search.data import CIFAR10_MEAN, CIFAR10_STD, load_data
from sparsity_search.data.augment import crop_flip
from sparsity_search.errors import ConfigError
from sparsity_search.population import train_population


def _candidates(image: torch.Tensor, fill: torch.Tensor, padding: int = 4) -> list[torch.Tensor]:
    """Every crop of the image padded with ``fill`` ([C, 1, 1]), plain and mirrored: what its augmented copy may be."""
    c, h, w = image.shape
    padded = fill.expand(c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, padding:padding + h, padding:padding + w] = image
    crops = [padded[:, i:i + h, j:j + w] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
    return crops + [crop.flip(-1) for crop in crops]


def test_crop_flip_gives_crops_of_the_padded_images_drawn_from_the_seed():
    x = torch.rand(64, 2, 5, 6, generator=torch.Generator().manual_seed(0)) + 1  # >= 1: padding stands out
    out = crop_flip(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert torch.equal(out, crop_flip(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(out, crop_flip(x, torch.Generator().manual_seed(2)))
    matches = [[k for k, cand in enumerate(_candidates(img, torch.zeros(2, 1, 1))) if torch.equal(cand, aug)]
               for img, aug in zip(x, out)]
    assert all(matches)  # each output is one crop (or mirrored crop) of its own padded image
    kinds = {m[0] for m in matches}
    assert len(kinds) > 20 and any(k >= 81 for k in kinds) and any(k < 81 for k in kinds)  # offsets and flips vary


def test_crop_flip_pads_with_the_fill_value():
    x = torch.ones(200, 3, 4, 4)
    fill = torch.tensor([-1.0, -2.0, -3.0]).view(3, 1, 1)
    out = crop_flip(x, torch.Generator().manual_seed(0), fill)
    for channel, value in enumerate((-1.0, -2.0, -3.0)):
        assert set(out[:, channel].unique().tolist()) == {value, 1.0}


def test_cifar10_augments_training_batches_only_and_by_default(tmp_path):
    write_cifar10(tmp_path)
    cfg = TrainConfig(dataset="cifar10", data_dir=str(tmp_path), model="convnet")
    data = load_data(cfg)
    assert data.augment and not load_data(cfg.replace(augment=False)).augment
    x, y = next(data.train_batches(85, torch.Generator().manual_seed(0)))
    order = torch.randperm(85, generator=torch.Generator().manual_seed(0))
    raw_x, raw_y = data.tensors("train")
    assert torch.equal(y, raw_y[order]) and not torch.equal(x, raw_x[order])
    black = -(torch.tensor(CIFAR10_MEAN) / torch.tensor(CIFAR10_STD)).view(3, 1, 1)  # torchvision pads black
    for image, aug in zip(raw_x[order], x):
        assert any(torch.equal(cand, aug) for cand in _candidates(image, black))
    for split in ("val", "test"):  # never augmented
        (ex, ey), = list(data.eval_batches(split, 1000))
        assert torch.equal(ex, data.tensors(split)[0]) and torch.equal(ey, data.tensors(split)[1])


def test_augmentation_is_off_for_the_other_builtin_sets_and_when_switched_off():
    data = load_data(TrainConfig(model="convnet"))
    assert not data.augment
    x, y = next(data.train_batches(50, torch.Generator().manual_seed(3)))
    order = torch.randperm(data.size("train"), generator=torch.Generator().manual_seed(3))[:50]
    assert torch.equal(x, data.tensors("train")[0][order]) and torch.equal(y, data.tensors("train")[1][order])


def test_augmented_training_is_reproducible_and_differs_from_plain():
    cfg = TrainConfig(model="convnet", channels=[4], epochs=1, timesteps=2, augment=True, device="cpu", threads=1)
    row = train(cfg)
    assert train(cfg)["train_loss"] == row["train_loss"]
    assert train(cfg.replace(augment=False))["train_loss"] != row["train_loss"]


def test_population_members_see_the_augmented_batches_they_would_see_alone():
    cfg = TrainConfig(model="convnet", channels=[4], epochs=2, timesteps=2, augment=True, device="cpu", threads=1)
    cfgs = [cfg.replace(lambda_max=0.5, lr=2e-3), cfg.replace(lambda_max=2.0, lr=4e-3)]
    for member, row in zip(cfgs, train_population(cfgs)):
        alone = train(member)
        for key in ("train_loss", "val_accuracy", "spikes_per_sample", "test_accuracy"):
            assert row[key] == pytest.approx(alone[key], rel=1e-4), key


@pytest.mark.parametrize("shape, words", [((12,), "shaped (12,)"), ((5, 2, 4, 4), "with a time axis")])
def test_augment_on_data_that_is_not_images_is_one_line(tmp_path, shape, words):
    write_npz(tmp_path / "d.npz", shape=shape)
    cfg = TrainConfig(dataset={"path": str(tmp_path / "d.npz")}, augment=True,
                      encoding="none" if len(shape) == 4 else "direct")
    with pytest.raises(ConfigError) as info:
        load_data(cfg)
    assert str(info.value).startswith("augment: random crop and flip need image samples [C, H, W]")
    assert words in str(info.value) and "\n" not in str(info.value)
