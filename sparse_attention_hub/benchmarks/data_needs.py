"""What data a benchmark needs before it can run, so a study can check it up front.

Each benchmark answers :meth:`Benchmark.data_needs` with a list of :class:`DataNeed`: a hub
dataset (and its config or data_dir), one file of a hub dataset repository, or local files
under ``data_dir`` (checked here, at once: ``problem`` says what is missing). Generated
benchmarks (mock, synthetic_ruler) need nothing. Whoever runs the study (the executor's
preflight) resolves the hub items once, before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparse_attention_hub.benchmarks.local_data import find_subset_files

HUB_DATASET = "hub_dataset"  # datasets.load_dataset(source, name, data_dir=data_dir)
HUB_FILE = "hub_file"  # hf_hub_download(source, name, repo_type="dataset")
LOCAL = "local"  # files of subset ``name`` under the directory ``source``


@dataclass(frozen=True)
class DataNeed:
    """One piece of data a benchmark reads.

    Attributes:
        kind: HUB_DATASET, HUB_FILE or LOCAL.
        source: the hub dataset id, or (LOCAL) the local directory.
        name: the config (HUB_DATASET), the file in the repository (HUB_FILE) or the subset
            (LOCAL); None for a dataset without configs.
        revision: the hub revision (None: the default branch).
        data_dir: the ``data_dir`` argument of ``load_dataset`` (a folder of the repository).
        problem: why the data cannot be had, known without asking the hub (None: nothing yet).
    """

    kind: str
    source: str
    name: str | None = None
    revision: str | None = None
    data_dir: str | None = None
    problem: str | None = None

    @property
    def label(self) -> str:
        """``dataset tau/zero_scrolls file gov_report.zip`` and the like, for messages."""
        if self.kind == LOCAL:
            return f"local data {self.name!r} in {self.source}"
        where = f"dataset {self.source}"
        if self.kind == HUB_FILE:
            where += f" file {self.name}"
        elif self.name is not None:
            where += f" config {self.name}"
        if self.data_dir is not None:
            where += f" data_dir {self.data_dir}"
        return where + (f" @ {self.revision}" if self.revision else "")


def local_need(data_dir: Path, subset: str) -> DataNeed:
    """The files of ``subset`` under ``data_dir``, with ``problem`` set when they are missing."""
    try:
        find_subset_files(data_dir, subset)
        problem = None
    except FileNotFoundError as exc:
        problem = str(exc)
    return DataNeed(LOCAL, str(data_dir), subset, problem=problem)


def hub_configs(
    dataset_id: str, configs: list[str | None], revision: str | None = None
) -> list[DataNeed]:
    """One HUB_DATASET need per config (configs given once each, in order)."""
    return [DataNeed(HUB_DATASET, dataset_id, c, revision) for c in dict.fromkeys(configs)]


def hub_files(dataset_id: str, files: list[str], revision: str | None = None) -> list[DataNeed]:
    """One HUB_FILE need per file (each file once, in order)."""
    return [DataNeed(HUB_FILE, dataset_id, f, revision) for f in dict.fromkeys(files)]
