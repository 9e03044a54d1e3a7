"""Loading the model, and replacing its weights in place (the one place RL updates go through).

``load_model`` reads any local Hugging Face folder (``config.json`` + safetensors or .bin
weights); nothing is downloaded (``local_files_only``).  ``update_in_place`` copies the tensors
of a safetensors file into the loaded model's parameters and buffers: every name and shape is
checked before the first copy, so a bad file changes nothing.  The scheduler runs it between two
generation steps, so no forward pass sees half-updated weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from drivetrain.errors import DrivetrainError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class WeightsError(DrivetrainError, ValueError):
    """A weights file that does not fit the loaded model (nothing was changed)."""


def load_model(model_path: str, device: str, dtype: str) -> Any:
    """The model in eval mode on ``device``; ``dtype`` 'auto' is float32 on a CPU (half
    precision matmuls are slow or missing there) and the checkpoint's own dtype elsewhere."""
    from transformers import AutoModelForCausalLM

    if dtype == "auto":
        torch_dtype: Any = torch.float32 if device == "cpu" else "auto"
    else:
        torch_dtype = DTYPES[dtype]
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch_dtype, local_files_only=True
    )
    return model.to(device).eval()


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def weights_file(path: str | Path) -> Path:
    """The safetensors file of ``path``: the file itself, or a folder's ``model.safetensors``
    (``WeightsError`` when there is none)."""
    chosen = Path(path)
    if chosen.is_dir():
        chosen = chosen / "model.safetensors"
    if not chosen.is_file():
        raise WeightsError(
            f"{path}: expected a safetensors file or a folder holding model.safetensors"
        )
    return chosen


def copy_of(model: torch.nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The current values of every tensor the file at ``path`` names (what a rollback needs)."""
    from safetensors import safe_open

    targets: dict[str, torch.Tensor] = dict(model.named_parameters())
    targets.update(model.named_buffers())
    with safe_open(str(path), framework="pt") as handle:
        names = list(handle.keys())
    return {name: targets[name].detach().clone() for name in names if name in targets}


def restore(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Put back the tensors ``copy_of`` saved."""
    targets: dict[str, torch.Tensor] = dict(model.named_parameters())
    targets.update(model.named_buffers())
    with torch.no_grad():
        for name, value in saved.items():
            targets[name].copy_(value)


def update_in_place(model: torch.nn.Module, path: str | Path) -> int:
    """Copy every tensor of the safetensors file at ``path`` into ``model``; the count copied.

    Raises ``WeightsError`` (and changes nothing) when a name is not a parameter or buffer of
    the model or a shape differs.  Tensors are cast to the model's dtype and device.
    """
    from safetensors import safe_open

    targets: dict[str, torch.Tensor] = dict(model.named_parameters())
    targets.update(model.named_buffers())
    with safe_open(str(path), framework="pt") as handle:
        names = list(handle.keys())
        problems = []
        for name in names:
            target = targets.get(name)
            if target is None:
                problems.append(f"{name}: not a parameter of the model")
                continue
            shape = tuple(handle.get_slice(name).get_shape())
            if shape != tuple(target.shape):
                problems.append(f"{name}: shape {list(shape)}, the model has {list(target.shape)}")
        if problems:
            raise WeightsError(f"{path}: " + "; ".join(problems[:5]))
        with torch.no_grad():
            for name in names:
                target = targets[name]
                target.copy_(handle.get_tensor(name).to(target.device, target.dtype))
    return len(names)
