"""``500x`` and ``icae,variant=500x-baseline`` end to end through the stock ``lm_eval`` command,
on the 500xCompressor repository's own checkpoint files (the reference fixtures).

The answers lm-eval logs must be those the compressor gives in this process for the same
prompts, and the results must record the checkpoint format and the hash of the file read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.compressors import build_compressor, capabilities_of
from bench.generation import GenerationSettings
from bench.harness.frontend import CompressionFrontEnd
from tests.bench.compressors.soft.encoder.repo_parity import METHODS, stories_target
from tests.bench.compressors.soft.reference_fixtures import load_fixture
from tests.conftest import read_results, read_samples, run_stock_lm_eval

TASK = "compressed_squad"
LIMIT = 2


def _qa_options(folder: str) -> tuple[dict[str, Any], Path]:
    """Options of the fixture's QA checkpoint: its padded length and truncation."""
    fixture = load_fixture(folder)
    case = next(case for case in fixture.cases if case["kind"] == "qa")
    method, variant = METHODS[folder]
    checkpoint = fixture.path / case["checkpoint"]
    options = {**variant, "checkpoint": str(checkpoint), "context_length": case["context_len"],
               "max_context_tokens": case["truncation_max_length"]}
    return {"compressor": method, **options}, checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("folder", sorted(METHODS))
def test_repo_checkpoint_answers_through_stock_lm_eval(folder: str, tmp_path: Path) -> None:
    from bench.demo import prepare_demo_data

    options, checkpoint = _qa_options(folder)
    target = stories_target()
    base = Path(target.name) if Path(target.name).is_dir() else None
    base = base or Path(str(target.model.config.name_or_path))  # type: ignore[union-attr]
    data = tmp_path / "data"
    prepare_demo_data(base, data)
    model_args = ",".join([f"pretrained={base}", *(f"{k}={v}" for k, v in options.items()),
                           "compression_cache=off"])
    run_stock_lm_eval(model_args, data, tmp_path / "run")

    results = read_results(tmp_path / "run")
    settings = results["config"]["compressbench"]["compressor"]["settings"]
    assert settings["checkpoint_format"] == "500x-repo"
    assert settings["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert settings["context_length"] == options["context_length"]
    samples = read_samples(tmp_path / "run", TASK)
    assert len(samples) == LIMIT

    name = options.pop("compressor")
    compressor: Any = build_compressor(name, target, options)
    assert results["results"][TASK]["compressed_tokens,none"] == compressor.model.num_mem
    generation = results["configs"][TASK]["generation_kwargs"]
    decoding = GenerationSettings(int(generation["max_gen_toks"]), tuple(generation["until"]))
    frontend = CompressionFrontEnd(compressor, capabilities_of(compressor.name), target, None)
    requests = [SimpleNamespace(text=sample["arguments"]["gen_args_0"]["arg_0"],
                                doc=sample["doc"], task_name=TASK, doc_id=sample["doc_id"])
                for sample in samples]
    prepared = frontend.prepare(requests, results["max_length"] - decoding.max_new_tokens)
    answers = compressor.generate([(p.compressed, p.decoder_prompt()) for p in prepared],
                                  decoding)
    assert [sample["resps"] for sample in samples] == [[[a.text]] for a in answers]
