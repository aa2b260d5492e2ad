"""Where tensors live: the ``device`` setting of every agent and of ``forethought fit-model``.

    check_device("auto")             # validates a setting (ValueError naming the key otherwise)
    resolve_device("auto")           # torch.device("cuda") where CUDA is available, else "cpu"
    to_device(batch_tensors, device) # moves tensors (a no-op on the device they are on)

``cpu`` is the default and stays bit-reproducible; ``cuda`` uses the current CUDA device (set
``CUDA_VISIBLE_DEVICES`` to pick another). Other devices (``mps``, ``meta``, ``cuda:1``) are
refused: every path is written and tested for these two.
"""

from __future__ import annotations

import torch

DEVICES = ("cpu", "cuda", "auto")


def check_device(value: object, key: str = "device") -> str:
    """``value`` if it is a device setting this machine can honour, else a one-line ValueError
    naming ``key``: one of :data:`DEVICES`, and ``cuda`` only where CUDA is available."""
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str) or value not in DEVICES:
        raise ValueError(f"{key} must be one of {', '.join(DEVICES)}, got {value!r}")
    if value == "cuda" and not torch.cuda.is_available():
        build = "built for CPU" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU visible"
        raise ValueError(f"{key}=cuda but torch.cuda.is_available() is False (torch {torch.__version__} {build}); "
                         f"use {key}=cpu or {key}=auto")
    return value


def resolve_device(value: str | torch.device = "cpu", key: str = "device") -> torch.device:
    """The ``torch.device`` a setting names (``auto``: cuda where available, else cpu), checked
    by :func:`check_device`."""
    value = check_device(value, key)
    if value == "auto":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    # the index makes it equal to the .device of the tensors created on it (cuda:0, not cuda)
    return torch.device("cuda", torch.cuda.current_device()) if value == "cuda" else torch.device("cpu")


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's model for cuda (``NVIDIA H100 80GB HBM3``), ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
