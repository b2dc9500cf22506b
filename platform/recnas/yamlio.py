"""The YAML dialect of recnas's files (job files, search spaces, ``--set``).

Safe YAML with two changes that users of such files expect:

- ``1e-3`` is a number, as in YAML 1.2 and JSON (YAML 1.1 reads it as a
  string unless it holds a dot, ``1.0e-3``).
- A key given twice in one mapping is an error naming both lines, instead of
  the last one silently winning.
"""

from __future__ import annotations

import io
import re
from typing import Any

import yaml

# A decimal number with an exponent, with or without a dot (YAML 1.1's own
# float rule, tried first, already takes the forms with a dot).
_EXPONENT_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"
)


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice (first on line {first + 1})",
                    key_node.start_mark,
                )
            lines[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789.")
)


def parse(text: str, source: str) -> Any:
    """The value of a YAML text.

    Raises:
        ValueError: Naming ``source`` and the line of the problem.
    """
    stream = io.StringIO(text)
    stream.name = source  # where the loader's messages say the problem is
    try:
        return yaml.load(stream, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML: {error}") from error
