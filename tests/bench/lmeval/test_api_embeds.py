"""Soft compressors through ``compressed_completions`` as prompt embeddings: the request
protocol against a local server that speaks vLLM's, and every refusal's one line."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.compressors import CompressionRequest
from bench.compressors.soft._prompts import qa_prompt_ids
from bench.lmeval.api_embeds import PromptEmbedsRefused
from bench.lmeval.api_models import (
    CompressedChatCompletionsLM,
    CompressedCompletionsLM,
    PromptEmbedsUnsupported,
    SoftCompressorRefused,
)
from bench.substrate.errors import InputError
from tests.bench.lmeval.openai_server import COMPLETIONS, TinyModelServer, serving

TASK = "compressed_squad"
GEN_KWARGS = {"until": ["\n"], "max_gen_toks": 12}
DOCS = (
    {"context": "Tom and his dog went to the lake. They saw a fish jump out of the water.",
     "question": "Where did Tom go?", "instruction": "Answer the question.", "kind": "qa"},
    {"context": "Mia had a small box. Inside the box there was a shiny blue stone.",
     "question": "What was in the box?", "instruction": "Answer the question.", "kind": "qa"},
    {"context": "The sun was hot, so the cat slept under the tree all day long.",
     "question": "Where did the cat sleep?", "instruction": "Answer the question.",
     "kind": "qa"},
)
ICAE = {"compressor": "icae", "variant": "500x-baseline", "num_mem": "2"}
SERVED = ("autocompressor", "cram", "icae", "xrag")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Tiny models run on one torch thread (see tests/conftest.py)."""


def requests_for(docs: tuple[dict[str, Any], ...] = DOCS,
                 gen_kwargs: dict[str, Any] | None = None) -> list[Any]:
    """lm-eval ``generate_until`` instances of the docs, prompted as the QA tasks are."""
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", doc,
                     (f"{doc['instruction']} Context: {doc['context']} Question: "
                      f"{doc['question']} Answer:", dict(gen_kwargs or GEN_KWARGS)),
                     idx=0, metadata=(TASK, index, 1))
            for index, doc in enumerate(docs)]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> TinyModelServer:
    return TinyModelServer(tiny_model_dir)


@pytest.fixture(scope="module")
def base_url(server: TinyModelServer) -> Iterator[str]:
    with serving(server) as url:
        yield url


def served_lm(url: str, pretrained: Path, **options: str) -> CompressedCompletionsLM:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "no checkpoint given", UserWarning)
        return CompressedCompletionsLM(model="tiny", base_url=f"{url}{COMPLETIONS}",
                                       pretrained=str(pretrained), compression_cache="off",
                                       device="cpu", **{**ICAE, **options})


@pytest.fixture(scope="module")
def icae_run(tiny_model_dir: Path, server: TinyModelServer, base_url: str
             ) -> tuple[CompressedCompletionsLM, list[str], list[Any]]:
    """Three QA requests answered by ICAE (500x-baseline) through the server, two a call."""
    lm = served_lm(base_url, tiny_model_dir, batch_size="2")
    server.reset()
    answers = lm.generate_until(requests_for())
    return lm, answers, list(server.log.answered)


def decoded(text: str) -> Any:
    import torch

    return torch.load(io.BytesIO(base64.b64decode(text)), weights_only=True)


def test_each_prompt_is_one_tensor_of_the_models_hidden_size_and_dtype(icae_run):
    lm, answers, calls = icae_run
    model = lm.frontend.target.model
    assert [len(call.body["prompt_embeds"]) for call in calls] == [2, 1]
    for call in calls:
        body = call.body
        assert "prompt" not in body and "echo" not in body and "logprobs" not in body
        assert body["max_tokens"] == GEN_KWARGS["max_gen_toks"] and body["temperature"] == 0
        assert body["stop"] == GEN_KWARGS["until"]
        assert body["stop_token_ids"] == lm.compressor.stop_token_ids()
        for text in body["prompt_embeds"]:
            tensor = decoded(text)
            assert tensor.dim() == 2 and tensor.shape[1] == model.config.hidden_size
            assert tensor.dtype == model.get_input_embeddings().weight.dtype
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    assert len(answers) == len(DOCS) and all(isinstance(a, str) for a in answers)


def test_the_slots_then_the_question_embedded_with_the_targets_table(icae_run):
    import torch

    lm, _, calls = icae_run
    tokenizer, model = lm.frontend.target.tokenizer, lm.frontend.target.model
    sent = [decoded(text) for call in calls for text in call.body["prompt_embeds"]]
    for doc, tensor in zip(DOCS, sent, strict=True):
        slots = lm.compressor.compress([CompressionRequest(doc["context"])])[0].embeddings
        ids = qa_prompt_ids(tokenizer, doc["question"])  # the method's template, no chat one
        with torch.no_grad():
            table = model.get_input_embeddings()(torch.tensor(ids))
        assert tensor.shape[0] == slots.shape[0] + len(ids)
        assert torch.equal(tensor[:slots.shape[0]], slots)
        assert torch.equal(tensor[slots.shape[0]:], table)


