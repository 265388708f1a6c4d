"""lm-evaluation-harness with sparse attention: the lm-eval model ``sah``.

``sah lm-eval ARGS`` (or ``python -m sparse_attention_hub.lm_eval ARGS``) runs lm-eval's own
command line with the model ``sah`` registered; every lm-eval flag passes through, and
``--model sah`` is the default::

    sah lm-eval --model_args pretrained=MODEL,sparse_config=quest --tasks TASK --limit 10

From Python, call :func:`register` and then ``lm_eval.simple_evaluate(model="sah", ...)``.
The model's arguments are documented in ``options.py`` (``SahOptions``), the
``sparse_config`` forms in ``sparse_config.py``, the phasing of each request in
``scoring.py``. lm-eval is an optional dependency (``pip install
"sparse-attention-hub[lm-eval]"``): nothing here imports it until a model is registered.
"""

from __future__ import annotations

from sparse_attention_hub.lm_eval.sparse_config import parse_sparse_config

MODEL_NAME = "sah"
INSTALL_HINT = 'lm-eval is not installed: pip install "sparse-attention-hub[lm-eval]"'

__all__ = ["INSTALL_HINT", "MODEL_NAME", "parse_sparse_config", "register"]


def register() -> None:
    """Register the model ``sah`` in lm-eval's model registry (idempotent).

    Raises:
        ImportError: lm-eval is not installed (naming the extra to install).
    """
    try:
        import lm_eval.models  # noqa: F401  (lm-eval's own models, registered lazily)
        from lm_eval.api.registry import register_model
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    from sparse_attention_hub.lm_eval.model import SahLM

    register_model(MODEL_NAME)(SahLM)
