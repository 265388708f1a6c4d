"""``sah tune``: search each sparse-attention method's parameters for realized densities.

The tune file is a study (models, benchmarks, ...) plus a ``search:`` section
(:mod:`.schema`). Each trial is one cell of the cell store, run on Ray Tune (:mod:`.search`);
the chosen config per method and target is written as a study file, ``tuned.yaml``
(:mod:`.outputs`).
"""

from sparse_attention_hub.experiment.tune.schema import load_tune
from sparse_attention_hub.experiment.tune.search import TuneOutcome, run_tune
from sparse_attention_hub.experiment.tune.spec import MethodSpec, ParamSpace, SearchSpec, TuneSpec

__all__ = [
    "MethodSpec",
    "ParamSpace",
    "SearchSpec",
    "TuneOutcome",
    "TuneSpec",
    "load_tune",
    "run_tune",
]
