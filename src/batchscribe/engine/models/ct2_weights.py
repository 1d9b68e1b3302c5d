"""Read weights out of a CTranslate2 `model.bin` (binary format 4 to 6) as float32 numpy arrays.

Layout of the file: version, spec name and revision, then each variable as (name, rank, shape,
dtype id, byte count, bytes), then aliases. Quantized weights come with a `<name>_scale`
companion (q = round(w * scale), one scale per output row), undone here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from batchscribe.errors import ModelError

_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "bfloat16"}


def _u8(f: BinaryIO) -> int:
    return f.read(1)[0]


def _u16(f: BinaryIO) -> int:
    return struct.unpack("<H", f.read(2))[0]


def _u32(f: BinaryIO) -> int:
    return struct.unpack("<I", f.read(4))[0]


def _name(f: BinaryIO) -> str:
    return f.read(_u16(f)).rstrip(b"\0").decode("utf-8")


def _array(raw: bytes, type_id: int, shape: tuple[int, ...]) -> np.ndarray:
    kind = _DTYPES.get(type_id)
    if kind is None:
        raise ModelError(f"unsupported CTranslate2 weight type {type_id}")
    if kind == "bfloat16":  # numpy has none: widen the 16 bits to float32's upper half
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, kind).reshape(shape)


@dataclass(frozen=True)
class _Variable:
    name: str
    shape: tuple[int, ...]
    type_id: int
    size: int  # bytes
    end: int  # file offset just past its bytes


def _variables(f: BinaryIO, path: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[_Variable, bytes]]:
    """Walk the header, yielding every variable with its bytes when `wanted` (else b"")."""
    try:
        version = _u32(f)
        if not 4 <= version <= 6:
            raise ModelError(f"{path}: CTranslate2 binary format {version} is not supported (4 to 6 are)")
        _name(f)  # spec name
        _u32(f)  # spec revision
        for _ in range(_u32(f)):
            name = _name(f)
            shape = tuple(_u32(f) for _ in range(_u8(f)))
            type_id = _u8(f)
            size = _u32(f)
            data = f.read(size) if wanted(name) else b""
            end = f.tell() if data else f.seek(size, 1)
            yield _Variable(name, shape, type_id, size, end), data
    except (IndexError, struct.error) as error:  # the header itself is cut
        raise ModelError(f"{path} is incomplete: its header is cut short") from error


def read_weights(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables whose names start with `prefix`, as float32 (scalars kept as they are)."""
    raw: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        for variable, data in _variables(f, path, lambda name: name.startswith(prefix)):
            if data:
                raw[variable.name] = _array(data, variable.type_id, variable.shape)
    weights = {}
    for name, array in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and array.dtype.kind == "i":
            array = array.astype(np.float32) / scale.astype(np.float32).reshape(-1, *([1] * (array.ndim - 1)))
        weights[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    return weights


def variable_shape(path: Path, name: str) -> tuple[int, ...]:
    """One variable's shape, read from the header alone (e.g. the mel bins before loading)."""
    with open(path, "rb") as f:
        for variable, _ in _variables(f, path, lambda _: False):
            if variable.name == name:
                return variable.shape
    raise ModelError(f"{path} has no variable '{name}'; is it a CTranslate2 Whisper model?")


def check_complete(path: Path) -> None:
    """Raise ModelError if `path` ends before its last variable does (a truncated download or an
    upload that lost a part: its checksum can still be the one published)."""
    with open(path, "rb") as f:
        length = f.seek(0, 2)
        f.seek(0)
        for variable, _ in _variables(f, path, lambda _: False):
            if variable.end > length:
                raise ModelError(f"{path} is incomplete: it ends inside its variable '{variable.name}'")