def test_served_answers_and_records_are_those_of_the_in_process_decoder(icae_run):
    from bench.harness.answering import settings_from_gen_kwargs

    lm, answers, calls = icae_run
    views = [lm_view for lm_view in _views(requests_for())]
    prepared = lm.frontend.prepare(views)
    settings = settings_from_gen_kwargs(GEN_KWARGS, 256)
    local = lm.compressor.generate([(p.compressed, p.decoder_prompt()) for p in prepared],
                                   settings)
    assert answers == [output.text for output in local]
    records = lm.account.per_task[TASK]
    rows = [decoded(text).shape[0] for call in calls for text in call.body["prompt_embeds"]]
    shares = [sum(rows[:2]) / 2] * 2 + [rows[2]]
    assert [r.served_prompt_tokens for r in records] == shares
    assert [r.compressed_tokens for r in records] == [2] * len(DOCS)
    assert all(r.compressed_bits == 2 * lm.frontend.target.model.config.hidden_size * 32
               for r in records)
    served = lm.get_model_info()["compressbench"]["served"]
    assert served["input"] == "prompt_embeds" and served["calls"] == 2
    assert served["prompt_embeds_bytes"] == sum(len(text) for call in calls
                                                for text in call.body["prompt_embeds"])


def _views(requests: list[Any]) -> list[Any]:
    from bench.lmeval.adapter import read_request
    from bench.lmeval.api_prompts import PromptView

    return [PromptView.of(read_request(request), False) for request in requests]


def test_loglikelihood_requests_are_refused_in_one_line(icae_run):
    lm = icae_run[0]
    with pytest.raises(PromptEmbedsUnsupported) as refused:
        lm.loglikelihood(requests_for())
    message = str(refused.value)
    assert "\n" not in message and "prompt logprobs" in message and "'icae'" in message


def test_a_server_of_another_hidden_size_ends_the_run_in_one_line(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config.hidden_size, config.head_dim = 32, 8
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "narrow")  # type: ignore[no-untyped-call]
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(tmp_path / "narrow")
    narrow = TinyModelServer(tmp_path / "narrow")
    with serving(narrow) as url:
        lm = served_lm(url, tiny_model_dir, max_retries="3")
        with pytest.raises(PromptEmbedsRefused) as refused:
            lm.generate_until(requests_for())
    message = str(refused.value)
    model: Any = lm.frontend.target.model
    hidden = model.config.hidden_size
    assert "\n" not in message and "HTTP 400" in message and f"hidden size {hidden}" in message
    assert "pretrained= must be the served model" in message
    assert narrow.log.arrivals == 1  # not retried


def test_a_server_without_prompt_embeds_says_how_to_start_it(tiny_model_dir):
    plain = TinyModelServer(tiny_model_dir, enable_prompt_embeds=False)
    with serving(plain) as url:
        lm = served_lm(url, tiny_model_dir)
        with pytest.raises(PromptEmbedsRefused, match="--enable-prompt-embeds") as refused:
            lm.generate_until(requests_for()[:1])
    assert "\n" not in str(refused.value)


def test_the_server_refuses_echo_and_prompt_logprobs_with_embeddings(icae_run, base_url):
    body = dict(icae_run[2][0].body)
    for extra, problem in (({"echo": True, "logprobs": 1}, "Echo is unsupported"),
                           ({"prompt_logprobs": 1}, "prompt_logprobs")):
        request = urllib.request.Request(f"{base_url}{COMPLETIONS}",
                                         json.dumps({**body, **extra}).encode(),
                                         {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400 and problem in refused.value.read().decode()


@pytest.mark.parametrize("model,compressor,hands_over", [
    (CompressedCompletionsLM, "500x", "a key/value cache (soft-KV)"),
    (CompressedCompletionsLM, "gist", "a key/value cache (soft-KV)"),
    (CompressedCompletionsLM, "kvpress", "a pruned key/value cache (KV-eviction)"),
    (CompressedCompletionsLM, "pisco", "a decoder other than the target model"),
    (CompressedChatCompletionsLM, "icae", "a chat API does not take a laid-out prompt"),
])
def test_soft_compressors_that_cannot_be_served_are_refused_naming_those_that_can(
        model, compressor, hands_over, tiny_model_dir):
    with pytest.raises(SoftCompressorRefused) as refused:
        model(model="tiny", base_url="http://127.0.0.1:9/v1", pretrained=str(tiny_model_dir),
              compressor=compressor)
    message = str(refused.value)
    assert "\n" not in message and f"'{compressor}'" in message and hands_over in message
    listed = message.split("prompt embeddings")[0 if model is CompressedChatCompletionsLM
                                                 else 1]
    assert all(name in listed for name in SERVED) and "pisco" not in listed


def test_an_embeddings_compressor_needs_the_served_model_as_pretrained(base_url):
    with pytest.raises(ValueError, match=r"pretrained= .* is required") as refused:
        CompressedCompletionsLM(model="tiny", base_url=f"{base_url}{COMPLETIONS}",
                                compressor="icae")
    assert "\n" not in str(refused.value)


def test_embeddings_cross_the_wire_exactly_in_their_dtype():
    import torch

    from bench.lmeval.api_embeds import encode_prompt_embeds

    rows = torch.randn(40, 64, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        view = rows.to(dtype)[3:5]  # a view of a larger tensor: only its own values are sent
        received = decoded(encode_prompt_embeds(view))
        assert received.dtype == dtype and torch.equal(received, view)
        assert received.untyped_storage().nbytes() == view.numel() * view.element_size()
    with pytest.raises(InputError, match="dtype float64 cannot be served") as refused:
        encode_prompt_embeds(rows.double())
    assert "\n" not in str(refused.value)


def test_error_bodies_of_each_server_generation_give_their_message():
    from bench.lmeval.api_embeds import error_message

    assert error_message(json.dumps({"error": {"message": "hidden size 32", "code": 400}})) \
        == "hidden size 32"
    assert error_message(json.dumps({"object": "error", "message": "too\nlong"})) == "too long"
    assert error_message(json.dumps({"detail": [{"msg": "field required"}]})) == \
        "[{'msg': 'field required'}]"
    assert error_message("Bad Request") == "Bad Request"
