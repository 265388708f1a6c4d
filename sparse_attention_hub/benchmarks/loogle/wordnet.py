"""Finding the WordNet data METEOR needs, offline; never downloads.

Looked for, in order: nltk's own data (``corpora/wordnet`` or ``wordnet.zip`` on
``nltk.data.path``, e.g. after ``python -m nltk.downloader wordnet`` or with ``$NLTK_DATA``),
then Debian's WordNet 3.0 (``apt-get install wordnet-base wordnet-sense-index``: the same
database files under ``/usr/share/wordnet``), which is copied into an nltk-style folder under
the cache directory (nltk reads only below its data roots) with the ``lexnames`` table it needs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DEBIAN_WORDNET = Path("/usr/share/wordnet")
_DEBIAN_FILES = ("index.sense", "data.noun", "index.noun", "noun.exc")
# WordNet 3.0's 45 lexicographer files (nltk's corpus ships them as ``lexnames``)
_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def _cache_root() -> Path:
    base = os.environ.get("SAH_CACHE_DIR") or Path.home() / ".cache" / "sparse_attention_hub"
    return Path(base) / "nltk_data"


def _link_debian(source: Path, root: Path) -> None:
    target = root / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not (target / path.name).exists():
            shutil.copyfile(path, target / path.name)  # a copy: nltk refuses links out of its roots
    lines = [
        f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES)
    ]
    (target / "lexnames").write_text("".join(lines), encoding="utf-8")


def load_wordnet(debian_dir: Path | None = None) -> tuple[Any, str | None]:
    """(nltk's wordnet reader, None) or (None, the reason it is unavailable).

    ``debian_dir`` defaults to :data:`DEBIAN_WORDNET`.
    """
    debian_dir = DEBIAN_WORDNET if debian_dir is None else debian_dir
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as exc:
        return None, f"nltk is not installed ({exc})"
    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            return WordNetCorpusReader(nltk.data.find(resource), None), None
        except LookupError:
            continue
    if all((debian_dir / name).is_file() for name in _DEBIAN_FILES):
        root = _cache_root()
        _link_debian(debian_dir, root)
        if str(root) not in nltk.data.path:
            nltk.data.path.append(str(root))
        return WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None), None
    return None, (
        "WordNet data not found offline: run `python -m nltk.downloader wordnet` (or set "
        "NLTK_DATA), or `apt-get install wordnet-base wordnet-sense-index`"
    )
