"""Where the networks run: the device to use, and whether this CPU has fast bf16 matmuls."""

from __future__ import annotations

from pathlib import Path

import torch


def pick_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when present, else the CPU; anything else is taken as a torch device name."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AMX or AVX512-bf16), so autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
