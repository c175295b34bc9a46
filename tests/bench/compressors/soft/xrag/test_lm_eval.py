"""``xrag`` end to end through the stock ``lm_eval`` command, on the reference's fine-tuned
checkpoint with its retriever.

The demo data is prepared with the checkpoint's tokenizer; the answers lm-eval logs must be
the ones the compressor gives in this process for the same prompts (contexts cut to the
model window as the harness cuts them).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.compressors import build_compressor, capabilities_of
from bench.generation import GenerationSettings
from bench.harness.frontend import CompressionFrontEnd
from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture
from tests.bench.compressors.soft.xrag.fixture_models import METHOD, load_target, retriever_dir
from tests.conftest import read_results, read_samples, run_stock_lm_eval

TASK = "compressed_squad"
LIMIT = 2


@pytest.mark.slow
def test_xrag_answers_through_stock_lm_eval(tmp_path: Path) -> None:
    from bench.demo import prepare_demo_data

    fixture = load_fixture(METHOD)
    case = fixture.case(case_ids(METHOD, "qa")[0])
    checkpoint = fixture.path / case["checkpoint"]
    retriever = retriever_dir(case)
    data = tmp_path / "data"
    prepare_demo_data(checkpoint, data)
    run_stock_lm_eval(f"pretrained={checkpoint},compressor={METHOD},retriever={retriever},"
                      "compression_cache=off", data, tmp_path / "run", TASK, LIMIT)

    results = read_results(tmp_path / "run")
    assert results["results"][TASK]["compressed_tokens,none"] == 1
    settings = results["config"]["compressbench"]["compressor"]["settings"]
    assert settings["retriever"] == str(retriever)
    assert settings["projector_checkpoint"] == str(checkpoint)
    samples = read_samples(tmp_path / "run", TASK)
    assert len(samples) == LIMIT

    target = load_target(checkpoint)
    compressor: Any = build_compressor(METHOD, target, {"retriever": str(retriever)})
    assert compressor.settings() == settings
    generation = results["configs"][TASK]["generation_kwargs"]
    decoding = GenerationSettings(int(generation["max_gen_toks"]), tuple(generation["until"]))
    frontend = CompressionFrontEnd(compressor, capabilities_of(METHOD), target, None)
    requests = [SimpleNamespace(text=sample["arguments"]["gen_args_0"]["arg_0"],
                                doc=sample["doc"], task_name=TASK, doc_id=sample["doc_id"])
                for sample in samples]
    prepared = frontend.prepare(requests, results["max_length"] - decoding.max_new_tokens)
    assert frontend.contexts_cut == results["config"]["compressbench"]["contexts_cut_to_window"]
    answers = compressor.generate([(p.compressed, p.decoder_prompt()) for p in prepared],
                                  decoding)
    assert [sample["resps"] for sample in samples] == [[[a.text]] for a in answers]
