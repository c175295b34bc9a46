"""The KV and embedding invariants of the shared decoder, and padding invariance."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.compressors._api import TargetModel
from bench.compressors.soft._cache import layer_states
from bench.compressors.soft.decode import DecoderItem, greedy_generate
from bench.generation import GenerationSettings

CONTEXTS = ("Lily saw a big red ball in the park.", "Tom and his dog went to the lake.", "Mia")
PROMPT = " She"
NEW = 12


def _context_ids(target: TargetModel, text: str) -> list[int]:
    bos = target.tokenizer.bos_token_id
    ids = list(target.tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
    return ([] if bos is None else [bos]) + ids


def _reference(target: TargetModel, ids: list[int]) -> list[int]:
    """Plain transformers greedy generation on the full token sequence."""
    assert target.model is not None
    out = target.model.generate(  # type: ignore[operator]
        torch.tensor([ids]), max_new_tokens=NEW, do_sample=False, eos_token_id=None,
        pad_token_id=target.tokenizer.eos_token_id)
    return [int(token) for token in out[0, len(ids):].tolist()]


def _run(target: TargetModel, items: list[DecoderItem]) -> list[list[int]]:
    assert target.model is not None
    settings = GenerationSettings(max_new_tokens=NEW)
    outputs = greedy_generate(target.model, target.tokenizer, items, settings, eos_token_ids=[])
    return [target.tokenizer(o.text, add_special_tokens=False)["input_ids"] for o in outputs]


def _kv_item(target: TargetModel, ids: list[int], prompt: list[int]) -> DecoderItem:
    assert target.model is not None
    with torch.no_grad():
        cache = target.model(torch.tensor([ids]), use_cache=True).past_key_values
    keys, values = layer_states(cache)
    return DecoderItem(tuple(prompt), tuple(k[0] for k in keys), tuple(v[0] for v in values),
                       position_offset=len(ids))


def _embeds_item(target: TargetModel, ids: list[int], prompt: list[int]) -> DecoderItem:
    assert target.model is not None
    with torch.no_grad():
        embeds = target.model.get_input_embeddings()(torch.tensor(ids))
    return DecoderItem(tuple(prompt), embeds=embeds)


@pytest.mark.parametrize("which", ["llama", "qwen2", "stories"])
@pytest.mark.parametrize("path", ["kv", "embeds"])
def test_full_context_prefix_reproduces_full_context_generation(
        load_target: Callable[[str], TargetModel], which: str, path: str) -> None:
    target = load_target(which)
    prompt = target.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    make = _kv_item if path == "kv" else _embeds_item
    items, expected = [], []
    for context in CONTEXTS:
        ids = _context_ids(target, context)
        items.append(make(target, ids, prompt))
        expected.append(target.tokenizer.decode(_reference(target, ids + prompt),
                                                skip_special_tokens=True))
    batched = greedy_generate(target.model, target.tokenizer, items,  # type: ignore[arg-type]
                              GenerationSettings(max_new_tokens=NEW), eos_token_ids=[])
    assert [o.text for o in batched] == expected
    single = [greedy_generate(target.model, target.tokenizer, [item],  # type: ignore[arg-type]
                              GenerationSettings(max_new_tokens=NEW), eos_token_ids=[])[0].text
              for item in items]
    assert single == expected


def test_stop_strings_and_eos_cut_the_output(load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    ids = _context_ids(target, "Once upon a time")
    item = _embeds_item(target, ids, [])
    full = greedy_generate(target.model, target.tokenizer, [item],  # type: ignore[arg-type]
                           GenerationSettings(max_new_tokens=30), eos_token_ids=[])[0]
    assert "." in full.text and full.generated_tokens == 30
    cut = greedy_generate(target.model, target.tokenizer, [item],  # type: ignore[arg-type]
                          GenerationSettings(max_new_tokens=30, until=(".",)), eos_token_ids=[])[0]
    assert cut.text == full.text.split(".")[0]
    assert cut.generated_tokens < 30
    with torch.no_grad():
        logits = target.model(inputs_embeds=item.embeds[None]).logits  # type: ignore[misc,index]
    first = int(logits[0, -1].argmax())
    stopped = greedy_generate(target.model, target.tokenizer, [item],  # type: ignore[arg-type]
                              GenerationSettings(max_new_tokens=30), eos_token_ids=[first])[0]
    assert stopped.text == "" and stopped.generated_tokens == 0
