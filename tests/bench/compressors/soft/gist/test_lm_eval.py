"""``gist`` end to end through the stock ``lm_eval`` command, on the reference gist checkpoint.

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
from tests.bench.compressors.soft.gist.test_parity_gist import load_gist_target
from tests.bench.compressors.soft.reference_fixtures import load_fixture
from tests.conftest import read_results, read_samples, run_stock_lm_eval

TASK = "compressed_squad"
LIMIT = 2


@pytest.mark.slow
def test_gist_answers_through_stock_lm_eval(tmp_path: Path) -> None:
    from bench.demo import prepare_demo_data

    target = load_gist_target(load_fixture("gist"))
    checkpoint = Path(target.name)
    data = tmp_path / "data"
    prepare_demo_data(checkpoint, data)
    run_stock_lm_eval(f"pretrained={checkpoint},compressor=gist,compression_cache=off", data,
                      tmp_path / "run")

    results = read_results(tmp_path / "run")
    assert results["results"][TASK]["compressed_tokens,none"] == 1
    settings = results["config"]["compressbench"]["compressor"]["settings"]
    assert settings["num_gist_tokens"] == 1
    samples = read_samples(tmp_path / "run", TASK)
    assert len(samples) == LIMIT

    compressor: Any = build_compressor("gist", target, {})
    generation = results["configs"][TASK]["generation_kwargs"]
    decoding = GenerationSettings(int(generation["max_gen_toks"]), tuple(generation["until"]))
    frontend = CompressionFrontEnd(compressor, capabilities_of(compressor.name), target, None)
    requests = [SimpleNamespace(text=sample["arguments"]["gen_args_0"]["arg_0"],
                                doc=sample["doc"], task_name=TASK, doc_id=sample["doc_id"])
                for sample in samples]
    prepared = frontend.prepare(requests, results["max_length"] - decoding.max_new_tokens)
    assert frontend.contexts_cut == results["config"]["compressbench"]["contexts_cut_to_window"]
    answers = compressor.generate([(p.compressed, p.decoder_prompt()) for p in prepared],
                                  decoding)
    assert [sample["resps"] for sample in samples] == [[[a.text]] for a in answers]
