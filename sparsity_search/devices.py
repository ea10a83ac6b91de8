"""Device and precision resolution shared by the trainer and the launchers."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from pathlib import Path

import torch

from .errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error rather than a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 matmuls beat fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for this run, or None for plain fp32. ``auto`` uses bf16 only where hardware supports it."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (``resolve_precision``'s answer); no-op for None (fp32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def tune_cpu_allocator() -> bool:
    """Let glibc keep freed large blocks for reuse; True when it took the setting.

    glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh mmaps and unmaps them on free, so every
    activation of a CIFAR-sized spiking layer ([T*B, 64, 32, 32] fp32 is 32 MiB) page-faults in anew at each step,
    a large share of a CPU training step (docs/benchmarks.md). Raising the threshold and the trim threshold to 1 GiB keeps those
    blocks in the heap (the process's RSS then stays at its peak). A no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))
