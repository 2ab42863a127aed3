"""YAML text -> plain data, keeping the node tree so every problem can name its line.

Called by ``load`` for each manifest file. Pure: takes text, returns data and problems.

PyYAML's loaders lose positions and silently keep the last of two equal keys. So the
text is only *composed* into nodes (with libyaml when available: it is several times
faster), and this module builds the data itself: it reports duplicate keys, honours
merge keys (``<<: *defaults``), refuses recursive aliases and alias bombs, and keeps
each document's root node so that ``locate`` can turn a field path into a line and
column afterwards, at no cost for files without problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from reconciler.manifests.problems import Problem, Severity, format_path

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_NODES = 2_000_000  # values built per file, aliases expanded: stops "billion laughs"


@dataclass(frozen=True)
class Document:
    index: int
    data: Any
    node: yaml.Node | None


class _TooBigError(Exception):
    pass


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()
        self.built = 0
        self.active: set[int] = set()

    def problem(self, mark: yaml.Mark | None, message: str, path: Sequence[str | int]) -> None:
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        self.problems.append(
            Problem(self.file, line, column, Severity.ERROR, format_path(path), message)
        )

    def build(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.built += 1
        if self.built > MAX_NODES:
            raise _TooBigError
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problem(node.start_mark, "an alias refers to itself; expand it by hand", path)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(node.start_mark, f"unsupported YAML node {node.tag}", path)
        return None

    def scalar(self, node: yaml.ScalarNode, path: tuple[str | int, ...]) -> Any:
        if node.tag == STR_TAG:
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            message = getattr(exc, "problem", None) or str(exc)
            self.problem(node.start_mark, f"cannot read this value: {message}", path)
            return None

    def mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        explicit: dict[str, Any] = {}
        first_seen: dict[str, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.update(self.merge(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(
                    key_node.start_mark, "keys must be plain names, not lists or maps", path
                )
                continue
            key = key_node.value
            if key in first_seen:
                self.problem(
                    key_node.start_mark,
                    f"duplicate key {key!r} (first at line {first_seen[key].line + 1}); "
                    "YAML would silently keep only the last one: merge them into one",
                    (*path, key),
                )
                continue
            first_seen[key] = key_node.start_mark
            explicit[key] = self.build(value_node, (*path, key))
        return {**merged, **explicit}

    def merge(self, node: yaml.Node, path: tuple[str | int, ...]) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as in YAML's merge rule
            value = self.build(source, path)
            if isinstance(value, dict):
                merged.update(value)
            else:
                self.problem(source.start_mark, "<< merges only maps", path)
        return merged


def read(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every document in ``text`` (empty ones have ``data`` None) and the problems found."""
    builder = _Builder(file)
    documents: list[Document] = []
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=_Loader)):
            data = None if node is None else builder.build(node, ())
            documents.append(Document(index, data, node))
    except yaml.MarkedYAMLError as exc:
        # The problem and its mark only: the snippet of the line could hold a secret.
        builder.problem(exc.problem_mark or exc.context_mark, _syntax(exc, text), ())
    except yaml.YAMLError as exc:
        builder.problem(None, f"YAML syntax: {type(exc).__name__}", ())
    except _TooBigError:
        builder.problem(None, f"more than {MAX_NODES:,} values once aliases are expanded", ())
    except RecursionError:
        builder.problem(None, "nested too deeply to read", ())
    return documents, builder.problems


def _syntax(exc: yaml.MarkedYAMLError, text: str) -> str:
    context = exc.context or ""
    start, end = exc.context_mark, exc.problem_mark
    if context and start is not None and end is not None and start.line != end.line:
        context += f" (started at line {start.line + 1})"
    reason = " ".join(part for part in (context, exc.problem) if part) or "not valid YAML"
    mark = exc.problem_mark
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        reason += "; YAML indents with spaces, never tabs"
    return f"YAML syntax: {reason}"


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node or item node, value node) for one step of a path, merges included."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        merges = []
        for key_node, value_node in node.value:  # explicit keys first: they win over merges
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
            elif isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                return key_node, value_node
        for merge in merges:
            for source in merge.value if isinstance(merge, yaml.SequenceNode) else [merge]:
                found = _child(source, part)
                if found:
                    return found
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        item = node.value[part]
        return item, item
    return None


def find(
    node: yaml.Node | None, path: Sequence[str | int]
) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(key node, value node) at ``path``, or the deepest ancestor found (key None)."""
    key_node: yaml.Node | None = None
    for part in path:
        if node is None:
            break
        step = _child(node, part)
        if step is None:
            return None, node
        key_node, node = step
    return key_node, node


def locate(
    node: yaml.Node | None, path: Sequence[str | int], *, key: bool = False
) -> tuple[int, int]:
    """1-based (line, column) of the value at ``path`` (or of its key), or its nearest ancestor."""
    key_node, value_node = find(node, path)
    target = key_node if key and key_node is not None else value_node
    if target is None:
        return 0, 0
    return target.start_mark.line + 1, target.start_mark.column + 1


def written(node: yaml.Node | None, path: Sequence[str | int]) -> str | None:
    """The scalar text at ``path`` exactly as written, for hints such as "quote it"."""
    key_node, value_node = find(node, path)
    if key_node is not None and isinstance(value_node, yaml.ScalarNode):
        return str(value_node.value)
    return None
