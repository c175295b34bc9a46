"""Training data: Arxiv Corpus folders (regeneration) and QA sets (MRQA files, prepared folders).

* pretraining: a folder with ``train.parquet`` (and ``dev.parquet``) holding a ``text`` column,
  or a single ``.parquet`` file with that column;
* fine-tuning: an MRQA-format ``.jsonl``/``.jsonl.gz`` file (read with
  :mod:`bench.prepare.mrqa`), or a folder with ``train.parquet``/``dev.parquet`` or
  ``test.parquet`` holding ``context``, ``question`` and ``answers`` (the prepared benchmark /
  ArxivQA builder layout).

Without an explicit or bundled dev split, ``dev_size`` examples are held out (seeded).

A folder written by this project (it has ``manifest.json``, or a ``README.md`` card) is read
only when it matches its manifest; so is a file inside such a folder. A plain folder of one's
own Parquet files is read as it is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from bench.prepare.data_dir import CORPUS_REBUILD, prepare_hint
from bench.substrate.errors import InputError, one_line
from bench.substrate.manifest import verify_if_built
from bench.training.example import Example


def _read_parquet(path: Path, columns: Sequence[str]) -> list[dict[str, object]]:
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except pa.ArrowException as error:  # e.g. a file that is not Parquet
        raise InputError(f"not a readable Parquet file ({one_line(error)})", path) from error
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(map(str, frame.columns))}")
    rows: list[dict[str, object]] = [
        {str(key): value for key, value in row.items()}
        for row in frame[list(columns)].to_dict("records")]
    return rows


def _text_examples(path: Path) -> list[Example]:
    rows = _read_parquet(path, ["text"])
    examples = []
    for index, row in enumerate(rows):
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}: row {index}: field 'text' is empty or not a string")
        examples.append(Example(text, "regeneration", text))
    return examples


def _qa_rows(path: Path) -> list[Example]:
    rows = _read_parquet(path, ["context", "question", "answers"])
    examples = []
    for index, row in enumerate(rows):
        answers = tuple(str(a) for a in list(row["answers"]))  # type: ignore[call-overload]
        if not answers:
            raise InputError(f"{path}: row {index}: field 'answers' is empty")
        examples.append(Example(str(row["context"]), "qa", answers[0], str(row["question"]),
                                answers))
    return examples


def _mrqa_examples(path: Path) -> list[Example]:
    from bench.prepare.mrqa import read_mrqa

    examples = []
    for sample in read_mrqa(path):
        for question in sample.questions:
            if question.answers:
                examples.append(Example(sample.context, "qa", question.answers[0],
                                        question.question, tuple(question.answers)))
    return examples


def _verify(folder: Path, markers: tuple[str, ...] = ("README.md",)) -> None:
    """Refuse a built or prepared folder that does not match its manifest."""
    built = (folder / "train.parquet").exists() or any(folder.glob("test_len*.parquet"))
    verify_if_built(folder, CORPUS_REBUILD if built else prepare_hint(folder.name), markers)


def _read(path: Path, kind: str) -> list[Example]:
    _verify(path.parent, markers=())
    if kind == "qa" and (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
        return _mrqa_examples(path)
    if path.suffix == ".parquet":
        return _text_examples(path) if kind == "regeneration" else _qa_rows(path)
    raise InputError(f"{path}: unsupported data file for {kind} (expected .parquet"
                     f"{' or MRQA .jsonl(.gz)' if kind == 'qa' else ''})")


def _folder_files(folder: Path, kind: str) -> tuple[Path, Path | None]:
    train = folder / "train.parquet"
    if not train.is_file() and kind == "qa" and (folder / "test.parquet").is_file():
        train = folder / "test.parquet"
    if not train.is_file():
        raise FileNotFoundError(f"{folder}: no train.parquet"
                                f"{' or test.parquet' if kind == 'qa' else ''} found")
    dev = folder / "dev.parquet"
    return train, dev if dev.is_file() else None


def load_examples(data: str, kind: str, dev: str | None = None, dev_size: int = 200,
                  seed: int = 0, max_train: int | None = None
                  ) -> tuple[list[Example], list[Example]]:
    """``(train, dev)`` examples of ``kind`` ("regeneration" or "qa") from ``data``."""
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"training data not found: {path}")
    dev_path: Path | None = Path(dev) if dev else None
    if path.is_dir():
        _verify(path)
        path, bundled = _folder_files(path, kind)
        dev_path = dev_path or bundled
    train = _read(path, kind)
    if dev_path is not None:
        dev_examples = _read(dev_path, kind)[:dev_size]
    else:
        if len(train) < 2:
            raise InputError(f"{path}: need at least 2 examples to hold out a dev split")
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        held = set(order[: min(dev_size, len(train) // 5 or 1)])
        dev_examples = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
    if max_train is not None:
        train = train[:max_train]
    return train, dev_examples
