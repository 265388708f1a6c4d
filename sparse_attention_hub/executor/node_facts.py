"""Facts about the machine a worker runs on: host, process and library versions.

The Ray backend records them for every node in execution_summary.json and warns when nodes
differ (a cluster where one node has another torch gives results that do not compare).
"""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
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
