"""500x and ICAE: gradients, adapter isolation, batching, options."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import SoftDecoder, TargetModel
from bench.compressors.soft.encoder.compressor import SoftCompressor
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings, CompressedKV
from bench.training.example import Example
from tests.bench.compressors.soft.forced_logits import token_forced_at

CONTEXTS = (
    "Lily saw a big red ball in the park. She wanted to play with it.",
    "Tom went to the lake.",
    "The sun was hot, so the cat slept under the tree all day long and did not wake up.",
    "Mia had a box.",
)
VARIANT = {"500x": {}, "icae": {"variant": "500x-baseline"}}
PROMPTS = (DecoderPrompt("regeneration", "", ""),
           DecoderPrompt("qa", "", " Question: Who? Answer:", question="Who was there?"))


def _build(target: TargetModel, method: str, **options: object) -> SoftCompressor:
    with pytest.warns(UserWarning, match="no checkpoint"):
        compressor = build_compressor(method, target,
                                      {"num_mem": 2, **VARIANT[method], **options})
    assert isinstance(compressor, SoftCompressor) and isinstance(compressor, SoftDecoder)
    return compressor


def _perturb_lora(compressor: SoftCompressor) -> None:
    """Give LoRA B non-zero values so that the adapter changes outputs."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in compressor.model.encoder.peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


@pytest.mark.parametrize("method", ["500x", "icae"])
def test_only_lora_memory_and_trigger_get_gradients(
        load_target: Callable[[str], TargetModel], method: str) -> None:
    target = load_target("llama")
    compressor = _build(target, method)
    _perturb_lora(compressor)
    model = compressor.model
    model.train()
    examples = [Example(CONTEXTS[0], "regeneration", CONTEXTS[0]),
                Example(CONTEXTS[1], "qa", "Tom", question="Who went to the lake?")]
    model.loss(examples).backward()  # type: ignore[no-untyped-call]
    with_grad = {name for name, p in model.named_parameters()
                 if p.grad is not None and p.grad.abs().sum() > 0}
    expected = {"encoder.memory"} | ({"encoder.trigger"} if method == "icae" else set())
    assert expected <= with_grad
    lora = {name for name in with_grad if "lora_" in name}
    assert lora and any("lora_A" in n for n in lora) and any("lora_B" in n for n in lora)
    assert with_grad == expected | lora
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected | {n for n in trainable if "lora_" in n}


@pytest.mark.parametrize("method", ["500x", "icae"])
def test_adapter_is_off_outside_the_encoder(
        load_target: Callable[[str], TargetModel], method: str) -> None:
    target = load_target("llama")
    reference = load_target("llama").model
    ids = torch.tensor([[1, 5, 9, 12, 30]])
    compressor = _build(target, method)
    _perturb_lora(compressor)
    assert target.model is not None and reference is not None
    with torch.no_grad():
        assert torch.equal(target.model(ids).logits, reference(ids).logits)
        with compressor.model.encoder.adapter_enabled():
            assert not torch.allclose(target.model(ids).logits, reference(ids).logits)
        assert torch.equal(target.model(ids).logits, reference(ids).logits)

    seen: list[tuple[str, bool]] = []
    from peft.tuners.lora import LoraLayer

    layer = next(m for m in target.model.modules() if isinstance(m, LoraLayer))
    phase = ["encode"]
    handle = layer.register_forward_hook(  # type: ignore[union-attr]
        lambda module, args, out: seen.append((phase[0], not module.disable_adapters)))
    compressed = compressor.compress([CompressionRequest(c) for c in CONTEXTS[:2]])
    phase[0] = "decode"
    compressor.generate([(c, PROMPTS[1]) for c in compressed], GenerationSettings(4))
    handle.remove()
    assert {active for p, active in seen if p == "encode"} == {True}
    assert {active for p, active in seen if p == "decode"} == {False}


