"""Read a YAML file that must hold a mapping, safely (``yaml.safe_load``, no Python tags)."""

import os
from typing import Any, Dict, Type

import yaml


def read_yaml_mapping(path: str, error: Type[Exception] = ValueError) -> Dict[str, Any]:
    """
    Return the mapping in a YAML file; an empty file is an empty mapping.

    A missing file, invalid YAML or a top level that is not a mapping raises ``error`` with a
    message naming the file.
    """
    if not os.path.isfile(path):
        raise error(f'file not found: {path}')
    with open(path, 'r', encoding='utf-8') as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise error(f'{path}: not valid YAML: {exc}') from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f'{path}: expected a mapping at the top level, got {type(data).__name__}')
    return data
