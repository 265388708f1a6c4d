"""Move a masker state (tensors inside dataclasses, tuples, lists and dicts) to another device,
for tests that run a call on a device the state was not built on."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


def state_to(value: Any, device: torch.device | str) -> Any:
    """``value`` with every tensor in it moved to ``device`` (frozen dataclasses rebuilt field
    by field, containers rebuilt with their type); other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        moved = {
            f.name: state_to(getattr(value, f.name), device) for f in dataclasses.fields(value)
        }
        copy = object.__new__(type(value))
        for name, field_value in moved.items():
            object.__setattr__(copy, name, field_value)
        return copy
    if isinstance(value, tuple):
        items = [state_to(item, device) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [state_to(item, device) for item in value]
    if isinstance(value, dict):
        return {key: state_to(item, device) for key, item in value.items()}
    return value
