"""``python -m sparse_attention_hub.lm_eval ARGS``: lm-eval's command line with ``sah``."""

from sparse_attention_hub.lm_eval.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
