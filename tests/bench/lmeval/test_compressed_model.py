"""The ``compressed`` model in-process: batching, compress-once, caching, errors, windows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bench.compressors import UnknownCompressorError
from bench.lmeval.run import run_lm_eval
from bench.results_record import SCHEMA_VERSION, parse_run_info
from tests.conftest import read_results, read_samples


def _run(out: Path, model_dir: Path, args: str, tasks: tuple[str, ...] = ("compressed_squad",),
         limit: int | None = 4, batch_size: int = 1,
         model: str = "compressed") -> dict[str, Any]:
    key = "pretrained" if model == "compressed" else "tokenizer"
    return run_lm_eval(model, f"{key}={model_dir},{args}", tasks, out, limit=limit,
                       batch_size=batch_size)


def test_batch_sizes_1_and_4_give_identical_generations_and_scores(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path):
    args = "compressor=truncate,rate=0.5,compression_cache=off"
    one = _run(tmp_path / "b1", tiny_model_dir, args, batch_size=1)
    four = _run(tmp_path / "b4", tiny_model_dir, args, batch_size=4)
    s1 = read_samples(tmp_path / "b1", "compressed_squad")
    s4 = read_samples(tmp_path / "b4", "compressed_squad")
    assert [s["resps"] for s in s1] == [s["resps"] for s in s4]
    for metric in ("squad_f1,none", "squad_exact_match,none", "compression_ratio,none"):
        assert one["results"]["compressed_squad"][metric] == \
            four["results"]["compressed_squad"][metric]


def test_each_context_is_compressed_once_and_the_disk_cache_is_reused(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    args = f"compressor=random_drop,rate=0.5,seed=3,compression_cache={cache}"
    first = _run(tmp_path / "r1", tiny_model_dir, args, tasks=("compressed_squad",), limit=None,
                 model="compressed_reader")
    info = first["config"]["compressbench"]
    assert info["schema_version"] == SCHEMA_VERSION
    recorded = parse_run_info(first["config"], "r1")
    assert recorded is not None and recorded.to_json() == info
    questions = int(info["per_task"]["compressed_squad"]["samples"])
    assert info["compressions"] == 3 < questions  # 3 demo contexts, 3 questions each
    assert info["compression_cache"]["misses"] == 3
    second = _run(tmp_path / "r2", tiny_model_dir, args, tasks=("compressed_squad",), limit=None,
                  model="compressed_reader")
    again = second["config"]["compressbench"]
    assert again["compressions"] == 0 and again["compression_cache"]["hits"] == 3
    assert first["results"]["compressed_squad"]["squad_f1,none"] == \
        second["results"]["compressed_squad"]["squad_f1,none"]
    assert second["results"]["compressed_squad"]["compression_ratio,none"] < 0.6


def test_compressed_prompt_keeps_instruction_and_question(data_env: Path, tiny_model_dir: Path,
                                                          tmp_path: Path):
    _run(tmp_path, tiny_model_dir, "compressor=truncate,target_tokens=5", limit=2,
         model="compressed_reader")
    for sample in read_samples(tmp_path, "compressed_squad"):
        prompt = sample["arguments"]["gen_args_0"]["arg_0"]
        doc = sample["doc"]
        assert prompt.startswith(doc["instruction"] + " Context: ")
        assert prompt.endswith(f" Question: {doc['question']} Answer:")
        assert doc["context"] not in prompt


def test_zero_shot_drops_only_the_instruction(data_env: Path, tiny_model_dir: Path,
                                              tmp_path: Path):
    _run(tmp_path, tiny_model_dir, "compressor=zero_shot", limit=1, model="compressed_reader")
    sample = read_samples(tmp_path, "compressed_squad")[0]
    doc = sample["doc"]
    expected = f"Context: {doc['context']} Question: {doc['question']} Answer:"
    assert sample["arguments"]["gen_args_0"]["arg_0"] == expected


def test_reader_scores_drop_when_truncation_removes_answers(data_env: Path, tiny_model_dir: Path,
                                                            tmp_path: Path):
    full = _run(tmp_path / "none", tiny_model_dir, "compressor=none", limit=None,
                model="compressed_reader", tasks=("compressed_qa",))
    cut = _run(tmp_path / "cut", tiny_model_dir, "compressor=truncate,rate=0.2", limit=None,
               model="compressed_reader", tasks=("compressed_qa",))
    f1_full = full["results"]["compressed_qa"]["squad_f1,none"]
    f1_cut = cut["results"]["compressed_qa"]["squad_f1,none"]
    assert f1_full > 0.3
    assert f1_cut < f1_full - 0.15


def test_unknown_compressor_lists_the_known_ones(data_env: Path, tiny_model_dir: Path,
                                                 tmp_path: Path):
    with pytest.raises(UnknownCompressorError, match=r"known compressors: .*truncate"):
        _run(tmp_path, tiny_model_dir, "compressor=no_such_method", model="compressed_reader")


def test_unknown_compressor_option_is_an_error(data_env: Path, tiny_model_dir: Path,
                                               tmp_path: Path):
    with pytest.raises(ValueError, match=r"does not accept option\(s\) ratio"):
        _run(tmp_path, tiny_model_dir, "compressor=truncate,ratio=0.5",
             model="compressed_reader")


def test_context_longer_than_the_window_is_cut_with_a_warning(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="bench.harness.frontend")
    results = _run(tmp_path, tiny_model_dir, "compressor=none,max_length=120,"
                   "compression_cache=off", limit=2)
    assert results["config"]["compressbench"]["contexts_cut_to_window"] >= 1
    assert any("cut to" in record.getMessage() for record in caplog.records)
    ratio = results["results"]["compressed_squad"]["original_tokens,none"]
    assert ratio < 120
    assert read_results(tmp_path)["results"]["compressed_squad"]["squad_f1,none"] >= 0.0


@pytest.mark.slow
def test_batch_size_auto_gives_the_answers_of_batch_size_1(data_env: Path, tiny_model_dir: Path,
                                                            tmp_path: Path):
    args = "compressor=truncate,rate=0.5,compression_cache=off"
    _run(tmp_path / "b1", tiny_model_dir, args, limit=3, batch_size=1)
    auto = run_lm_eval("compressed", f"pretrained={tiny_model_dir},{args}", ("compressed_squad",),
                       tmp_path / "auto", limit=3, batch_size="auto")
    assert auto["config"]["batch_size"] == "auto"
    one = read_samples(tmp_path / "b1", "compressed_squad")
    automatic = read_samples(tmp_path / "auto", "compressed_squad")
    assert [s["resps"] for s in one] == [s["resps"] for s in automatic]


def test_compressed_bits_off_leaves_text_sizes_out_and_says_so(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    base = "compressor=truncate,rate=0.5,compression_cache=off"
    coded = _run(tmp_path / "llmzip", tiny_model_dir, base, limit=2)
    skipped = _run(tmp_path / "off", tiny_model_dir, f"{base},compressed_bits=off", limit=2)
    for run, setting in ((coded, "llmzip"), (skipped, "off")):
        assert run["config"]["compressbench"]["compressed_bits_of_text"] == setting
    assert coded["results"]["compressed_squad"]["compressed_bits,none"] > 0
    assert "compressed_bits,none" not in skipped["results"]["compressed_squad"]
    off_samples = read_samples(tmp_path / "off", "compressed_squad")
    on_samples = read_samples(tmp_path / "llmzip", "compressed_squad")
    assert [s["resps"] for s in off_samples] == [s["resps"] for s in on_samples]
    assert all("compressed_bits" not in s for s in off_samples)
    assert all(s["compressed_bits"] > 0 for s in on_samples)


def test_a_later_hf_run_in_the_same_process_reports_no_compression_metrics(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    compressed = _run(tmp_path / "compressed", tiny_model_dir,
                      "compressor=none,compression_cache=off", limit=2)
    assert "answer_seconds,none" in compressed["results"]["compressed_squad"]
    plain = run_lm_eval("hf", f"pretrained={tiny_model_dir}", ("compressed_squad",),
                        tmp_path / "hf", limit=2)
    squad = plain["results"]["compressed_squad"]
    assert "squad_f1,none" in squad
    assert not [name for name in squad if name.startswith(("answer_seconds", "compressed_"))]
