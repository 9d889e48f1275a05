"""
The TensorRT engine cache: keys, sidecar JSON, validation and atomic stores (pure Python).

An engine is only valid for the exact ONNX bytes, TensorRT version, GPU and builder
settings it was built with; loading any other one gives wrong depth or a crash. So an
engine is found by a key over everything that changes it, and the key, the model metadata
and the sha256 of the engine bytes live in a sidecar ``<engine>.json``. An engine is loaded
only when its sidecar names the expected key AND its bytes hash to ``engine_sha256``;
anything else (missing sidecar, other key, truncated or corrupt bytes) is rebuilt.

Writes go through :mod:`mono_depth_ros.core.atomic` (engine first, sidecar last, so a sidecar
never vouches for bytes that are not on disk yet), and builders of the same engine
serialise on a lock file, so two nodes starting together build it once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import hashlib
import json
import os
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from mono_depth_ros.core.atomic import atomic_write_bytes, atomic_write_text
from mono_depth_ros.core.model_meta import ModelMeta

SIDECAR_FORMAT = 'mono_depth_ros.engine'
SIDECAR_VERSION = 1
ENGINE_SUFFIX = '.engine'
SHORT_KEY = 12


class EngineCacheError(RuntimeError):
    """An engine cannot be stored, or a stale/corrupt engine was asked for explicitly."""


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes one serialised engine differ from another."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shape: Tuple[int, ...]
    workspace_bytes: int = 0
    calibration_sha256: str = ''
    options: Tuple[Tuple[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def create(cls, onnx_sha256: str, tensorrt_version: str, gpu_name: str,
               compute_capability, precision: str, input_shape, workspace_bytes: int = 0,
               calibration_sha256: str = '', **options) -> 'EngineKey':
        """Build a key; ``options`` are any further builder settings that change the engine."""
        if isinstance(compute_capability, (tuple, list)):
            compute_capability = '.'.join(str(v) for v in compute_capability)
        return cls(str(onnx_sha256), str(tensorrt_version), str(gpu_name),
                   str(compute_capability), str(precision),
                   tuple(int(v) for v in input_shape), int(workspace_bytes),
                   str(calibration_sha256), tuple(sorted(options.items())))

    def fields(self) -> Dict[str, Any]:
        """Return the key fields as a JSON-friendly dict (written into the sidecar)."""
        return {
            'onnx_sha256': self.onnx_sha256,
            'tensorrt_version': self.tensorrt_version,
            'gpu_name': self.gpu_name,
            'compute_capability': self.compute_capability,
            'precision': self.precision,
            'input_shape': list(self.input_shape),
            'workspace_bytes': self.workspace_bytes,
            'calibration_sha256': self.calibration_sha256,
            'options': {k: v for k, v in self.options},
        }

    @property
    def digest(self) -> str:
        """Return the sha256 over the canonical JSON of the fields."""
        text = json.dumps(self.fields(), sort_keys=True, separators=(',', ':'))
        return sha256_bytes(text.encode('utf-8'))


@dataclass
class CacheCheck:
    """Outcome of validating an engine file against an expected key."""

    ok: bool
    reason: str
    sidecar: Optional[Dict[str, Any]] = None


def sidecar_path(engine_path: str) -> str:
    """Return the sidecar JSON path of an engine file."""
    return engine_path + '.json'


def read_sidecar(engine_path: str) -> Dict[str, Any]:
    """Parse an engine's sidecar; raise EngineCacheError saying what is wrong with it."""
    path = sidecar_path(engine_path)
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError as exc:
        raise EngineCacheError(f'engine sidecar {path} is missing; rebuild the engine with '
                               'build_engine so its key and metadata are recorded') from exc
    except (OSError, ValueError, RecursionError) as exc:  # 5000-digit ints, deep nesting
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EngineCacheError(f'engine sidecar {path} is unreadable: {first}') from None
    if not isinstance(data, dict) or data.get('format') != SIDECAR_FORMAT:
        raise EngineCacheError(f'{path} is not a mono_depth_ros engine sidecar')
    for name in ('key', 'key_fields', 'meta', 'engine_sha256'):
        if name not in data:
            raise EngineCacheError(f'engine sidecar {path} lacks {name!r}')
    return data


