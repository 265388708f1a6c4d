"""The row schema every benchmark loader returns, and its check."""

from __future__ import annotations

import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = (
    "context",
    "question",
    "answer_prefix",
    "max_new_tokens",
    "task",
)


def check_columns(df: pd.DataFrame, required: tuple[str, ...] | list[str], source: str) -> None:
    """Raise ValueError naming the first missing column of ``required`` and the ``source``."""
    missing = [column for column in required if column not in df.columns]
    if missing:
        raise ValueError(
            f"{source} is missing required column(s) {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(str, df.columns))}"
        )
