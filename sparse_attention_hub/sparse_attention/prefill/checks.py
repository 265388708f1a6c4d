"""Validation helpers of prefill masker configs (ValueError naming the field, the value and
what is allowed, like the decode maskers' ``check_size``)."""

from __future__ import annotations

#: The largest size in tokens: a larger one exceeds any model's context and is a mistake.
MAX_TOKENS = 2**31


def check_tokens(config: object, field: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int number of tokens in [minimum, 2**31]; TypeError / ValueError naming
    ``<ConfigClass>.<field>`` otherwise."""
    where = f"{type(config).__name__}.{field}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where} must be an int (tokens), got {value!r}")
    if not minimum <= value <= MAX_TOKENS:
        raise ValueError(f"{where} must be an int in [{minimum}, 2**31] tokens, got {value}")
    return value


def check_block_budget(config: object, field: str, value: object) -> None:
    """A block budget: an int >= 1 (key blocks per query block) or a float in (0, 1] (that
    fraction of the query block's causal key blocks)."""
    where = f"{type(config).__name__}.{field}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{where} must be an int (key blocks) or a float in (0, 1] (fraction of the causal "
            f"key blocks of a query block), got {value!r}"
        )
    if isinstance(value, int) and not 1 <= value <= MAX_TOKENS:
        raise ValueError(f"{where} must be an int in [1, 2**31] key blocks, got {value}")
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(
            f"{where} as a float is a fraction of the causal key blocks and must lie in (0, 1], "
            f"got {value}; give an int for a number of blocks"
        )


def check_optional_block_size(config: object, field: str, value: object) -> None:
    """None (the engine's block size) or an int >= 1."""
    if value is not None:
        check_tokens(config, field, value, minimum=1)
