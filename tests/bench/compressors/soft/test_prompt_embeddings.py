"""The soft compressors a server answers from prompt embeddings: the decoder input they give
is what their in-process decoder starts from, and the model as it is, decoding greedily from
those embeddings alone (as a server does), writes the in-process answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.compressors import CompressionRequest, PromptEmbeddingsDecoder, capabilities_of
from bench.compressors._api import TargetModel
from bench.compressors.soft.decode import prepare_batch
from bench.generation import DecoderPrompt, GenerationSettings

CONTEXT = "Tom and his dog went to the lake. They saw a fish jump out of the water."
QUESTION = "What did they see?"
PROMPTS = (DecoderPrompt("qa", "Answer. Context: ", f" Question: {QUESTION} Answer:",
                         question=QUESTION),
           DecoderPrompt("regeneration", "", " Repeated text:"))
OPTIONS: dict[str, dict[str, Any]] = {
    "icae": {"variant": "500x-baseline", "num_mem": 2},
    "icae-v2": {"num_mem": 2, "lora_r": 4},
    "autocompressor": {},
    "cram": {"num_mem": 2, "steps": 2},
}
SETTINGS = GenerationSettings(max_new_tokens=8)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Tiny models run on one torch thread (see tests/conftest.py)."""


def test_registrations_declare_which_methods_are_served_from_prompt_embeddings() -> None:
    served = {"icae", "autocompressor", "cram", "xrag"}
    for name in (*served, "500x", "gist", "pisco", "kvpress"):
        assert capabilities_of(name).prompt_embeds == (name in served), name


def greedy_from_embeddings(folder: Path, embeds: Any, stop_ids: list[int]) -> str:
    """What a server of ``folder`` answers from ``embeds``: a fresh copy of the model as it is,
    Hugging Face's greedy ``generate`` from ``inputs_embeds``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    with torch.no_grad():
        output = model.generate(inputs_embeds=embeds[None].to(model.dtype),
                                attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long),
                                max_new_tokens=SETTINGS.max_new_tokens, do_sample=False,
                                eos_token_id=stop_ids, pad_token_id=0)
    tokens = output[0].tolist()
    ends = [i for i, token in enumerate(tokens) if token in stop_ids]
    return str(tokenizer.decode(tokens[:ends[0]] if ends else tokens, skip_special_tokens=True))


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda prompt: prompt.kind)
@pytest.mark.parametrize("method", list(OPTIONS))
def test_the_model_as_it_is_answers_from_the_embeddings_as_the_method_does(
        load_method: Callable[..., tuple[Any, TargetModel]], chat_eos_dirs: dict[str, Path],
        method: str, prompt: DecoderPrompt) -> None:
    compressor, target = load_method(method, **OPTIONS[method])
    assert isinstance(compressor, PromptEmbeddingsDecoder)
    model: Any = target.model
    (compressed,) = compressor.compress([CompressionRequest(CONTEXT, QUESTION)])  # type: ignore[attr-defined]
    embeds = compressor.decoder_input_embeddings(compressed, prompt)
    table = model.get_input_embeddings().weight
    assert embeds.dim() == 2 and embeds.shape[1] == table.shape[1]
    assert embeds.dtype == table.dtype
    stop_ids = compressor.stop_token_ids()
    assert set(model.generation_config.eos_token_id) <= set(stop_ids)
    in_process = compressor.generate([(compressed, prompt)], SETTINGS)[0].text  # type: ignore[attr-defined]
    folder = chat_eos_dirs["autocompressor" if method == "autocompressor" else "plain"]
    assert greedy_from_embeddings(folder, embeds, stop_ids) == in_process


@pytest.mark.parametrize("method", ["icae", "autocompressor"])
def test_the_embeddings_are_the_rows_the_in_process_batch_is_built_from(
        load_method: Callable[..., tuple[Any, TargetModel]], method: str) -> None:
    import torch

    compressor, target = load_method(method, **OPTIONS[method])
    (compressed,) = compressor.compress([CompressionRequest(CONTEXT, QUESTION)])
    item = compressor.decoder_item(compressed, PROMPTS[0])
    batch = prepare_batch(target.model, [item])  # type: ignore[arg-type]
    assert torch.equal(compressor.decoder_input_embeddings(compressed, PROMPTS[0]),
                       batch.inputs_embeds[0])


def test_a_kv_memory_has_no_prompt_embeddings(
        load_method: Callable[..., tuple[Any, TargetModel]]) -> None:
    from bench.compressors.soft.decode import prompt_embeddings

    compressor, target = load_method("500x", num_mem=2)
    assert not isinstance(compressor, PromptEmbeddingsDecoder)
    (compressed,) = compressor.compress([CompressionRequest(CONTEXT)])
    with pytest.raises(ValueError, match="key/value memory"):
        prompt_embeddings(target.model, compressor.decoder_item(compressed, PROMPTS[0]))  # type: ignore[arg-type]
