"""``compressed_completions`` / ``compressed_chat_completions`` against a local test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness import sample_log
from bench.lmeval.adapter import chat_prompt
from bench.lmeval.api_models import SoftCompressorRefused
from tests.bench.lmeval.openai_server import CHAT, COMPLETIONS, TinyModelServer, serving
from tests.conftest import read_results, read_samples

LIMIT = 4
TASK = "compressed_squad"
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def offline_data(demo_data_dir: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMPRESSBENCH_DATA", str(demo_data_dir))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield demo_data_dir


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> TinyModelServer:
    import torch

    torch.set_num_threads(1)
    return TinyModelServer(tiny_model_dir, chat_template=CHAT_TEMPLATE, retry_after=1,
                           hang_seconds=4.0)


@pytest.fixture(scope="module")
def base_url(server: TinyModelServer) -> Iterator[str]:
    with serving(server) as url:
        yield url


def evaluate(model: str, model_args: str, chat_template: bool = False,
             limit: int = LIMIT) -> dict[str, Any]:
    """One in-process lm-eval run of the SQuAD task (project tasks only)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from bench.lmeval.plugin import register

    register()
    sample_log.clear()
    results = simple_evaluate(model=model, model_args=model_args, tasks=[TASK],
                              task_manager=TaskManager(include_defaults=False), limit=limit,
                              log_samples=True, apply_chat_template=chat_template,
                              device="cpu")
    assert results is not None
    return dict(results)


def samples_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(results["samples"][TASK], key=lambda s: s["doc_id"])


def prompt_text(prompt: Any) -> str:
    """The prompt string, or the user message of a chat prompt."""
    if isinstance(prompt, str):
        return prompt
    messages = json.loads(prompt.prompt if hasattr(prompt, "prompt") else prompt[0])
    return str(messages[-1]["content"])


