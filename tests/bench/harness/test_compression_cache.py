"""The compression cache: a damaged entry is recomputed, a full disk leaves the run going."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.harness.compression_cache import CompressionCache
from bench.lmeval.run import run_lm_eval
from bench.records import CompressedEmbeddings, CompressedText, CompressionStats

KEY = "ab" + "0" * 62
TASK = "compressed_squad"


def _text(text: str = "kept words") -> CompressedText:
    return CompressedText(text, CompressionStats(5, 2, 0.25, 0.5), True, {"kept": [1, 3]})


def _embeddings() -> CompressedEmbeddings:
    vectors = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return CompressedEmbeddings(vectors, CompressionStats(9, 3, 0.5), {"slots": 3})


def _entry_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def _damage_meta(cache: CompressionCache, damage: Callable[[Path], object]) -> None:
    meta = next(cache.root.rglob("*.json"))
    damage(meta)


DAMAGES: dict[str, Callable[[Path], object]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "not utf-8": lambda p: p.write_bytes(b"\xff\xfe\x00{"),
    "not an object": lambda p: p.write_text("[1, 2]", encoding="utf-8"),
    "a field missing": lambda p: p.write_text('{"form": "text", "text": "x"}',
                                              encoding="utf-8"),
    "a field of another type": lambda p: p.write_text(
        p.read_text(encoding="utf-8").replace('"kept words"', "17"), encoding="utf-8"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_a_miss_with_a_warning_and_is_rewritten(
        damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    cache = CompressionCache(tmp_path)
    cache.put(KEY, _text())
    _damage_meta(cache, DAMAGES[damage])
    with caplog.at_level(logging.WARNING):
        assert cache.get(KEY) is None
    assert (cache.hits, cache.misses) == (0, 1)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and KEY in warned[0] and "recomput" in warned[0]
    cache.put(KEY, _text())
    assert cache.get(KEY) == _text()
    assert _entry_files(tmp_path) == [f"{KEY}.json"]


def test_an_unreadable_entry_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    cache = CompressionCache(tmp_path)
    cache.put(KEY, _text())
    with _failing_io(tmp_path, errno.EIO, "r"), caplog.at_level(logging.WARNING):
        assert cache.get(KEY) is None
    assert any("Input/output error" in r.getMessage() for r in caplog.records)
    assert cache.get(KEY) == _text()


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing"])
def test_a_damaged_tensor_file_is_a_miss(damage: str, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture):
    cache = CompressionCache(tmp_path)
    cache.put(KEY, _embeddings())
    tensors = next(tmp_path.rglob("*.safetensors"))
    if damage == "missing":
        tensors.unlink()
    else:
        data = tensors.read_bytes()
        tensors.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with caplog.at_level(logging.WARNING):
        assert cache.get(KEY) is None
    assert any(KEY in r.getMessage() for r in caplog.records)
    cache.put(KEY, _embeddings())
    again = cache.get(KEY)
    assert isinstance(again, CompressedEmbeddings)
    assert torch.equal(again.embeddings, _embeddings().embeddings)


class _FailingFile:
    """A file whose writes stop after a few bytes and whose reads fail, with ``code``."""

    def __init__(self, inner: Any, code: int) -> None:
        self._inner = inner
        self._code = code

    def _fail(self) -> OSError:
        return OSError(self._code, os.strerror(self._code))

    def write(self, data: Any) -> int:
        self._inner.write(data[:3])
        self._inner.flush()
        raise self._fail()

    def read(self, *_: Any) -> Any:
        raise self._fail()

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *_: object) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def _failing_io(root: Path, code: int, mode: str) -> Iterator[None]:
    """Every file under ``root`` opened for ``mode`` ("w" or "r") fails with ``code``."""
    real_open = io.open
    prefix = str(root.resolve())

    def opener(file: Any, how: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, how, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{handle.fileno()}")
        writing = any(flag in how for flag in "wax+")
        if name.startswith(prefix) and writing == (mode == "w"):
            return _FailingFile(handle, code)
        return handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(io, "open", opener)
        yield


def test_a_full_disk_leaves_no_debris_and_turns_the_cache_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    cache = CompressionCache(tmp_path)
    with _failing_io(tmp_path, errno.ENOSPC, "w"), \
            caplog.at_level(logging.WARNING):
        cache.put(KEY, _text())
        cache.put("cd" + "0" * 62, _text("other"))
    assert _entry_files(tmp_path) == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "No space left on device" in warned[0]
    cache.put(KEY, _text())
    assert cache.get(KEY) is None


def test_a_full_disk_while_writing_tensors_leaves_no_debris(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def save_half(tensors: dict[str, torch.Tensor], filename: str, **kwargs: Any) -> None:
        real_save(tensors, filename, **kwargs)
        Path(filename).write_bytes(Path(filename).read_bytes()[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(safetensors.torch, "save_file", save_half)
    cache = CompressionCache(tmp_path)
    cache.put(KEY, _embeddings())
    assert _entry_files(tmp_path) == []
    assert cache.get(KEY) is None


@pytest.fixture()
def reader_run(data_env: Path, tiny_model_dir: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    def run(out: Path, cache: str) -> dict[str, Any]:
        return run_lm_eval("compressed_reader", f"tokenizer={tiny_model_dir},"
                           f"compressor=random_drop,rate=0.5,seed=3,compression_cache={cache}",
                           (TASK,), out, limit=None)

    yield run


def _scores(run: dict[str, Any]) -> list[float]:
    return [run["results"][TASK][f"{metric},none"]
            for metric in ("squad_f1", "squad_exact_match", "compression_ratio")]


@pytest.mark.slow  # two lm-eval runs
def test_an_evaluation_goes_on_without_the_cache_when_the_disk_is_full(
        reader_run: Callable[..., dict[str, Any]], tmp_path: Path):
    reference = reader_run(tmp_path / "off", "off")
    cache = tmp_path / "cache"
    with _failing_io(cache, errno.ENOSPC, "w"):
        full = reader_run(tmp_path / "full", str(cache))
    assert _scores(full) == _scores(reference)
    assert full["config"]["compressbench"]["compressions"] == 3
    assert not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.slow  # three lm-eval runs
def test_an_evaluation_recomputes_a_damaged_entry(
        reader_run: Callable[..., dict[str, Any]], tmp_path: Path):
    cache = tmp_path / "cache"
    first = reader_run(tmp_path / "r1", str(cache))
    metas = sorted(cache.rglob("*.json"))
    metas[0].write_bytes(metas[0].read_bytes()[:7])
    second = reader_run(tmp_path / "r2", str(cache))
    info = second["config"]["compressbench"]
    assert (info["compressions"], info["compression_cache"]["hits"]) == (1, 2)
    assert _scores(second) == _scores(first)
    third = reader_run(tmp_path / "r3", str(cache))
    assert third["config"]["compressbench"]["compression_cache"]["hits"] == 3
