"""Whether data is held on the device or streamed: held when its inputs, as float32, take at most half of the
device's free memory (the other half is left to the network's activations), unless ``cfg.stream`` says."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

HOLD_FRACTION = 0.5


def hold_on_device(nbytes: int, device: torch.device, stream: bool | None) -> bool:
    """``stream`` true or false forces the choice; None holds the data when it fits (``HOLD_FRACTION``)."""
    if stream is not None:
        return not stream
    free = free_bytes(device)
    if free is None or nbytes <= HOLD_FRACTION * free:
        return True
    log.info("streaming the data: its inputs take %.1f GB as float32, more than %.0f%% of the %.1f GB free on %s",
             nbytes / 1e9, 100 * HOLD_FRACTION, free / 1e9, device)
    return False


def free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: the GPU's per CUDA, the host's available memory per Linux; None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None
