"""Random crop (zero padding, 4 pixels by default) and horizontal flip of a batch of images, on its device.

What torchvision's ``RandomCrop(padding=4)`` then ``RandomHorizontalFlip()`` do per image, done for the whole
batch at once with draws from the training generator, so a seed gives the same augmented batches every run and
population members (who share the seed) see what each would see alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

PADDING = 4


def crop_flip(x: Tensor, gen: torch.Generator, fill: Tensor | None = None, padding: int = PADDING) -> Tensor:
    """``x`` ``[B, C, H, W]``, each image padded by ``padding`` (with ``fill`` ``[C, 1, 1]``, else zeros), cropped
    back to ``H x W`` at a random offset and mirrored left-right with probability 1/2; draws from ``gen``."""
    b, c, h, w = x.shape
    size = (b, c, h + 2 * padding, w + 2 * padding)
    padded = x.new_zeros(size) if fill is None else fill.to(x.dtype).expand(size).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = x
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b, 1), generator=gen, device=x.device)
    flip = torch.rand(b, 1, generator=gen, device=x.device) < 0.5
    cols = torch.arange(w, device=x.device)
    rows = dy + torch.arange(h, device=x.device)  # [B, H]
    cols = torch.where(flip, cols.flip(0), cols) + dx  # [B, W]: mirrored within the crop window
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]: advanced indices come first
    return out.permute(0, 3, 1, 2).contiguous()
