"""Loading a HuggingFace model and tokenizer for the adapter: device, dtype, checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "cpu", "cuda" (the CURRENT CUDA device), "cuda:N"; None = cuda if available else cpu."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device={device!r} must be a str such as 'cpu', 'cuda' or 'cuda:0'")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"device={device!r} is not a valid device (use 'cpu', 'cuda' or 'cuda:N')"
        ) from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available")
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
        elif resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    return resolved


def _to_dtype(value: Any) -> Any:
    if isinstance(value, torch.dtype) or value == "auto":
        return value
    if isinstance(value, str):
        dtype = getattr(torch, value.removeprefix("torch."), None)
        if isinstance(dtype, torch.dtype):
            return dtype
    raise ValueError(
        f"model_kwargs dtype={value!r} is not a torch dtype (e.g. 'bfloat16', 'float16', "
        "'float32', 'auto')"
    )


def prepare_model_kwargs(model_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``model_kwargs`` for ``from_pretrained``: dtype strings become torch dtypes
    (``torch_dtype`` is accepted as the old name of ``dtype``)."""
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
    kwargs = dict(model_kwargs or {})
    if "torch_dtype" in kwargs:
        if "dtype" in kwargs:
            raise ValueError("model_kwargs has both 'dtype' and 'torch_dtype': give one")
        kwargs["dtype"] = kwargs.pop("torch_dtype")
    if "dtype" in kwargs:
        kwargs["dtype"] = _to_dtype(kwargs["dtype"])
    return kwargs


def check_model_source(model_name: str) -> None:
    """Fail early, naming ``model_name``, when it is neither a directory nor a hub-style id."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name={model_name!r} must be a hub id or a local directory")
    path = Path(model_name).expanduser()
    if path.is_dir():
        return
    looks_local = (
        path.is_absolute()
        or model_name.startswith((".", "~"))
        or model_name.count("/") > 1
        or (os.sep != "/" and os.sep in model_name)
    )
    if path.exists():
        raise ValueError(f"model {model_name!r} is a file, not a model directory")
    if looks_local:
        raise FileNotFoundError(f"model directory {model_name!r} does not exist")


def load_tokenizer(
    model_name: str, tokenizer_kwargs: dict[str, Any] | None, model_kwargs: dict[str, Any]
) -> Any:
    """AutoTokenizer for ``model_name``; a missing pad token becomes the EOS token (else the
    UNK token; with neither it stays unset: the adapter feeds one unpadded sequence).

    ``trust_remote_code`` given in ``model_kwargs`` also applies to the tokenizer unless
    ``tokenizer_kwargs`` sets it.
    """
    from transformers import AutoTokenizer

    if tokenizer_kwargs is not None and not isinstance(tokenizer_kwargs, dict):
        raise TypeError(f"tokenizer_kwargs must be a dict, got {type(tokenizer_kwargs).__name__}")
    kwargs = dict(tokenizer_kwargs or {})
    if "trust_remote_code" in model_kwargs:
        kwargs.setdefault("trust_remote_code", model_kwargs["trust_remote_code"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name, **kwargs)
    except OSError as err:
        raise OSError(f"cannot load the tokenizer of model {model_name!r}: {err}") from err
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
        if fallback is not None:
            tokenizer.pad_token = fallback
        else:
            logger.info("the tokenizer of %r has no pad, EOS or UNK token: no pad set", model_name)
    return tokenizer


def load_model(model_name: str, model_kwargs: dict[str, Any], device: torch.device) -> Any:
    """AutoModelForCausalLM in eval mode on ``device`` (unless model_kwargs has a device_map)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(model_name, **model_kwargs)
    except OSError as err:
        raise OSError(f"cannot load model {model_name!r}: {err}") from err
    if "device_map" not in model_kwargs:
        model = model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model


def cache_argument_name(model: Any) -> str:
    """The name under which ``model.forward`` takes the KV cache: ``"cache"`` (transformers
    >= 5.24; ``past_key_values`` is deprecated there and removed in 5.40) or
    ``"past_key_values"`` (older versions). Inspected once per adapter.

    ``forward`` accepts unknown keyword arguments, so passing the wrong name would silently
    run without a cache: a forward that names neither is an error.
    """
    import inspect

    parameters = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    raise TypeError(
        f"{type(model).__name__}.forward takes neither 'cache' nor 'past_key_values': "
        "the adapter cannot pass it a KV cache"
    )
