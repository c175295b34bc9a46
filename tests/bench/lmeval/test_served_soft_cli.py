"""The invariant of serving soft compressors: through the stock ``lm_eval`` command,
``compressed_completions`` answering from prompt embeddings (a local server speaking vLLM's
protocol, :mod:`tests.bench.lmeval.openai_server`) gives exactly the generations that
``--model compressed`` gives in process, with the same compressions recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.harness import sample_log
from tests.bench.lmeval.openai_server import COMPLETIONS, TinyModelServer, serving
from tests.conftest import read_results, read_samples

TASK = "compressed_squad"
LIMIT = 4
BATCH = 2
SAME_RECORD = ("original_tokens", "compressed_tokens", "compression_ratio", "compressed_bits",
               "encoded_context_tokens")


@dataclass(frozen=True)
class Served:
    """A method's served model folder, the data prepared in its tokens, its options."""

    model: Path
    data: Path
    options: str


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Tiny models run on one torch thread here, as in the command (OMP_NUM_THREADS=1)."""


def _icae_checkpoint(tiny: Path, out: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors.soft.encoder.checkpoint import save_checkpoint
    from bench.compressors.soft.encoder.encoder import LoraSettings
    from bench.compressors.soft.icae.compressor import EmbeddingSoftModel

    model = EmbeddingSoftModel(AutoModelForCausalLM.from_pretrained(str(tiny)),
                               AutoTokenizer.from_pretrained(str(tiny)), 3, LoraSettings(r=4),
                               seed=9)
    return save_checkpoint(model, out, str(tiny))


def _autocompressor(tiny: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors.soft.autocompressor.training import save_autocompressor

    model = AutoModelForCausalLM.from_pretrained(str(tiny))
    summary = torch.randn(2, model.config.hidden_size,
                          generator=torch.Generator().manual_seed(0)) * 0.02
    return save_autocompressor(model, summary, AutoTokenizer.from_pretrained(str(tiny)), out)


def _xrag(tmp: Path) -> Served:
    from bench.demo import prepare_demo_data
    from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture
    from tests.bench.compressors.soft.xrag.fixture_models import retriever_dir

    fixture = load_fixture("xrag")
    case = fixture.case(case_ids("xrag", "qa")[0])
    checkpoint = fixture.path / case["checkpoint"]
    prepare_demo_data(checkpoint, tmp / "data")
    return Served(checkpoint, tmp / "data", f"compressor=xrag,retriever={retriever_dir(case)}")


SETUPS: dict[str, Callable[[Path, Path, Path], Served]] = {
    "icae-500x-baseline": lambda tiny, data, tmp: Served(
        tiny, data, "compressor=icae,variant=500x-baseline,checkpoint="
        f"{_icae_checkpoint(tiny, tmp / 'icae')}"),
    "icae-v2": lambda tiny, data, tmp: Served(
        tiny, data, "compressor=icae,variant=v2,num_mem=2,lora_r=4,max_length=200"),
    "autocompressor": lambda tiny, data, tmp: Served(
        _autocompressor(tiny, tmp / "autocompressor"), data, "compressor=autocompressor"),
    "cram": lambda tiny, data, tmp: Served(tiny, data, "compressor=cram,num_mem=2,steps=4"),
    "xrag": lambda tiny, data, tmp: _xrag(tmp),
}


def in_process(served: Served, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``--model compressed`` on the same model, options and data, in this process."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from bench.lmeval.plugin import register

    register()
    sample_log.clear()
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(served.data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    results = simple_evaluate(
        model="compressed", model_args=f"pretrained={served.model},{served.options},"
        "compression_cache=off", tasks=[TASK], task_manager=TaskManager(include_defaults=False),
        limit=LIMIT, log_samples=True, device="cpu", batch_size=BATCH)
    assert results is not None
    return dict(results)


def through_the_cli(served: Served, url: str, out: Path) -> None:
    """``lm_eval --model compressed_completions`` (the installed command) against ``url``."""
    program = Path(sys.executable).with_name("lm_eval")
    if not program.is_file():
        pytest.skip(f"the lm_eval command is not installed next to {sys.executable}")
    args = (f"model=tiny,base_url={url}{COMPLETIONS},pretrained={served.model},"
            f"{served.options},compression_cache={out / 'cache'}")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(served.data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [str(program), "--model", "compressed_completions", "--model_args", args,
               "--tasks", TASK, "--limit", str(LIMIT), "--batch_size", str(BATCH),
               "--device", "cpu", "--log_samples", "--output_path", str(out / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture()
def server_for() -> Iterator[Callable[[Path], tuple[TinyModelServer, Any]]]:
    started: list[Any] = []

    def start(model: Path) -> tuple[TinyModelServer, Any]:
        server = TinyModelServer(model)
        context = serving(server)
        started.append(context)
        return server, context.__enter__()

    yield start
    for context in started:
        context.__exit__(None, None, None)


@pytest.mark.slow  # one lm-eval command per method (~20 s each)
@pytest.mark.parametrize("method", list(SETUPS))
def test_served_generations_are_the_in_process_ones_through_the_stock_cli(
        method: str, tmp_path: Path, tiny_model_dir: Path, demo_data_dir: Path,
        monkeypatch: pytest.MonkeyPatch, server_for: Any) -> None:
    served = SETUPS[method](tiny_model_dir, demo_data_dir, tmp_path)
    reference = in_process(served, monkeypatch)
    local = {s["doc_id"]: s for s in reference["samples"][TASK]}
    server, url = server_for(served.model)
    through_the_cli(served, url, tmp_path)

    samples = {s["doc_id"]: s for s in read_samples(tmp_path / "run", TASK)}
    assert sorted(samples) == sorted(local) and len(samples) == LIMIT
    for doc_id, sample in samples.items():
        assert sample["resps"] == local[doc_id]["resps"], doc_id
        for field in SAME_RECORD:
            assert sample.get(field) == local[doc_id].get(field), field
    assert sum(s["served_prompt_tokens"] for s in samples.values()) == \
        server.log.prompt_tokens
    assert all(len(call.prompt_embeds) <= BATCH and not call.prompt_ids
               for call in server.log.answered)
    info = read_results(tmp_path / "run")["config"]["compressbench"]
    assert info["served"]["input"] == "prompt_embeds"
    assert info["served"]["calls"] == len(server.log.answered)
    expected = reference["config"]["compressbench"]
    for key in ("compressions", "contexts_cut_to_window"):
        assert info[key] == expected[key], key
    if "max_length=" in served.options:  # a window that cuts contexts, the same ones
        assert info["contexts_cut_to_window"] > 0
    assert json.loads(json.dumps(expected["compressor"])) == info["compressor"]
