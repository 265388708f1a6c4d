"""``sah demo``: the experiment in ``demo.yaml`` (shipped in the package, mirrored in examples/)."""

from __future__ import annotations

from importlib import resources

from sparse_attention_hub.experiment.loader import load_experiment_text
from sparse_attention_hub.experiment.spec import ExperimentSpec

DEMO_RESULT_DIR = "./demo_results"


def demo_yaml_text() -> str:
    """The text of the packaged ``demo.yaml``."""
    return (
        resources.files("sparse_attention_hub.experiment").joinpath("demo.yaml").read_text("utf-8")
    )


def demo_spec(result_dir: str | None = None) -> ExperimentSpec:
    """The demo experiment; ``result_dir`` overrides its ``./demo_results``."""
    spec = load_experiment_text(demo_yaml_text(), "demo.yaml (built in)")
    return spec.with_overrides(result_dir=result_dir)
