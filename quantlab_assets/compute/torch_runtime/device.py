"""Choosing the torch device and numeric precision for a training run.

CUDA when it is present and allowed; bf16 autocast on GPUs that run it natively (compute capability ≥ 8,
Ampere and later), fp32 elsewhere, the CPU included, so CPU runs are deterministic and comparable.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Precision = Literal["fp32", "bf16"]
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    precision: Precision
    reason: str

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype to train under, or None for plain fp32."""
        return torch.bfloat16 if self.precision == "bf16" else None

    @property
    def lightning_accelerator(self) -> str:
        return "gpu" if self.is_cuda else "cpu"

    @property
    def lightning_precision(self) -> str:
        return "bf16-mixed" if self.precision == "bf16" else "32-true"

    def describe(self) -> dict[str, str]:
        name = torch.cuda.get_device_name(self.device) if self.is_cuda else "cpu"
        return {"device": str(self.device), "device_name": name, "precision": self.precision, "reason": self.reason}


def choose_device(allow_cuda: bool = True, precision: str = "auto", cuda_index: int = 0) -> DeviceChoice:
    """The device a run trains on. `precision="bf16"` on a device without native bf16 is an error, not a
    silent fallback: a user who asked for it should know they did not get it."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision={precision!r}: expected one of {PRECISION_CHOICES}")
    if allow_cuda and torch.cuda.is_available():
        device = torch.device("cuda", cuda_index)
        native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8
        if precision == "bf16" and not native_bf16:
            raise ValueError(f"precision='bf16' asked for, but {torch.cuda.get_device_name(device)} has no native bf16")
        chosen: Precision = "fp32" if precision == "fp32" or not native_bf16 else "bf16"
        return DeviceChoice(device, chosen, "cuda available and allowed")
    if precision == "bf16":
        raise ValueError("precision='bf16' asked for, but training would run on the CPU (fp32 only here)")
    reason = "cuda not allowed by configuration" if not allow_cuda else "no cuda device visible"
    return DeviceChoice(torch.device("cpu"), "fp32", reason)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seeds python, numpy and torch; with `deterministic`, asks torch for deterministic kernels (on CUDA
    the cuBLAS workspace setting it needs is set too; kernels without a deterministic version warn)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
