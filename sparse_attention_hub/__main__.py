"""``python -m sparse_attention_hub`` behaves like the ``sah`` command."""

from sparse_attention_hub.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
