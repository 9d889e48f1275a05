"""
Training configuration: defaults, then an experiment YAML, then ``--set`` overrides.

``configs/defaults.yaml`` lists every key; an experiment file and ``--set a.b=value``
overrides may only change keys that exist there (a typo is an error naming the key and the
close matches). Override values are parsed as YAML, so ``--set optim.lr=3e-4`` is a float
and ``--set data.root=`` an empty string. Nothing here mutates its arguments; the resolved
config and the git revision are written into the run folder by :func:`write_run_files`.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import subprocess
from typing import Any, Dict, Iterable, Mapping, Optional

from mono_depth_ros.core.atomic import atomic_write_text
from mono_depth_ros.core.yaml_file import read_yaml_mapping
import yaml

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')
DEFAULTS_PATH = os.path.join(CONFIG_DIR, 'defaults.yaml')
# Sub-trees whose keys are free-form (constructor or loss arguments).
OPEN_KEYS = ('model.args', 'loss.args')


class ConfigError(ValueError):
    """A config file or override is malformed or names an unknown key."""


def read_yaml(path: str) -> Dict[str, Any]:
    """Read a YAML mapping with yaml.safe_load (an empty file is an empty mapping)."""
    return read_yaml_mapping(path, ConfigError)


def merge(base: Mapping[str, Any], update: Mapping[str, Any], prefix: str = '',
          source: str = 'config', replace_open: bool = True) -> Dict[str, Any]:
    """
    Return base updated by update (recursively); unknown keys raise ConfigError.

    With ``replace_open`` a mapping given for an open key (model.args, loss.args) replaces
    the previous one, since another architecture takes other arguments; without it (an
    override of one argument, ``model.args.x=1``) the keys are updated one by one.
    """
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        dotted = f'{prefix}{key}'
        if prefix.rstrip('.') in OPEN_KEYS:
            out[key] = copy.deepcopy(value)
            continue
        if key not in out:
            close = difflib.get_close_matches(str(key), [str(k) for k in out], n=3)
            hint = f' (did you mean {", ".join(prefix + c for c in close)}?)' if close else ''
            raise ConfigError(f'{source}: unknown key {dotted!r}{hint}')
        if dotted in OPEN_KEYS and replace_open:
            if not isinstance(value, Mapping):
                raise ConfigError(f'{source}: {dotted!r} must be a mapping, got {value!r}')
            out[key] = copy.deepcopy(dict(value))
        elif isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f'{source}: {dotted!r} must be a mapping, got {value!r}')
            out[key] = merge(out[key], value, dotted + '.', source, replace_open)
        else:
            if isinstance(value, Mapping):
                raise ConfigError(f'{source}: {dotted!r} is a value, not a mapping')
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> Dict[str, Any]:
    """Turn ``a.b.c=value`` into ``{'a': {'b': {'c': value}}}`` with a YAML-typed value."""
    if '=' not in text:
        raise ConfigError(f'override {text!r} is not of the form key=value')
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key or any(not part for part in key.split('.')):
        raise ConfigError(f'override {text!r} has an empty key')
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as exc:
        raise ConfigError(f'override {text!r}: value is not valid YAML: {exc}') from exc
    if isinstance(value, str):
        # YAML 1.1 reads '3e-4' (no dot) as a string; a number is what anyone means.
        try:
            value = float(value)
        except ValueError:
            pass
    for part in reversed(key.split('.')):
        value = {part: value}
    return value


def load_config(path: Optional[str] = None, overrides: Iterable[str] = (),
                defaults_path: str = DEFAULTS_PATH) -> Dict[str, Any]:
    """Return the resolved config: defaults <- YAML file at path <- each override."""
    config = read_yaml(defaults_path)
    if path:
        config = merge(config, read_yaml(path), source=path)
    for text in overrides:
        key = text.split('=', 1)[0].strip()
        config = merge(config, parse_override(text), source=f'--set {text}',
                       replace_open=key in OPEN_KEYS)
    check_types(config, read_yaml(defaults_path))
    validate(config)
    return config


def check_types(config: Mapping[str, Any], defaults: Mapping[str, Any],
                prefix: str = '') -> None:
    """
    Raise ConfigError where a value has not its default's type.

    An integer key takes an integer (``data.batch_size=.inf`` and ``train.epochs=1e999`` are
    refused, not turned into a traceback by ``int()`` later), a float key a finite number, a
    bool key true or false, a string key a string; keys whose default is null, and the open
    keys (model.args, loss.args), take anything.
    """
    for key, default in defaults.items():
        dotted, value = f'{prefix}{key}', config.get(key)
        if dotted in OPEN_KEYS or default is None or key not in config:
            continue
        if isinstance(default, Mapping):
            if isinstance(value, Mapping):
                check_types(value, default, dotted + '.')
            continue
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + '...'
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), 'true or false'
        elif isinstance(default, int):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), 'an integer'
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                math.isfinite(value)
            kind = 'a finite number'
        elif isinstance(default, str):
            # A string choice may be read as a bool (train.progress: false; YAML's off, no).
            ok, kind = isinstance(value, (str, bool)), 'a string'
        elif isinstance(default, list):
            ok, kind = isinstance(value, list), 'a list'
        else:
            continue
        if not ok:
            raise ConfigError(f'{dotted} must be {kind}, got {shown}')


def validate(config: Mapping[str, Any]) -> None:
    """Check value ranges and choices that the key check cannot see."""
    def need(cond, message):
        if not cond:
            raise ConfigError(message)

    data, optim, train = config['data'], config['optim'], config['train']
    need(data['height'] > 0 and data['width'] > 0, 'data.height and data.width must be > 0')
    need(data['batch_size'] > 0, 'data.batch_size must be > 0')
    need(data['num_workers'] >= 0, 'data.num_workers must be >= 0 (0 = load in the main '
         'process)')
    from training.networks import ARCHITECTURES
    # model.arch '' = the architecture of model.init_checkpoint (resolved later).
    need(config['model']['arch'] in ARCHITECTURES or config['model']['arch'] == '',
         f'model.arch {config["model"]["arch"]!r} is unknown; known: '
         f'{", ".join(ARCHITECTURES)}')
    need(0 < config['model']['min_depth'] < config['model']['max_depth'],
         'model.min_depth must be in (0, model.max_depth)')
    need(optim['optimizer'] in ('adamw', 'adam'), 'optim.optimizer must be adamw or adam')
    need(optim['scheduler'] in ('onecycle', 'step', 'none'),
         'optim.scheduler must be onecycle, step or none')
    need(optim['amp'] in ('auto', 'bf16', 'fp16', 'none'),
         'optim.amp must be auto, bf16, fp16 or none')
    need(float(optim['lr']) > 0, 'optim.lr must be > 0')
    need(train['epochs'] > 0, 'train.epochs must be > 0')
    need(train['early_stopping']['mode'] in ('min', 'max'),
         'train.early_stopping.mode must be min or max')
    need(config['data']['kitti']['gt'] in ('velodyne', 'png'),
         'data.kitti.gt must be velodyne or png')
    for name in ('hflip', 'channel_swap', 'grayscale'):
        need(0.0 <= float(config['augment'][name]) <= 1.0,
             f'augment.{name} is a probability in [0, 1]')


def git_revision(folder: Optional[str] = None) -> str:
    """Return the git commit of the source tree (with -dirty), or '' outside a checkout."""
    folder = folder or os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=folder, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=folder, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''
    return rev + ('-dirty' if dirty else '')


def write_run_files(output_dir: str, config: Mapping[str, Any]) -> str:
    """Write config.yaml (resolved) and git_revision.txt into output_dir; return the revision."""
    os.makedirs(output_dir, exist_ok=True)
    atomic_write_text(os.path.join(output_dir, 'config.yaml'),
                      yaml.safe_dump(dict(config), sort_keys=False))
    rev = git_revision()
    atomic_write_text(os.path.join(output_dir, 'git_revision.txt'), rev + '\n')
    return rev