def served(server: TinyModelServer, model: str, args: str, chat_template: bool = False
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Bodies the server answered during one run, and the run's results."""
    server.reset()
    run = evaluate(model, args, chat_template)
    return [a.body for a in server.log.answered], run


@pytest.fixture(scope="module")
def hf_run(offline_data: Path, tiny_model_dir: Path) -> dict[str, Any]:
    return evaluate("hf", f"pretrained={tiny_model_dir}")


@pytest.fixture(scope="module")
def completions_pair(offline_data: Path, tiny_model_dir: Path, server: TinyModelServer,
                     base_url: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    common = f"model=tiny,base_url={base_url}{COMPLETIONS},tokenizer={tiny_model_dir}"
    stock = served(server, "local-completions", f"{common},tokenizer_backend=huggingface")
    ours = served(server, "compressed_completions",
                  f"{common},compressor=none,compression_cache=off")
    return {"stock": stock, "ours": ours}


def test_none_through_completions_sends_the_stock_requests(completions_pair, hf_run):
    (stock_bodies, stock), (our_bodies, ours) = completions_pair["stock"], completions_pair["ours"]
    assert len(our_bodies) == LIMIT
    assert our_bodies == stock_bodies
    assert [s["resps"] for s in samples_of(ours)] == [s["resps"] for s in samples_of(stock)]
    hf_prompts = [s["arguments"][0][0] for s in samples_of(hf_run)]
    assert [s["arguments"][0][0] for s in samples_of(ours)] == hf_prompts
    assert ours["results"][TASK]["compression_ratio,none"] == 1.0


def test_none_through_chat_sends_the_stock_chat_requests(offline_data, tiny_model_dir, server,
                                                         base_url, hf_run):
    common = f"model=tiny,base_url={base_url}{CHAT}"
    stock_bodies, stock = served(server, "local-chat-completions", common,
                                 chat_template=True)
    ours_args = f"{common},tokenizer={tiny_model_dir},compressor=none,compression_cache=off"
    plain_bodies, plain = served(server, "compressed_chat_completions", ours_args)
    templated_bodies, _ = served(server, "compressed_chat_completions", ours_args,
                                 chat_template=True)
    assert len(stock_bodies) == LIMIT
    assert plain_bodies == stock_bodies
    assert templated_bodies == stock_bodies
    assert [s["resps"] for s in samples_of(plain)] == [s["resps"] for s in samples_of(stock)]
    hf_prompts = [s["arguments"][0][0] for s in samples_of(hf_run)]
    assert [body["messages"] for body in stock_bodies] == \
        [[{"role": "user", "content": p}] for p in hf_prompts]


def test_context_is_cut_to_the_window_as_the_compressed_model_cuts_it(
        offline_data, tiny_model_dir, server, base_url):
    hf_window = 200  # the API models keep one position of max_length for the answer
    local = evaluate("compressed", f"pretrained={tiny_model_dir},compressor=none,"
                     f"compression_cache=off,max_length={hf_window}", limit=2)
    server.reset()
    ours = evaluate("compressed_completions", f"model=tiny,base_url={base_url}{COMPLETIONS},"
                    f"tokenizer={tiny_model_dir},compressor=none,compression_cache=off,"
                    f"max_length={hf_window + 1}", limit=2)
    expected = [s["arguments"][0][0] for s in samples_of(local)]
    assert [s["arguments"][0][0] for s in samples_of(ours)] == expected
    info = ours["config"]["compressbench"]
    assert info["contexts_cut_to_window"] == local["config"]["compressbench"][
        "contexts_cut_to_window"] > 0
    for sample in samples_of(ours):
        doc, prompt = sample["doc"], sample["arguments"][0][0]
        assert prompt.startswith(doc["instruction"] + " Context: ")
        assert prompt.endswith(f" Question: {doc['question']} Answer:")
        assert doc["context"] not in prompt
    max_gen = samples_of(ours)[0]["arguments"][0][1]["max_gen_toks"]
    assert all(len(ids) + max_gen <= hf_window for a in server.log.answered
               for ids in a.prompt_ids)


def _lm_eval_cli(args: list[str], data: Path, out: Path, env: dict[str, str] | None = None
                 ) -> None:
    program = Path(sys.executable).with_name("lm_eval")
    environment = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    command = [str(program), "--tasks", TASK, *args, "--limit", str(LIMIT), "--log_samples",
               "--output_path", str(out)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def _sample_prompt(sample: dict[str, Any]) -> Any:
    return sample["arguments"]["gen_args_0"]["arg_0"]


@pytest.mark.slow  # one lm-eval start-up each (~15 s, more on a loaded machine)
@pytest.mark.parametrize("model,endpoint,compressor", [
    ("compressed_completions", COMPLETIONS, "compressor=truncate,rate=0.5"),
    ("compressed_chat_completions", CHAT, "compressor=selective_context,rate=0.5,"
                                          "compressor_model={tiny}"),
])
@pytest.mark.slow
def test_hard_compressor_end_to_end_with_the_lm_eval_cli(
        model, endpoint, compressor, tmp_path, tiny_model_dir, demo_data_dir, server,
        base_url):
    from transformers import AutoTokenizer

    from leaderboard import read_runs
    from leaderboard._runs import merge_runs
    from leaderboard._tables import efficiency_table

    server.reset()
    options = compressor.format(tiny=tiny_model_dir)
    args = (f"model=tiny,base_url={base_url}{endpoint},tokenizer={tiny_model_dir},{options},"
            f"compression_cache={tmp_path / 'cache'}")
    _lm_eval_cli(["--model", model, "--model_args", args], demo_data_dir, tmp_path / "out")
    results = read_results(tmp_path / "out")
    samples = sorted(read_samples(tmp_path / "out", TASK), key=lambda s: s["doc_id"])
    info = results["config"]["compressbench"]

    assert len(samples) == LIMIT == len(server.log.answered) == server.log.arrivals
    assert info["compressions"] == len({s["doc"]["context"] for s in samples})
    assert info["served"]["calls"] == LIMIT
    for sample in samples:
        assert sample["compression_ratio"] == sample["compressed_tokens"] / \
            sample["original_tokens"] < 1.0
    assert results["results"][TASK]["compression_ratio,none"] == pytest.approx(
        sum(s["compression_ratio"] for s in samples) / LIMIT)

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    by_prompt = {}
    for answered in server.log.answered:
        if endpoint == CHAT:
            key = answered.body["messages"][-1]["content"]
        else:
            key = tuple(answered.body["prompt"][0])
        by_prompt[key] = answered
    for sample in samples:
        prompt = _sample_prompt(sample)
        key = (prompt_text(prompt) if endpoint == CHAT else
               tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        answered = by_prompt[key]
        assert sample["served_prompt_tokens"] == len(answered.prompt_ids[0])
        assert sample["served_completion_tokens"] == answered.completion_tokens[0]
    assert info["served"]["prompt_tokens"] == server.log.prompt_tokens

    table = efficiency_table(merge_runs(read_runs([tmp_path / "out"])))
    assert table is not None
    column = table.columns.index("served prompt tokens")
    assert table.rows[0][column].value == pytest.approx(server.log.prompt_tokens / LIMIT)


@pytest.mark.slow
@pytest.mark.parametrize("concurrent", [1, 2])
def test_server_faults_are_retried_without_losing_or_repeating_a_sample(
        concurrent, completions_pair, tiny_model_dir, server, base_url):
    faults = {1: "429", 3: "500", 5: "timeout"}
    delay = 0.25
    server.reset(faults, delay_seconds=delay)
    timeout = int(server.hang_seconds / 2)
    started = time.perf_counter()
    run = evaluate("compressed_completions",
                   f"model=tiny,base_url={base_url}{COMPLETIONS},tokenizer={tiny_model_dir},"
                   f"compressor=none,compression_cache=off,num_concurrent={concurrent},"
                   f"timeout={timeout},max_retries=3")
    elapsed = time.perf_counter() - started
    samples = samples_of(run)
    reference = samples_of(completions_pair["ours"][1])
    # Latency covers the server's work on the answered attempt, within the run's duration.
    assert all(delay <= s["answer_seconds"] < elapsed for s in samples)
    assert [s["doc_id"] for s in samples] == [s["doc_id"] for s in reference]
    assert [s["resps"] for s in samples] == [s["resps"] for s in reference]
    assert sorted(server.log.faults_served) == sorted(faults.values())
    bodies = [json.dumps(a.body, sort_keys=True) for a in server.log.answered]
    assert len(bodies) == LIMIT and max(Counter(bodies).values()) == 1
    totals = run["config"]["compressbench"]["served"]
    assert totals["failed_attempts"] == len(faults)
    assert totals["calls"] == LIMIT
    assert totals["retry_after_seconds"] == server.retry_after


def test_a_batched_call_gives_each_answer_its_share_of_the_usage(
        completions_pair, tiny_model_dir, server, base_url):
    server.reset()
    run = evaluate("compressed_completions",
                   f"model=tiny,base_url={base_url}{COMPLETIONS},tokenizer={tiny_model_dir},"
                   "compressor=none,compression_cache=off,batch_size=2")
    samples = samples_of(run)
    calls = server.log.answered
    assert [len(call.prompt_ids) for call in calls] == [2] * (LIMIT // 2)
    shares = sorted(sum(len(ids) for ids in call.prompt_ids) / 2 for call in calls
                    for _ in call.prompt_ids)
    assert sorted(s["served_prompt_tokens"] for s in samples) == shares
    assert sum(s["served_prompt_tokens"] for s in samples) == server.log.prompt_tokens
    reference = samples_of(completions_pair["ours"][1])
    assert [s["resps"] for s in samples] == [s["resps"] for s in reference]


def _tiny_tiktoken_file(folder: Path, texts: list[str]) -> Path:
    """A byte-level BPE in tiktoken's file format: every byte plus the most frequent pairs."""
    import base64

    ranks = {bytes([b]): b for b in range(256)}
    pairs = Counter(text[i:i + 2].encode() for text in texts for i in range(len(text) - 1))
    for pair, _ in pairs.most_common(200):
        if len(pair) == 2 and pair not in ranks:
            ranks[pair] = len(ranks)
    path = folder / "cl100k_base.tiktoken"
    path.write_text("".join(f"{base64.b64encode(token).decode()} {rank}\n"
                            for token, rank in ranks.items()), encoding="ascii")
    return path


def test_tiktoken_encoding_from_a_local_file_counts_rates(
        offline_data, tmp_path, tiny_model_dir, server, base_url, caplog):
    import pyarrow.parquet as pq

    from bench.lmeval.api_tokenizers import load_tiktoken_encoding, parse_tokenizer_spec

    table = pq.read_table(offline_data / "squad" / "test.parquet")
    path = _tiny_tiktoken_file(tmp_path, sorted(set(table.column("context").to_pylist())))
    encoding = load_tiktoken_encoding(parse_tokenizer_spec(f"tiktoken:{path}", "test"))
    assert any("differs from the published" in r.getMessage() for r in caplog.records)
    server.reset()
    run = evaluate("compressed_completions", f"model=tiny,base_url={base_url}{COMPLETIONS},"
                   f"tokenizer=tiktoken:{path},compressor=truncate,rate=0.5,"
                   "compression_cache=off")
    samples = samples_of(run)
    for sample in samples:
        doc, prompt = sample["doc"], sample["arguments"][0][0]
        kept = prompt.split(" Context: ", 1)[1].rsplit(f" Question: {doc['question']}", 1)[0]
        assert sample["original_tokens"] == len(encoding.encode_ordinary(doc["context"]))
        assert sample["compressed_tokens"] == len(encoding.encode_ordinary(kept))
        assert sample["compression_ratio"] < 1.0
    sent = sorted(tuple(a.body["prompt"][0]) for a in server.log.answered)
    assert sent == sorted(tuple(encoding.encode(s["arguments"][0][0])) for s in samples)
    assert run["config"]["compressbench"]["served"]["tokenizer"] == f"tiktoken:{path}"


def test_the_api_key_is_sent_and_written_nowhere(offline_data, tmp_path, tiny_model_dir, server,
                                                 base_url, monkeypatch):
    from bench.lmeval.run import run_lm_eval

    key = "sk-test-" + os.urandom(8).hex()
    monkeypatch.setenv("COMPRESSBENCH_TEST_KEY", key)
    server.reset()
    run_lm_eval("compressed_completions", f"model=tiny,base_url={base_url}{COMPLETIONS},"
                f"tokenizer={tiny_model_dir},api_key_env=COMPRESSBENCH_TEST_KEY,"
                "compressor=truncate,rate=0.5,compression_cache=off", [TASK], tmp_path, limit=1)
    assert [a.authorization for a in server.log.answered] == [f"Bearer {key}"]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(key in p.read_text(encoding="utf-8") for p in written)


def test_a_key_in_the_model_args_is_refused(offline_data, tiny_model_dir, base_url):
    with pytest.raises(ValueError, match="api_key would be recorded"):
        evaluate("compressed_completions", f"model=tiny,base_url={base_url}{COMPLETIONS},"
                 f"tokenizer={tiny_model_dir},api_key=sk-secret")


def test_a_named_key_variable_must_be_set(offline_data, tiny_model_dir, base_url, monkeypatch):
    monkeypatch.delenv("COMPRESSBENCH_UNSET_KEY", raising=False)
    with pytest.raises(ValueError, match="variable COMPRESSBENCH_UNSET_KEY, which is not set"):
        evaluate("compressed_chat_completions", f"model=tiny,base_url={base_url}{CHAT},"
                 f"tokenizer={tiny_model_dir},api_key_env=COMPRESSBENCH_UNSET_KEY")


def test_soft_compressors_are_refused_in_one_line(offline_data, tiny_model_dir, base_url):
    for model, endpoint, compressor in (("compressed_completions", COMPLETIONS, "500x"),
                                        ("compressed_chat_completions", CHAT, "icae")):
        with pytest.raises(SoftCompressorRefused) as refused:
            evaluate(model, f"model=tiny,base_url={base_url}{endpoint},"
                     f"tokenizer={tiny_model_dir},compressor={compressor}")
        message = str(refused.value)
        assert "\n" not in message and f"'{compressor}'" in message
        assert "prompt embeddings" in message


def test_the_tokenizer_is_required(offline_data, base_url):
    with pytest.raises(ValueError, match="tokenizer= is required"):
        evaluate("compressed_completions", f"model=tiny,base_url={base_url}{COMPLETIONS}")


def test_chat_messages_round_trip_as_lm_eval_writes_them():
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Zürich – \"quoted\"\nline"}]
    assert json.loads(chat_prompt(messages).prompt) == messages
    from lm_eval.models.api_models import TemplateAPI

    class _Plain:
        tokenizer_backend = None
        tokenized_requests = False

    assert TemplateAPI.apply_chat_template(_Plain(), messages) == chat_prompt(messages)
