"""Reads configuration files within the input limits and validates them into pydantic models, turning every failure into one ConfigError line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from controller.errors import ConfigError, SremError, clip, excerpt

M = TypeVar("M", bound=BaseModel)

# The limits on what srem reads, in one place. Each is generous for research (about ten times the
# `large` preset: a k=8 fat-tree of 80 switches, 128 servers and 384 links, 4 VNF types and 126
# instances, 1,000 requests per workload) and far below what exhausts a machine, so an absurd file
# is refused at once in one line naming the key and the limit, instead of running until memory or
# patience ends (issue 20).
MAX_SWITCHES = 2_048
"""Above ten times `large`'s 80, so that a 2,000-switch line (the longest path routing is tested on) loads."""
MAX_SERVERS = 2_048
MAX_LINKS = 16_384
MAX_VNF_TYPES = 64
MAX_INSTANCES = 2_048
"""VNF instances of all types together; the evaluator keeps tables of instances x hosts."""
MAX_REQUESTS_PER_WORKLOAD = 10_000
MAX_WORKLOADS_PER_SPLIT = 20_000
"""Ten times the largest preset split (`paper`'s 1,200 training workloads), rounded up."""
MAX_WORKLOAD_LINE_BYTES = 64 << 20
"""One workload of a dataset split: `large`'s are 260 KB (1,000 requests); MAX_REQUESTS_PER_WORKLOAD requests
with chains of all MAX_VNF_TYPES types over 24 hourly steps would be about 40 MB."""
MAX_YAML_BYTES = 1 << 20
"""A scenario file; the presets are 2-4 KB."""
MAX_JSON_BYTES = 16 << 20
"""A topology, substrate, manifest or placement file; a substrate at the size limits is about 3 MB."""
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 1_000_000
"""Nodes of a YAML document with its aliases expanded: an alias-free document within MAX_YAML_BYTES has
at most about half a million, so only alias expansion (a 'billion laughs' file) reaches this."""
MAX_NESTING = 64
"""Levels of nodes in a YAML document; a scenario's deepest value (a busy hour of a service class) is at six."""


def key_path(loc: tuple[Any, ...]) -> str:
    """('links', 3, 'b') -> 'links[3].b'; a key taken from the input is clipped like any echo of it.

    pydantic marks a refused mapping key with a last '[key]': the path to the key names it already."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = clip(str(part))
            out += f".{part}" if out else part
    return out


def validate(model: type[M], data: Any, where: str | Path, error: type[SremError] = ConfigError) -> M:
    """Validate `data` into `model`; the first problem becomes an `error` naming file and key.

    The offending value is echoed as a short excerpt: pydantic hands over the input whole, which
    after YAML alias expansion may be millions of nodes."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        if first["type"] not in ("extra_forbidden", "missing", "too_long") and "input" in first:
            message = f"{message} (got {excerpt(first['input'])})"
        raise error(message, where=where, key=key_path(tuple(first["loc"])) or None) from None


def names_a_file(path: Path) -> bool:
    """Whether `path` exists; a name the system refuses to look up (a component over 255 bytes) names nothing."""
    try:
        return path.exists()
    except OSError:
        return False


def read_text(path: Path, limit: int) -> str:
    """The file's text, refused without reading further when it is longer than `limit` bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError("no such file", where=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", where=path) from None
    if len(data) > limit:
        raise ConfigError(f"larger than the limit of {limit} bytes", where=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read: not UTF-8 text (byte {exc.start})", where=path) from None


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses, while composing, a document nested deeper than MAX_NESTING, with more than
    MAX_YAML_ALIASES aliases, an alias inside its own anchor, or aliases that expand beyond MAX_YAML_NODES.

    PyYAML shares an aliased node instead of copying it, so loading a 'billion laughs' is cheap; what
    walks it expanded (validation, an error echoing it) is not. Composing counts every node's expanded
    size from its children's, so the refusal comes before anything is built."""

    def __init__(self, text: str, where: Path) -> None:
        super().__init__(text)
        self.where = where
        self.depth = 0
        self.aliases = 0
        self.expanded: dict[int, int] = {}  # id(node) -> how many nodes it stands for expanded, once composed

    def refuse(self, message: str) -> ConfigError:
        return ConfigError(message, where=self.where, key=f"line {self.peek_event().start_mark.line + 1}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise self.refuse(f"more than the limit of {MAX_YAML_ALIASES} YAML aliases")
            anchored = self.anchors.get(self.peek_event().anchor)
            if anchored is not None and id(anchored) not in self.expanded:
                raise self.refuse("a YAML alias inside its own anchor")
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.refuse(f"nested deeper than the limit of {MAX_NESTING} levels")
        node = super().compose_node(parent, index)
        self.depth -= 1
        size = self.expanded.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            size = self.expanded[id(node)] = 1 + sum(self.expanded[id(child)] for child in children)
        if size > MAX_YAML_NODES:
            raise ConfigError(f"YAML aliases expand beyond the limit of {MAX_YAML_NODES} nodes", where=self.where,
                              key=f"line {node.start_mark.line + 1}")
        return node


def read_yaml(path: Path) -> Any:
    text = read_text(path, MAX_YAML_BYTES)
    loader = BoundedLoader(text, path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"malformed YAML: {clip(problem)}", where=path, key=line) from None
    except ValueError as exc:  # an integer of more digits than Python reads, a date that does not exist
        raise ConfigError(f"malformed YAML: {clip(str(exc))}", where=path) from None
    except (TypeError, KeyError, IndexError, AttributeError):
        # SafeConstructor converts a scalar by its explicit tag and fails on one it cannot read with a plain
        # exception: `!!float ""` IndexError, `!!bool x` KeyError, `!!timestamp x` AttributeError.
        raise ConfigError("malformed YAML: a value its explicit tag (!!int, !!bool, ...) cannot read", where=path) from None
    finally:
        loader.dispose()


def _not_json(constant: str) -> float:
    raise ConfigError(f"{constant} is not a JSON number")


def read_json(path: Path) -> Any:
    text = read_text(path, MAX_JSON_BYTES)
    try:
        return json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON: {exc.msg}", where=path, key=f"line {exc.lineno}") from None
    except ConfigError as exc:
        raise ConfigError(exc.message, where=path) from None
    except ValueError:
        raise ConfigError(f"malformed JSON: an integer of more than {sys.get_int_max_str_digits()} digits", where=path) from None
    except RecursionError:
        raise ConfigError("malformed JSON: nested too deeply", where=path) from None
