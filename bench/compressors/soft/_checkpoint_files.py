"""Reading the files of soft-compressor checkpoints, whatever their format.

Every format reads its tensors with :func:`read_tensors` and its JSON with :func:`read_json`,
so every checkpoint gets the same checks: a path that does not exist, an empty or truncated
weights file, a ``.bin`` that holds pickled objects (code) besides tensors, JSON that does not
parse or lacks a field, and a tensor that is not floating point or holds NaN or Inf each end in
one :class:`CheckpointFileError` line naming the file and the tensor or field. Nothing is
unpickled: ``.bin`` files are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from bench.substrate.errors import InputError, one_line

#: The JSON types a field may have: one or several of bool, int, float, str, list, dict.
FieldTypes = type | tuple[type, ...]

_GLOBAL = re.compile(r"GLOBAL (\S+)")
_JSON_NAMES = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


class CheckpointFileError(InputError):
    """A checkpoint file that cannot be used as it is (named with its tensor or field)."""


def existing(path: Path, hint: str | None = None) -> Path:
    """``path``, which must exist."""
    if not path.exists():
        raise CheckpointFileError("does not exist", path, hint=hint)
    return path


def read_tensors(file: Path, wanted: Callable[[str], bool] = lambda name: True,
                 device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch ``.bin`` file whose names ``wanted`` accepts,
    each checked by :func:`check_values`."""
    existing(file)
    if file.stat().st_size == 0:
        raise CheckpointFileError("the weights file is empty", file)
    read = _read_safetensors if file.suffix == ".safetensors" else _read_torch_file
    tensors = read(file, wanted, device)
    check_values(file, tensors)
    return tensors


def _read_safetensors(file: Path, wanted: Callable[[str], bool], device: str
                      ) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt", device=device) as handle:
            return {name: handle.get_tensor(name) for name in handle.keys() if wanted(name)}  # noqa: SIM118  (not a mapping)
    except SafetensorError as error:
        raise CheckpointFileError(f"not a complete safetensors file, truncated or damaged "
                                  f"({one_line(error)})", file) from None


def _read_torch_file(file: Path, wanted: Callable[[str], bool], device: str
                     ) -> dict[str, torch.Tensor]:
    loaded = _torch_load(file)
    if not isinstance(loaded, Mapping):
        raise CheckpointFileError(f"holds a {type(loaded).__name__}, expected a dict of tensors",
                                  file)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in loaded.items():
        if not wanted(str(name)):
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointFileError(f"entry {str(name)!r} is a {type(value).__name__}, "
                                      "not a tensor", file)
        tensors[str(name)] = value.to(device=device, copy=True)
    return tensors


def _torch_load(file: Path) -> Any:
    mmap = zipfile.is_zipfile(file)  # only what is read is paged in (a whole model's .bin)
    try:
        return torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:  # weights_only met something that is not a tensor
        found = _GLOBAL.search(str(error))
        what = f"pickled Python objects, i.e. code ({found.group(1)})" if found else \
            "pickled data that is not plain tensors (objects, i.e. code, or damage)"
        raise CheckpointFileError(f"holds {what}; it was not loaded", file,
                                  hint="save plain tensors (a state dict, or safetensors)") \
            from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as error:  # any failure to decode an untrusted file is the file's fault
        raise _unreadable(file, error) from None


def _unreadable(file: Path, error: BaseException) -> CheckpointFileError:
    message = one_line(error).split(". ")[0] if str(error) else ""
    reason = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return CheckpointFileError(f"not a complete torch checkpoint, truncated or damaged "
                               f"({reason}); it was not loaded", file)


def check_values(source: Path | str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse a tensor that is not floating point or holds NaN or Inf, naming it."""
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise CheckpointFileError(f"tensor {name!r} has dtype {tensor.dtype}; trained "
                                      "weights are floating-point tensors", source)
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointFileError(f"tensor {name!r} holds {bad} NaN or infinite value(s) "
                                      f"of {tensor.numel()}", source)


def read_json(file: Path, fields: Mapping[str, FieldTypes] | None = None) -> dict[str, Any]:
    """The JSON object in ``file``, with every one of ``fields`` present and of its type."""
    existing(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise CheckpointFileError(f"not UTF-8 text ({error.reason} at byte {error.start})",
                                  file) from None
    except json.JSONDecodeError as error:
        raise CheckpointFileError(f"invalid JSON: {error.msg} (column {error.colno})", file,
                                  line=error.lineno) from None
    if not isinstance(data, dict):
        raise CheckpointFileError(f"holds a JSON {_JSON_NAMES.get(type(data), 'value')}, "
                                  "expected an object", file)
    check_fields(data, fields or {}, file)
    return data


def check_fields(data: Mapping[str, Any], fields: Mapping[str, FieldTypes], file: Path) -> None:
    """Every dotted field of ``fields`` (``lora.r``) is in ``data`` with one of its types."""
    for dotted, types in fields.items():
        value: Any = data
        parts = dotted.split(".")
        for depth, part in enumerate(parts, start=1):
            if not isinstance(value, Mapping):
                raise CheckpointFileError(f"is {value!r}, expected an object", file,
                                          field=".".join(parts[:depth - 1]))
            if part not in value:
                raise CheckpointFileError("missing", file, field=".".join(parts[:depth]))
            value = value[part]
        if not _has_type(value, types):
            raise CheckpointFileError(f"is {value!r}, expected {_type_names(types)}", file,
                                      field=dotted)


def _has_type(value: Any, types: FieldTypes) -> bool:
    kinds = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


def _type_names(types: FieldTypes) -> str:
    kinds = types if isinstance(types, tuple) else (types,)
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)
