"""Checkpoint files that hold data only: ``NAME.json`` for every value that is not a tensor,
``NAME.safetensors`` for the tensors.

A tree is what ``state_dict()`` methods return: dicts with string keys, lists, tuples,
numbers, strings, booleans, None and tensors. In the JSON a tensor is ``{"__tensor__": KEY}``
(``KEY`` names it in the safetensors file) and a tuple ``{"__tuple__": [...]}``. Reading
builds nothing else, so a file planted in a checkpoint folder can hold wrong values but never
code; a file that does not parse is an error naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.substrate.atomic import atomic_path, atomic_write_json
from bench.substrate.errors import InputError

TENSOR = "__tensor__"
TUPLE = "__tuple__"
DAMAGED_HINT = ("the checkpoint is damaged or was not written by bench.train; remove it or "
                "use another --out")


def write_tree(folder: Path, name: str, tree: Any) -> None:
    """Write ``tree`` as ``folder/NAME.json`` (and ``NAME.safetensors`` if it holds
    tensors), each atomically."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors, "")
    if tensors:
        write_tensors(folder / f"{name}.safetensors", tensors)
    with _writing(folder / f"{name}.json") as path:
        atomic_write_json(path, encoded)


def read_tree(folder: Path, name: str) -> Any:
    """The tree :func:`write_tree` wrote as ``folder/NAME``."""
    path = folder / f"{name}.json"
    encoded = read_json(path)
    tensors_file = folder / f"{name}.safetensors"
    tensors = read_tensors(tensors_file) if tensors_file.exists() else {}
    return _decode(encoded, tensors, path)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` as a safetensors file, atomically; a failed write is an
    :class:`OSError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with _writing(path), atomic_path(path) as tmp:
        try:
            save_file({key: value.contiguous() for key, value in tensors.items()}, str(tmp))
        except SafetensorError as error:
            raise OSError(errno.EIO, f"cannot write ({error})", str(path)) from error


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """Name ``path`` in a write error that names no file (a full disk)."""
    try:
        yield path
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (an error naming it when it is not one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise InputError(f"not a readable safetensors file ({error})", path,
                         hint=DAMAGED_HINT) from error


def read_json(path: Path) -> Any:
    """The JSON value in ``path`` (an error naming it when it does not parse)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as error:  # also UnicodeDecodeError
        raise InputError(f"not valid JSON ({error})", path, hint=DAMAGED_HINT) from error


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Report values of ``path`` that do not fit what reads them as an error naming it."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RuntimeError) as error:
        problem = " ".join(str(error).split()) or type(error).__name__
        raise InputError(f"holds values this run cannot use ({problem})", path,
                         hint=DAMAGED_HINT) from error


def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu()
        return {TENSOR: key}
    if isinstance(value, dict):
        if not all(isinstance(name, str) for name in value):
            raise TypeError(f"{key or 'the tree'}: dict keys must be strings")
        return {name: _encode(item, tensors, f"{key}/{name}") for name, item in value.items()}
    if isinstance(value, tuple | list):
        items = [_encode(item, tensors, f"{key}/{index}") for index, item in enumerate(value)]
        return {TUPLE: items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{key or 'the tree'}: cannot store a {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, torch.Tensor], path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors, path) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {TENSOR}:
        key = value[TENSOR]
        if not isinstance(key, str) or key not in tensors:
            raise InputError(f"names tensor {key!r}, which is not in its .safetensors file",
                             path, hint=DAMAGED_HINT)
        return tensors[key]
    if set(value) == {TUPLE} and isinstance(value[TUPLE], list):
        return tuple(_decode(item, tensors, path) for item in value[TUPLE])
    return {name: _decode(item, tensors, path) for name, item in value.items()}
