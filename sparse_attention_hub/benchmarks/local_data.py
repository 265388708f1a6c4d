"""Reading a benchmark subset from local files in the hub dataset's own schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def find_subset_files(data_dir: Path, subset: str) -> list[Path]:
    """``<data_dir>/<subset>.{jsonl,json,parquet,csv}``, or the data files in ``<data_dir>/<subset>/``."""
    for suffix in SUFFIXES:
        candidate = data_dir / f"{subset}{suffix}"
        if candidate.is_file():
            return [candidate]
    folder = data_dir / subset
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if files:
            return files
    raise FileNotFoundError(
        f"no local data for subset {subset!r} in {data_dir}: expected {subset}.jsonl "
        f"(or .json, .parquet, .csv) or a folder {subset}/ holding such files"
    )


def read_table(path: Path) -> pd.DataFrame:
    """One data file as a DataFrame (JSON lines, JSON records, parquet or CSV)."""
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    if path.suffix == ".json":
        return pd.read_json(path, dtype=False)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=False)


def _json_list_or_text(value: Any) -> Any:
    """A CSV cell holding a JSON list (``["a", "b"]``) as that list; anything else as is."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def read_subset(
    data_dir: Path, subset: str, required: tuple[str, ...], list_columns: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Every file of ``subset`` concatenated; ValueError naming a missing column and its file.

    CSV has no lists: in a CSV file, a cell of ``list_columns`` (gold answers, classes) that
    holds a JSON list is read as that list (as ``raw_results.csv`` writes them); a plain
    string stays a string (one answer).
    """
    frames = []
    for path in find_subset_files(data_dir, subset):
        frame = read_table(path)
        missing = [column for column in required if column not in frame.columns]
        if missing:
            raise ValueError(
                f"{path} is missing required column(s) {', '.join(map(repr, missing))}; "
                f"it has {', '.join(map(str, frame.columns))}"
            )
        if path.suffix == ".csv":
            for column in (c for c in list_columns if c in frame.columns):
                frame[column] = [_json_list_or_text(v) for v in frame[column]]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_hub_split(
    dataset_id: str,
    config_name: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
    split: str = "test",
) -> pd.DataFrame:
    """``datasets.load_dataset(...)[split]`` as a DataFrame, with a helpful error when it fails.

    This is the real download path (nothing in tests calls it). A failure (offline machine,
    gated or script-based dataset) is re-raised naming the dataset and the local alternative.
    """
    import datasets

    try:
        dataset = datasets.load_dataset(
            dataset_id, config_name, data_dir=data_dir, split=split, revision=revision
        )
    except Exception as exc:
        where = "/".join(p for p in (dataset_id, config_name or data_dir) if p)
        raise RuntimeError(
            f"could not load {where} (split {split!r}) from the HuggingFace hub: {exc}. "
            "Pass data_dir= with local files in the hub schema (see the benchmark's README)."
        ) from exc
    return dataset.to_pandas()


def read_zip_member_jsonl(archive: Path, member: str) -> pd.DataFrame:
    """One JSON-lines member of a zip archive as a DataFrame; FileNotFoundError naming both."""
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        if member not in zf.namelist():
            raise FileNotFoundError(f"{archive} has no member {member!r}")
        with zf.open(member) as handle:
            return pd.read_json(handle, lines=True, dtype=False)


def download_hub_file(dataset_id: str, filename: str, revision: str | None = None) -> Path:
    """``huggingface_hub.hf_hub_download`` of one file of a hub dataset repository (cached).

    This is the real download path (nothing in tests calls it with a network); a failure is
    re-raised naming the file and the local alternative.
    """
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(dataset_id, filename, repo_type="dataset", revision=revision)
    except Exception as exc:
        raise RuntimeError(
            f"could not download {dataset_id}/{filename} from the HuggingFace hub: {exc}. "
            "Pass data_dir= with local files in the hub schema (see the benchmark's README)."
        ) from exc
    return Path(path)
