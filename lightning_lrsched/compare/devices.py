"""Device configs of a comparison: ``cpu:1``, ``cpu:N`` (DDP), ``cuda:N``, ``mps:1``, ``auto``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lightning_lrsched.errors import InvalidType, InvalidValue

FORMS = "cpu:N, cuda:N, mps:1 or auto"
_PATTERN = re.compile(r"^(cpu|cuda|mps):([1-9]\d*)$")


@dataclass(frozen=True)
class DeviceConfig:
    """Where one run trains: an accelerator and a process count (DDP when more than one)."""

    accelerator: str
    devices: int | str

    @property
    def label(self) -> str:
        return "auto" if self.accelerator == "auto" else f"{self.accelerator}:{self.devices}"

    def trainer_kwargs(self) -> dict[str, Any]:
        if self.accelerator == "auto":
            return {"accelerator": "auto", "devices": "auto"}
        if self.processes == 1:
            return {"accelerator": self.accelerator, "devices": 1}
        from lightning.pytorch.strategies import DDPStrategy

        # A process that dies mid-run leaves the others in a collective; torch's default wait is
        # 30 minutes per collective. Five minutes is ample for a step, and the run fails instead.
        strategy = DDPStrategy(timeout=timedelta(minutes=5))
        return {"accelerator": self.accelerator, "devices": self.devices, "strategy": strategy}

    @property
    def processes(self) -> int:
        return self.devices if isinstance(self.devices, int) else 1

    def unavailable(self) -> str | None:
        """Why this machine cannot run the config, or ``None`` when it can."""
        if self.accelerator == "cpu":
            cores = os.cpu_count() or 1
            if self.processes > cores:
                return f"{self.label} needs {self.processes} processes but this machine has {cores} CPU cores"
            return None
        if self.accelerator == "cuda":
            import torch

            if not torch.cuda.is_available():
                return f"{self.label}: CUDA is not available on this machine"
            if torch.cuda.device_count() < self.processes:
                return f"{self.label}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            return None
        if self.accelerator == "mps":
            import torch

            return None if torch.backends.mps.is_available() else f"{self.label}: MPS is not available"
        return None


def parse_device(text: str, option: str = "devices") -> DeviceConfig:
    """Parse one device config; an error names ``option``, the parameter ``text`` came from.

    Example:
        >>> parse_device("cpu:2")
        DeviceConfig(accelerator='cpu', devices=2)
    """
    if not isinstance(text, str):
        raise InvalidType(f"`{option}` entries must be strings like 'cpu:2': got {text!r}")
    value = text.strip().lower()
    if value == "auto":
        return DeviceConfig("auto", "auto")
    match = _PATTERN.match(value)
    if match is None:
        raise InvalidValue(f"`{option}`: unknown device config {text!r}: use {FORMS}")
    kind, count = match.group(1), int(match.group(2))
    if kind == "mps" and count != 1:
        raise InvalidValue(f"`{option}`: {text!r}: MPS has one device, use mps:1")
    return DeviceConfig(kind, count)
