"""``kvpress`` through lm-eval on the tiny real Llama and the bundled demo data.

The no-press baseline answers every prompt as ``compressor=none`` does (in-process runs), and a
stock ``lm_eval`` command logs the answers this process's compressor gives for the same prompts
(contexts cut to the model window as the harness cuts them), with the press, the library and
the adapter recorded.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.compressors import build_compressor, capabilities_of
from bench.generation import GenerationSettings
from bench.harness.frontend import CompressionFrontEnd
from tests.bench.compressors.kvpress.conftest import load_stories
from tests.bench.compressors.soft.reference_fixtures import require_stories_dir
from tests.conftest import read_results, read_samples, run_stock_lm_eval

TASK = "compressed_squad"
PRESS_ARGS = "compressor=kvpress,press=snapkv,rate=0.5,window_size=8"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stories_data(tmp_path_factory: pytest.TempPathFactory, kvpress_version: str) -> Path:
    from bench.demo import prepare_demo_data

    data = tmp_path_factory.mktemp("kvpress-data")
    prepare_demo_data(require_stories_dir(), data)
    return data


def _answers(out: Path, model_args: str, data: Path, monkeypatch: pytest.MonkeyPatch
             ) -> list[Any]:
    from bench.lmeval.run import run_lm_eval

    monkeypatch.setenv("COMPRESSBENCH_DATA", str(data))
    run_lm_eval("compressed", f"pretrained={require_stories_dir()},{model_args}", (TASK,), out,
                device="cpu")
    return [sample["resps"] for sample in read_samples(out, TASK)]


def test_no_press_answers_as_compressor_none(stories_data: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    none = _answers(tmp_path / "none", "compressor=none", stories_data, monkeypatch)
    full = _answers(tmp_path / "full", "compressor=kvpress,press=none", stories_data,
                    monkeypatch)
    pressed = _answers(tmp_path / "pressed", PRESS_ARGS, stories_data, monkeypatch)
    assert len(none) > 1 and full == none
    assert pressed != none


def test_answers_through_stock_lm_eval(stories_data: Path, tmp_path: Path) -> None:
    stories = require_stories_dir()
    run_stock_lm_eval(f"pretrained={stories},{PRESS_ARGS}", stories_data, tmp_path / "run")

    results = read_results(tmp_path / "run")
    record = results["config"]["compressbench"]["compressor"]
    assert record["family"] == "KV-eviction" and record["budget_options"] == ["rate"]
    assert record["settings"]["press"] == "SnapKVPress"
    assert record["settings"]["kvpress_version"] and record["settings"]["kvpress_adapter"]
    assert results["results"][TASK]["requested_rate,none"] == 0.5
    samples = read_samples(tmp_path / "run", TASK)

    target = load_stories("sdpa")
    compressor: Any = build_compressor("kvpress", target, {
        "press": "snapkv", "rate": 0.5, "window_size": 8})
    generation = results["configs"][TASK]["generation_kwargs"]
    decoding = GenerationSettings(int(generation["max_gen_toks"]), tuple(generation["until"]))
    frontend = CompressionFrontEnd(compressor, capabilities_of("kvpress"), target, None)
    requests = [SimpleNamespace(text=sample["arguments"]["gen_args_0"]["arg_0"],
                                doc=sample["doc"], task_name=TASK, doc_id=sample["doc_id"])
                for sample in samples]
    prepared = frontend.prepare(requests, results["max_length"] - decoding.max_new_tokens)
    answers = compressor.generate([(p.compressed, p.decoder_prompt()) for p in prepared],
                                  decoding)
    assert [sample["resps"] for sample in samples] == [[[a.text]] for a in answers]
    rates = [sample["compression_ratio"] for sample in samples]
    assert rates == [p.compressed.stats.achieved_rate for p in prepared]