def check_engine(engine_path: str, key: Optional[EngineKey] = None) -> CacheCheck:
    """
    Say whether an engine file may be loaded.

    With ``key`` the sidecar must name exactly that key; without one (a user-supplied
    ``.engine``) only the sidecar's presence and the byte hash are checked.
    """
    if not os.path.isfile(engine_path):
        return CacheCheck(False, f'no engine at {engine_path}')
    try:
        sidecar = read_sidecar(engine_path)
    except EngineCacheError as exc:
        return CacheCheck(False, str(exc))
    if key is not None and sidecar['key'] != key.digest:
        changed = sorted(name for name, value in key.fields().items()
                         if sidecar['key_fields'].get(name) != value)
        return CacheCheck(False, f'engine {engine_path} was built for another key '
                          f'(differs in: {", ".join(changed) or "key digest"})', sidecar)
    actual = sha256_file(engine_path)
    if actual != sidecar['engine_sha256']:
        return CacheCheck(False, f'engine {engine_path} is corrupt or truncated (sha256 '
                          f'{actual[:12]} != recorded {sidecar["engine_sha256"][:12]})',
                          sidecar)
    return CacheCheck(True, 'valid', sidecar)


def write_engine(engine_path: str, engine_bytes: bytes, key: EngineKey,
                 meta: ModelMeta, extra: Optional[Dict[str, Any]] = None) -> None:
    """Store engine bytes then their sidecar, each atomically."""
    if not engine_bytes:
        raise EngineCacheError('refusing to store an empty engine')
    atomic_write_bytes(engine_path, engine_bytes)
    sidecar = {
        'format': SIDECAR_FORMAT,
        'version': SIDECAR_VERSION,
        'key': key.digest,
        'key_fields': key.fields(),
        'meta': meta.to_dict(),
        'engine_sha256': sha256_bytes(engine_bytes),
        'engine_bytes': len(engine_bytes),
    }
    if extra:
        sidecar['extra'] = extra
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2, sort_keys=True))


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (a no-op where fcntl does not exist)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX; atomic renames still keep files whole
        yield
        return
    with open(path, 'a+') as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class EngineCache:
    """A folder of engines named by model, precision and short key."""

    def __init__(self, cache_dir: str, log: Optional[Callable[[str], None]] = None):
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
        self.log = log or (lambda _msg: None)

    def engine_path(self, model_path: str, key: EngineKey) -> str:
        """Return where the engine for this model and key lives."""
        stem = os.path.splitext(os.path.basename(model_path))[0] or 'model'
        name = f'{stem}_{key.precision}_{key.digest[:SHORT_KEY]}{ENGINE_SUFFIX}'
        return os.path.join(self.cache_dir, name)

    def get_or_build(self, model_path: str, key: EngineKey, meta: ModelMeta,
                     build: Callable[[], bytes]) -> Tuple[str, bytes, bool]:
        """
        Return (engine path, engine bytes, built) for the key, building when needed.

        ``build`` is called (with the lock held) only when no valid engine exists; it
        returns the serialised engine. A stale or corrupt engine is never returned.
        """
        path = self.engine_path(model_path, key)
        data = _load_valid(path, key)
        if data is not None:
            return path, data, False
        with file_lock(path + '.lock'):
            # Another process may have built it while this one waited for the lock.
            data = _load_valid(path, key)
            if data is not None:
                return path, data, False
            check = check_engine(path, key)
            if os.path.exists(path):
                self.log(f'rejecting cached engine: {check.reason}; rebuilding')
            engine_bytes = bytes(build())
            write_engine(path, engine_bytes, key, meta)
        # Read back what is on disk, so the caller runs exactly what the sidecar vouches for.
        check = check_engine(path, key)
        if not check.ok:
            raise EngineCacheError(f'engine written to {path} does not validate: {check.reason}')
        return path, engine_bytes, True


def _load_valid(path: str, key: EngineKey) -> Optional[bytes]:
    check = check_engine(path, key)
    if not check.ok:
        return None
    with open(path, 'rb') as handle:
        data = handle.read()
    # The bytes are hashed again as read: a concurrent rebuild may have replaced the file.
    return data if sha256_bytes(data) == check.sidecar['engine_sha256'] else None
