"""``sah convert hashattention X.pkl`` reads the pickle without running code from the file.

A pickle whose ``__reduce__`` calls ``os.system``, ``builtins.exec`` or ``builtins.open`` is
refused with the file and the global named, and the code never runs (the marker file stays
absent); a pickle in the reference framework's layout (tensors, numpy arrays, OrderedDicts,
any protocol) converts as before.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sparse_attention_hub.cli import main
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    load_hat_weights,
    random_hat_weights,
    to_pickle_layout,
)
from sparse_attention_hub.sparse_attention.maskers.restricted_pickle import (
    RefusedPickleGlobal,
    restricted_load,
)


class _System:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    """Unpickles as ``exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        import builtins

        return (builtins.exec, (self.code,))


class _Open:
    """Unpickles as ``open(path, "w")`` (creates the file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import builtins

        return (builtins.open, (self.path, "w"))


def _layout_with(payload: object) -> dict:
    """The official layout with ``payload`` hidden in one layer's entry."""
    layout = to_pickle_layout(random_hat_weights(1, 2, 4, hidden=8))
    layout[0]["query_bias"] = [payload, *layout[0]["query_bias"][1:]]
    return layout


@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda marker: _System(f"touch {marker}"), "system"),
        (lambda marker: _Exec(f"open({str(marker)!r}, 'w').close()"), "exec"),
        (lambda marker: _Open(str(marker)), ".open"),
    ],
)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, capsys, make, refused, protocol):
    marker = tmp_path / "marker"
    source, target = tmp_path / "evil.pkl", tmp_path / "out.safetensors"
    source.write_bytes(pickle.dumps(_layout_with(make(marker)), protocol=protocol))
    assert main(["convert", "hashattention", str(source), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "evil.pkl" in err and "refused to unpickle the global" in err and refused in err
    assert "allow_pickle: true" in err
    assert not marker.exists() and not target.exists()


def test_a_storage_blob_is_read_without_torchs_full_unpickler(tmp_path):
    """A plain pickle of a tensor carries its storage as bytes for
    ``torch.storage._load_from_bytes``, which torch reads with ``weights_only=False``: a blob
    that hides a code-running global is refused here."""
    marker = tmp_path / "marker"
    blob = io.BytesIO()
    torch.save(_System(f"touch {marker}"), blob, _use_new_zipfile_serialization=False)

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (blob.getvalue(),))

    source = tmp_path / "evil.pkl"
    source.write_bytes(pickle.dumps({0: Storage()}))
    with pytest.raises(ValueError, match="system"):
        restricted_load(source)
    assert not marker.exists()


def test_other_globals_are_refused_by_name(tmp_path):
    source = tmp_path / "other.pkl"
    source.write_bytes(pickle.dumps({0: collections.Counter("ab")}))
    with pytest.raises(RefusedPickleGlobal, match=r"other\.pkl: .*collections\.Counter"):
        restricted_load(source)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_the_official_layout_converts_in_every_protocol(tmp_path, capsys, protocol):
    """Tensors (fp32, bf16, views, Parameters), numpy arrays and an OrderedDict of layers."""
    weights = random_hat_weights(2, 2, 4, hidden=8, seed=1)
    layout = collections.OrderedDict(to_pickle_layout(weights))
    layout[0]["query_matrix"] = [w.numpy() for w in layout[0]["query_matrix"]]  # arrays
    layout[0]["key_bias"] = [torch.nn.Parameter(b.clone()) for b in layout[0]["key_bias"]]
    layout[1]["key_matrix"] = [w.transpose(1, 2).contiguous().transpose(1, 2)
                               for w in layout[1]["key_matrix"]]  # fmt: skip
    layout[1]["query_bias"] = [b.to(torch.bfloat16) for b in layout[1]["query_bias"]]
    source, target = tmp_path / "w.pkl", tmp_path / "w.safetensors"
    source.write_bytes(pickle.dumps(layout, protocol=protocol))
    assert main(["convert", "hashattention", str(source), "--out", str(target)]) == 0
    again = load_hat_weights(target)
    for i, layer in weights.items():
        for side in ("query", "key"):
            for (w, b), (w2, b2) in zip(getattr(layer, side), getattr(again[i], side), strict=True):
                assert torch.equal(w, w2)
                expected = b.to(torch.bfloat16).float() if (i, side) == (1, "query") else b
                assert torch.equal(expected, b2)


def test_a_truncated_pickle_is_a_clear_error(tmp_path):
    source = tmp_path / "cut.pkl"
    source.write_bytes(pickle.dumps({0: np.zeros(3)})[:-5])
    with pytest.raises(ValueError, match=r"cut\.pkl: not a readable pickle"):
        restricted_load(Path(source))
