"""Is a model or dataset there? One quick look each: local folder, hub, or the local HF cache.

Used by the preflight (:mod:`.preflight`), in the parent, before any worker starts. Each hub
repository is asked once, with a short timeout and no retry (``HfApi().model_info`` and
``dataset_info`` make one request). After the first network failure the hub counts as
unreachable for the rest of the check, so a study of 20 models fails in about one timeout.
With ``HF_HUB_OFFLINE`` set, or when the hub cannot be reached, an item passes if it is in
the local HuggingFace cache (what the workers would then load from).

A gated or private repository gets a message saying to accept its licence or set
``HF_TOKEN``. Messages never hold the token: the token's value is replaced by ``***`` in
every text this module returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmarks.data_needs import HUB_FILE, DataNeed

CONFIG_FILE = "config.json"
#: Any one of these makes a tokenizer AutoTokenizer can load (fast, sentencepiece, BPE, ...).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "spiece.model",
    "vocab.txt",
)
DEFAULT_TIMEOUT = 10.0
_TRUE = ("1", "on", "yes", "true")


@dataclass
class Check:
    """The answer for one item: found or not, and how (or why not)."""

    ok: bool
    how: str


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), read now: a test or a shell may set it late."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str | None:
    """HF_ENDPOINT, read now (None: huggingface_hub's default, https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def hub_cache_dir() -> Path:
    """The HuggingFace hub cache, as huggingface_hub finds it (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def datasets_cache_dir() -> Path:
    """The ``datasets`` library's cache of prepared datasets (HF_DATASETS_CACHE, HF_HOME)."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    return hub_cache_dir().parent / "datasets"


def redact(text: str) -> str:
    """``text`` with the HF token's value (if one is set) replaced by ``***``."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        token = os.environ.get(name, "").strip()
        if len(token) >= 4:
            text = text.replace(token, "***")
    return text


def _gated_message(repo: str, repo_type: str) -> str:
    url = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo}"
    token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
    return (
        f"gated or private: accept its licence at {url} and set HF_TOKEN to a token of an "
        f"account with access ({token})"
    )


def _short(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"{type(exc).__name__}: {first}"[:200])


class HubProbe:
    """Looks items up; remembers that the hub is unreachable once it has failed."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.offline = hub_offline()
        self.unreachable: str | None = "HF_HUB_OFFLINE is set" if self.offline else None

    # -- the hub ------------------------------------------------------------------------
    def _info(self, repo: str, repo_type: str, revision: str | None) -> tuple[Any, str | None]:
        """(repo info, None), or (None, why not) for an answer that settles it, or (None,
        None) when the hub cannot be reached (``self.unreachable`` then says why)."""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        api = HfApi(endpoint=hub_endpoint())
        fetch = api.dataset_info if repo_type == "dataset" else api.model_info
        try:
            return fetch(repo, revision=revision, timeout=self.timeout), None
        except GatedRepoError:
            return None, _gated_message(repo, repo_type)
        except RevisionNotFoundError:
            return None, f"revision {revision!r} not found on the hub"
        except RepositoryNotFoundError:
            return None, "not found on the hub; if it is private, " + _gated_message(
                repo, repo_type
            ).removeprefix("gated or private: ")
        except HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                return None, _gated_message(repo, repo_type)
            self.unreachable = _short(exc)
            return None, None
        except Exception as exc:  # no network, DNS, timeout, proxy: the hub is unreachable
            self.unreachable = _short(exc)
            return None, None

    def _gate_open(self, repo: str, repo_type: str, filename: str, revision: str | None) -> bool:
        """A HEAD request of one file of a gated repository: does this token get through?"""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import HfHubHTTPError

        url = hf_hub_url(
            repo, filename, repo_type=repo_type, revision=revision, endpoint=hub_endpoint()
        )
        try:
            get_hf_file_metadata(url, timeout=self.timeout)
        except HfHubHTTPError:
            return False
        except Exception as exc:
            self.unreachable = _short(exc)
        return True

    # -- the cache ----------------------------------------------------------------------
    def _cached(self, repo: str, filename: str, repo_type: str, revision: str | None) -> bool:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            repo, filename, cache_dir=hub_cache_dir(), revision=revision, repo_type=repo_type
        )
        return isinstance(found, str)

    def _offline_note(self) -> str:
        return f"the hub is not reachable ({self.unreachable})"

    # -- models -------------------------------------------------------------------------
    def check_model(self, name: str, revision: str | None = None) -> Check:
        """A local model folder, or a hub model with its config and tokenizer files."""
        if is_local_model(name):
            return check_local_model(name)
        if self.unreachable is None:
            info, problem = self._info(name, "model", revision)
            if problem is not None:
                return Check(False, redact(problem))
            if info is not None:
                return self._model_files(name, info, revision)
        if self._cached(name, CONFIG_FILE, "model", revision) and any(
            self._cached(name, f, "model", revision) for f in TOKENIZER_FILES
        ):
            return Check(True, "in the local HuggingFace cache")
        return Check(
            False, f"{self._offline_note()} and it is not in the local cache ({hub_cache_dir()})"
        )

    def _model_files(self, name: str, info: Any, revision: str | None) -> Check:
        files = {s.rfilename for s in (getattr(info, "siblings", None) or [])}
        missing = [] if CONFIG_FILE in files else [CONFIG_FILE]
        if files and not files.intersection(TOKENIZER_FILES):
            missing.append("tokenizer files (one of " + ", ".join(TOKENIZER_FILES) + ")")
        if missing:
            return Check(False, "the hub repository has no " + " and no ".join(missing))
        if getattr(info, "gated", False) and not self._gate_open(
            name, "model", CONFIG_FILE, revision
        ):
            return Check(False, redact(_gated_message(name, "model")))
        return Check(True, "reachable on the hub")

    # -- datasets -----------------------------------------------------------------------
    def check_data(self, need: DataNeed) -> Check:
        """A dataset need of a benchmark: its local files, a hub file or a hub dataset."""
        if need.problem is not None:
            return Check(False, need.problem)
        if need.kind not in (HUB_FILE, "hub_dataset"):
            return Check(True, "local files present")
        if self.unreachable is None:
            info, problem = self._info(need.source, "dataset", need.revision)
            if problem is not None:
                return Check(False, redact(problem))
            if info is not None:
                return self._dataset_files(need, info)
        if self._dataset_cached(need):
            return Check(True, "in the local HuggingFace cache")
        return Check(False, f"{self._offline_note()} and it is not in the local cache")

    def _dataset_files(self, need: DataNeed, info: Any) -> Check:
        files = [s.rfilename for s in (getattr(info, "siblings", None) or [])]
        if need.kind == HUB_FILE and files and need.name not in files:
            return Check(False, f"the hub repository has no file {need.name}")
        folder = (need.data_dir or "").rstrip("/") + "/"
        if need.data_dir is not None and files and not any(f.startswith(folder) for f in files):
            return Check(False, f"the hub repository has no folder {need.data_dir}/")
        configs = _card_configs(info)
        if need.kind != HUB_FILE and configs and need.name is not None and need.name not in configs:
            return Check(False, f"no config {need.name!r}; the hub has {', '.join(configs)}")
        if getattr(info, "gated", False):
            probe = need.name if need.kind == HUB_FILE else _first_data_file(files)
            if probe and not self._gate_open(need.source, "dataset", probe, need.revision):
                return Check(False, redact(_gated_message(need.source, "dataset")))
        return Check(True, "reachable on the hub")

    def _dataset_cached(self, need: DataNeed) -> bool:
        if need.kind == HUB_FILE:
            return self._cached(need.source, need.name or "", "dataset", need.revision)
        owner_name = need.source.replace("/", "--")
        candidates = [
            hub_cache_dir() / f"datasets--{owner_name}" / "snapshots",
            datasets_cache_dir() / need.source.replace("/", "___"),
        ]
        return any(path.is_dir() and any(path.iterdir()) for path in candidates)


def _card_configs(info: Any) -> list[str]:
    """Config names a dataset card declares (``configs:`` in its README), or []."""
    card = getattr(info, "card_data", None) or getattr(info, "cardData", None)
    configs = card.get("configs") if card is not None and hasattr(card, "get") else None
    if not isinstance(configs, list):
        return []
    return [str(c.get("config_name")) for c in configs if isinstance(c, dict)]


def _first_data_file(files: list[str]) -> str | None:
    for name in files:
        if not name.startswith(".") and name.lower() != "readme.md":
            return name
    return None


def is_local_model(name: str) -> bool:
    """A model given as a path (an existing folder, or written like a path) rather than a hub id."""
    if os.path.isdir(os.path.expanduser(name)):
        return True
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def check_local_model(name: str) -> Check:
    """A local model folder needs config.json and a tokenizer."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return Check(False, "no such model folder")
    missing = [] if (folder / CONFIG_FILE).is_file() else [CONFIG_FILE]
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (one of " + ", ".join(TOKENIZER_FILES) + ")")
    if missing:
        return Check(False, "the model folder has no " + " and no ".join(missing))
    return Check(True, "local folder")
