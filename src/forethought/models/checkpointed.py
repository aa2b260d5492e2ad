"""What every model in :mod:`forethought.models` shares: sizes, the ``fitted`` flag, the device
and persistence (safetensors + JSON, no pickle), and the registry that maps a checkpoint's stored
``kind`` to the class that loads it.

    model.save("ckpt/model"); DynamicsModel.load("ckpt/model", device="cpu")
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from forethought.serialization import CheckpointError, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from forethought.data.normalizer import Normalizer

_MODEL_CLASSES: dict[str, type["CheckpointedModel"]] = {}


def model_class(kind: str, path: str | os.PathLike = "") -> type["CheckpointedModel"]:
    """The model class that saves checkpoints of ``kind``; a CheckpointError naming ``path`` if none does."""
    target = _MODEL_CLASSES.get(kind)
    if target is None:
        raise CheckpointError(f"checkpoint {path} holds model kind {kind!r}; known kinds: {sorted(_MODEL_CLASSES)}")
    return target


def network_tensors(network: torch.nn.Module, normalizers: dict[str, "Normalizer"]) -> dict[str, torch.Tensor]:
    """``network``'s state as ``network.NAME`` and each normaliser's tensors under its prefix: the
    checkpoint tensors of a model made of one network and its normalisers."""
    tensors = {f"network.{name}": t for name, t in network.state_dict().items()}
    for prefix, norm in normalizers.items():
        tensors.update(norm.state_dict(prefix))
    return tensors


def load_network_tensors(network: torch.nn.Module, normalizers: dict[str, "Normalizer"],
                         tensors: dict[str, torch.Tensor]) -> None:
    """Load what :func:`network_tensors` wrote into ``network`` and ``normalizers``."""
    network.load_state_dict({name[len("network."):]: t for name, t in tensors.items() if name.startswith("network.")})
    for prefix, norm in normalizers.items():
        norm.load_state_dict(tensors, prefix)


class CheckpointedModel(ABC):
    """Sizes, the ``fitted`` flag and persistence shared by every model in :mod:`forethought.models`
    (dynamics models, the learned reward and the termination classifier).

    Subclasses set ``kind`` (the name stored in checkpoints) and implement ``_state`` and
    ``_from_state``; a checkpoint is ``path.safetensors`` + ``path.json`` holding the kind, the
    sizes, ``fitted`` and the constructor config. Checkpoints hold CPU tensors whatever
    ``device`` the model is on.
    """

    kind: ClassVar[str] = ""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got obs_dim={obs_dim}, act_dim={act_dim}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.fitted = False
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "CheckpointedModel":
        """Move every tensor of the model to ``device`` (its networks, normalisers, tensors and
        inner models); returns the model."""
        from forethought.data.normalizer import Normalizer  # data -> models is the import direction

        device = torch.device(device)
        for name, value in vars(self).items():
            if isinstance(value, (torch.nn.Module, Normalizer, CheckpointedModel)):
                value.to(device)
            elif isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self.device = device
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):  # only a class that names its own kind owns that checkpoint kind
            _MODEL_CLASSES[cls.kind] = cls

    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path.safetensors`` + ``path.json`` atomically (no pickle)."""
        tensors, config = self._state()
        save_checkpoint(path, tensors, {"kind": self.kind, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                                        "fitted": self.fitted, "config": config})

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", **kwargs: Any) -> "CheckpointedModel":
        """Load a model saved with :meth:`save` onto ``device``; the stored ``kind`` picks the
        class, which must be ``cls`` or a subclass (``DynamicsModel.load`` loads any dynamics
        model). Extra ``kwargs`` go to models that need non-tensor parts (e.g. a residual model's
        simulator)."""
        tensors, meta = load_checkpoint(path)
        target = model_class(meta.get("kind"), path)
        if not issubclass(target, cls):
            raise CheckpointError(f"checkpoint {path} holds a {meta.get('kind')!r} model, not a {cls.__name__}")
        try:
            model = target._from_state(tensors, meta["config"], meta["obs_dim"], meta["act_dim"], **kwargs)
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} does not match a {target.__name__}: {err}") from err
        model.fitted = bool(meta.get("fitted", True))
        return model.to(device)

    @abstractmethod
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON-serialisable constructor config that fully describe the model."""

    @classmethod
    @abstractmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "CheckpointedModel":
        """Rebuild a model from what :meth:`_state` returned."""
