"""Row names: paths are shortened only as far as two different rows keep different names."""

from __future__ import annotations

import itertools
from pathlib import Path

from leaderboard import BuildOptions, make_tables, read_runs
from leaderboard._labels import unique_labels
from leaderboard._runs import RowKey
from tests.leaderboard._lmeval_files import write_results

SCORES = {"compressed_squad": {"squad_f1": 0.5, "squad_exact_match": 0.25}}


def _raw_heads(runs: Path) -> list[tuple[str, str]]:
    """(Model, Compressor) of every row of the raw table built from ``runs``."""
    raw = make_tables(read_runs([runs], with_samples=False), BuildOptions(out=runs))[0]
    return [(row[0].display, row[1].display) for row in raw.rows]


def test_models_in_folders_of_one_name_keep_apart(tmp_path: Path) -> None:
    for folder, model in (("a", "/models/good/gpt2"), ("b", "/models/broken/gpt2"),
                          ("c", "/models/good/llama")):
        write_results(tmp_path / folder, f"pretrained={model},compressor=none", SCORES)
    assert sorted(_raw_heads(tmp_path)) == [
        ("broken/gpt2", "none"), ("good/gpt2", "none"), ("llama", "none")]


def test_settings_paths_of_one_name_keep_apart(tmp_path: Path) -> None:
    for folder, checkpoint, mem in (("a", "/ckpt/good/final", 4), ("b", "/ckpt/broken/final", 4),
                                    ("c", "/ckpt/other", 8)):
        write_results(tmp_path / folder,
                      f"pretrained=m,compressor=500x,init_from={checkpoint},num_mem={mem}", SCORES)
    write_results(tmp_path / "d", "pretrained=m,compressor=none", SCORES)
    assert sorted(label for _model, label in _raw_heads(tmp_path)) == [
        "500x (init_from=broken/final, num_mem=4)",
        "500x (init_from=good/final, num_mem=4)",
        "500x (init_from=other, num_mem=8)",
        "none",
    ]


def _labels(keys: list[RowKey]) -> list[tuple[str, str]]:
    shown = unique_labels(keys)
    return [(shown[key].model_label, shown[key].label) for key in keys]


def test_a_path_that_ends_another_is_shown_whole_whatever_the_order() -> None:
    keys = [RowKey("m", "c", (("p", "/a/b"),)), RowKey("m", "c", (("p", "/x/a/b"),)),
            RowKey("m", "c", (("p", "/y/c"),))]
    expected = [("m", "c (p=/a/b)"), ("m", "c (p=x/a/b)"), ("m", "c (p=c)")]
    for order in itertools.permutations(range(len(keys))):
        ordered = [keys[i] for i in order]
        assert _labels(ordered) == [expected[i] for i in order]


def test_a_hub_id_and_a_local_folder_of_one_name_keep_apart() -> None:
    keys = [RowKey("gpt2", "none"), RowKey("/models/gpt2", "none"),
            RowKey("models/gpt2", "none"), RowKey("/srv/models/gpt2", "none")]
    assert _labels(keys) == [("gpt2", "none"), ("/models/gpt2", "none"),
                             ("models/gpt2", "none"), ("srv/models/gpt2", "none")]


def test_rows_that_only_differ_in_version_or_punctuation_are_told_apart() -> None:
    versions = [RowKey("m", "500x", (("num_mem", "4"),), version=v) for v in ("1", "2")]
    assert _labels(versions) == [("m", "500x (num_mem=4) [version 1]"),
                                 ("m", "500x (num_mem=4) [version 2]")]
    commas = [RowKey("m", "c", (("a", "1, b=2"),)), RowKey("m", "c", (("a", "1"), ("b", "2")))]
    (_m, first), (_m, second) = _labels(commas)
    assert first != second and first.startswith("c (a=1, b=2) [") and second.startswith(
        "c (a=1, b=2) [")

