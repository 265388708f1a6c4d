"""What the Ray backend learns on each node: host, versions, and whether it sees result_dir.

The executor records every node's facts in execution_summary.json and warns when nodes
differ (a cluster where one node has another torch gives results that do not compare).

Standard library only, and outside ``sparse_attention_hub.executor`` on purpose: Ray runs
:func:`probe_storage` in a fresh worker process on every node, and importing the executor
package (torch, transformers) there would cost seconds per node.
"""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

#: distributions whose versions decide what a cell computes
VERSIONED = ("sparse-attention-hub", "torch", "transformers", "ray")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def node_facts() -> dict[str, Any]:
    """This process's host name, pid, Python and the versions of :data:`VERSIONED`."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in VERSIONED},
    }


def version_mismatches(nodes: list[dict[str, Any]]) -> list[str]:
    """One line per versioned package whose version differs between nodes (empty: all agree).

    >>> a = {"host": "a", "python": "3.11.7", "versions": {"torch": "2.13.0"}}
    >>> b = {"host": "b", "python": "3.11.7", "versions": {"torch": "2.12.1"}}
    >>> version_mismatches([a, b])
    ['torch: 2.13.0 on a; 2.12.1 on b']
    """
    lines = []
    keys = ["python", *dict.fromkeys(k for n in nodes for k in n.get("versions", {}))]
    for key in keys:
        seen: dict[str, list[str]] = {}
        for node in nodes:
            value = node.get(key) if key == "python" else node.get("versions", {}).get(key)
            seen.setdefault(str(value), []).append(str(node.get("host")))
        if len(seen) > 1:
            lines.append(f"{key}: " + "; ".join(f"{v} on {', '.join(h)}" for v, h in seen.items()))
    return lines


def probe_storage(directory: str, token: str, node_id: str) -> dict[str, Any]:
    """On one node: read the driver's token in ``directory/driver``, write this node's file
    ``directory/<node_id>``; return the node's facts with ``storage_error`` (None if fine)."""
    facts = node_facts()
    try:
        seen = (Path(directory) / "driver").read_text(encoding="utf-8")
        if seen != token:
            raise OSError(f"found another run's probe file (token {seen[:8]!r})")
        (Path(directory) / node_id).write_text(token, encoding="utf-8")
        facts["storage_error"] = None
    except OSError as exc:
        facts["storage_error"] = f"{type(exc).__name__}: {exc}"
    return facts
