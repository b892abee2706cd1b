"""Strict YAML loading shared by panels and gating templates.

Duplicate keys (which PyYAML would silently collapse) and syntax errors become the caller's error class with
the file name and line; :func:`line_of` maps a field path back to its line for validation messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from mrdflow.errors import MrdflowError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first defined on line {seen[key] + 1}); each key may appear once",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YamlDocument:
    """A parsed YAML file: its data and the node tree used to find line numbers."""

    def __init__(self, path: Path, data: Any, root: yaml.Node | None):
        self.path = path
        self.data = data
        self._root = root

    def line_of(self, loc: Sequence[Any]) -> int | None:
        """1-based line of the field at ``loc`` (keys and list indices), or of its nearest existing parent."""
        node = self._root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if str(key_node.value) == str(part):
                        node, line = value_node, key_node.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def load_yaml(path: str | Path, error: type[MrdflowError], what: str) -> YamlDocument:
    """Read a YAML mapping from ``path``; raise ``error`` naming the file (and line) on any problem.

    Parameters
    ----------
    path : file to read.
    error : exception class to raise (``PanelError``, ``TemplateError``).
    what : what the file is, for messages ("panel", "gating template").
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path}:{where}: invalid YAML in the {what}: {problem}") from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise error(f"{path}: expected the {what} to be a YAML mapping of fields, found {found}")
    return YamlDocument(path, data, root)


def format_loc(loc: Sequence[Any]) -> str:
    """``('tubes', 'tube1', 'markers', 3)`` → ``tubes.tube1.markers[3]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