@pytest.mark.parametrize("layout", ["reference", "compressbench"])
@pytest.mark.parametrize("which", ["llama", "qwen2", "stories"])
@pytest.mark.parametrize("method", ["500x", "icae"])
def test_batch_of_four_equals_one_at_a_time(
        load_target: Callable[[str], TargetModel], method: str, which: str, layout: str) -> None:
    target = load_target(which)
    compressor = _build(target, method, batch_size=4, layout=layout)
    _perturb_lora(compressor)
    batched = compressor.compress([CompressionRequest(c) for c in CONTEXTS])
    single = [compressor.compress([CompressionRequest(c)])[0] for c in CONTEXTS]
    record = CompressedKV if method == "500x" else CompressedEmbeddings
    for a, b, context in zip(batched, single, CONTEXTS, strict=True):
        assert isinstance(a, record) and isinstance(b, record)
        assert a.stats.compressed_tokens == 2
        assert a.stats.original_tokens == target.count_tokens(context)
        if isinstance(a, CompressedKV) and isinstance(b, CompressedKV):
            assert a.position_offset == b.position_offset
            assert a.keys[0].shape[-2] == 2
            for x, y in zip(a.keys + a.values, b.keys + b.values, strict=True):
                torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
        else:
            assert isinstance(a, CompressedEmbeddings) and isinstance(b, CompressedEmbeddings)
            assert a.embeddings.shape == (2, target.model.config.hidden_size)  # type: ignore[union-attr]
            torch.testing.assert_close(a.embeddings, b.embeddings, rtol=1e-4, atol=1e-5)
    settings = GenerationSettings(max_new_tokens=8)
    items = [(c, p) for p in PROMPTS for c in single]
    together = compressor.generate(items, settings)
    alone = [compressor.generate([item], settings)[0] for item in items]
    assert [o.text for o in together] == [o.text for o in alone]
    assert all(o.generated_tokens <= 8 and o.seconds > 0 for o in together)


def test_options_are_parsed_and_checked(load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("llama")
    with pytest.warns(UserWarning):
        compressor = build_compressor("500x", target, {"num_mem": "3", "seed": "1"})
    assert compressor.settings()["num_mem"] == 3
    assert isinstance(compressor, SoftDecoder)
    with pytest.raises(ValueError, match="does not accept"):
        build_compressor("icae", load_target("llama"), {"variant": "500x-baseline", "slots": 3})
    with pytest.raises(ValueError, match="variant must be one of"):
        build_compressor("icae", load_target("llama"), {"variant": "v3"})
    with pytest.raises(ValueError, match="already carries a LoRA"), pytest.warns(UserWarning):
        build_compressor("icae", target, {"variant": "500x-baseline"})
    with pytest.raises(ValueError, match="needs the question"):
        compressor.generate([(compressor.compress([CompressionRequest("a b")])[0],
                              DecoderPrompt("qa", "", ""))], GenerationSettings(2))


@pytest.mark.parametrize("method", ["500x", "icae"])
def test_gradient_checkpointing_gives_the_same_gradients(
        load_target: Callable[[str], TargetModel], method: str) -> None:
    examples = [Example(CONTEXTS[0], "regeneration", CONTEXTS[0]),
                Example(CONTEXTS[2], "qa", "the cat", question="Who slept?")]
    gradients = []
    for checkpointing in (False, True):
        compressor = _build(load_target("qwen2"), method)
        _perturb_lora(compressor)
        model = compressor.model
        if checkpointing:
            model.encoder.enable_gradient_checkpointing()
        model.train()
        torch.manual_seed(0)
        model(examples).backward()  # type: ignore[no-untyped-call]
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()
                          if p.grad is not None})
        assert not model.encoder.adapter_active()
    plain, checkpointed = gradients
    assert plain.keys() == checkpointed.keys() and len(plain) > 2
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["500x", "icae"])
def test_llama3_end_of_text_ends_generation(
        load_target: Callable[[str], TargetModel], method: str) -> None:
    """As in the 500xCompressor code, ``<|end_of_text|>`` stops decoding even where the
    tokenizer's and the generation config's EOS is another token (``<|eot_id|>``)."""
    target = load_target("llama")
    tokenizer, model = target.tokenizer, target.model
    assert model is not None
    tokenizer.add_tokens(["<|end_of_text|>", "<|eot_id|>"], special_tokens=True)
    tokenizer.eos_token = "<|eot_id|>"
    model.resize_token_embeddings(len(tokenizer))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    end_of_text = tokenizer.get_vocab()["<|end_of_text|>"]
    compressor = _build(target, method)
    (record,) = compressor.compress([CompressionRequest(CONTEXTS[0])])
    with token_forced_at(model, end_of_text, 2):
        (ids,) = compressor.generate_token_ids([(record, PROMPTS[1])], GenerationSettings(6))
    assert len(ids) == 3 and ids[-1] == end_of_text
