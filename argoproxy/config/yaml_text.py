"""config.yaml's YAML: PyYAML's safe loader refusing a key given twice in one mapping, and a syntax error as one
line naming the file and the place (settings.py's read_yaml reads a config file with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently: a second
    `port:` further down a long file would win unseen)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.checked: set[int] = set()  # mappings whose own keys were checked (by id: a merge reads one twice)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked before a merge rewrites the node in place (a merge of this node met first flattens it too).
        if id(node) not in self.checked:
            self.checked.add(id(node))
            seen: set[Any] = set()
            for key_node, _ in node.value:  # the mapping's own keys: a merge (`<<: *base`) may be overridden
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if (type(key), key) in seen:  # typed: 1, 1.0 and true are three keys to YAML
                    raise RepeatedKey(key, key_node.start_mark.line + 1)
                seen.add((type(key), key))
        super().flatten_mapping(node)


def yaml_mistake(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """A YAML syntax error as one line naming the file, as the user gave it or as it was found, and the
    line:column of the mistake (PyYAML's own message spreads it over several lines, the place last)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    context = f" ({exc.context}" + (f" from line {exc.context_mark.line + 1}" if exc.context_mark else "") + ")" \
        if exc.context else ""
    return f"{where}: not valid YAML: {exc.problem or 'a syntax error'}{context}; fix that line of the file"


class RepeatedKey(ValueError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line
