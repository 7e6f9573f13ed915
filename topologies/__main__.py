"""Regenerates the committed topology files: `python -m topologies`."""

from __future__ import annotations

import json

from topologies import builtin_path
from topologies.fattree import builtin_topologies


def render(topology: dict) -> str:
    """The canonical text of a topology file: one switch, server or link per line."""
    lines = ["{"]
    keys = list(topology)
    for i, key in enumerate(keys):
        value = topology[key]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(value, list):
            items = [f"  {json.dumps(item)}" for item in value]
            lines.append(f"{json.dumps(key)}: [")
            lines.append(",\n".join(items))
            lines.append(f"]{comma}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    for name, topology in builtin_topologies().items():
        path = builtin_path(name)
        path.write_text(render(topology))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
