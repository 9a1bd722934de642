"""Reading YAML as the configs are read: safe, ``1e4``-style numbers as floats, one-line errors, overrides.

Shared by the experiment configs (:mod:`agents.config.loader`) and the PixelCNN configs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rlnorm.validation import ConfigError


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e4`` and ``1.5e3`` as floats (YAML 1.2), not strings, and refusing a key
    written twice in one mapping.

    YAML 1.1 wants a dot and a signed exponent (``1.0e+4``), so the way counts and rates are usually
    written would reach the validators as strings. PyYAML keeps the last of two equal keys without a word, so a
    label reused under ``arms:`` (or a hyperparameter set twice) would silently drop the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden here
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"key {key!r} written twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text as the configs are read: safe, with ``1e4``-style numbers as floats.

    :param text: a YAML document
    """
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: no arbitrary objects


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning a missing file or a syntax error into a one-line :class:`ConfigError`.

    :param path: the YAML file
    :return: the parsed document
    """
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(source, "<file>", f"cannot read: {err.strerror or err}") from None
    try:
        return yaml_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(source, where, f"YAML syntax error: {problem}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split one ``key=value`` command-line override; the value is parsed as YAML.

    :param text: e.g. ``"train.total_timesteps=20000"`` or ``"seeds=[0]"``
    :return: (dotted key, value)
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("<command line>", text, "overrides are key=value (e.g. train.total_timesteps=20000)")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError("<command line>", key, f"cannot parse value {raw!r} as YAML") from None
    return key.strip(), value
