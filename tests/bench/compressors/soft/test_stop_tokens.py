"""Every soft decoder ends an answer at any of the target model's EOS ids (the tokenizer's,
not ``</s>`` here, and each id its generation config lists) or at the length limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.compressors import CompressionRequest
from bench.compressors._api import TargetModel
from bench.generation import DecoderPrompt, GenerationSettings
from tests.bench.compressors.soft.forced_logits import token_forced_at
from tests.stop_tokens import END_OF_TEXT, END_OF_TURN

CONTEXT = "Lily saw a big red ball in the park. She wanted to play with it."
PROMPTS = (DecoderPrompt("regeneration", "", " Repeated text:"),
           DecoderPrompt("qa", "", " Question: What did Lily see? Answer:",
                         question="What did Lily see?"))
LIMIT = 8
OPTIONS: dict[str, dict[str, Any]] = {
    "500x": {"num_mem": 2},
    "icae": {"variant": "500x-baseline", "num_mem": 2},
    "icae-v2": {"num_mem": 2, "lora_r": 4},
    "gist": {"num_gist_tokens": 1},
    "autocompressor": {},
    "cram": {"num_mem": 1, "steps": 1},
}


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda prompt: prompt.kind)
@pytest.mark.parametrize("method", list(OPTIONS))
def test_answers_end_at_every_eos_id_of_the_generation_config(
        load_method: Callable[..., tuple[Any, TargetModel]], method: str,
        prompt: DecoderPrompt) -> None:
    compressor, target = load_method(method, **OPTIONS[method])
    assert target.tokenizer.eos_token == END_OF_TURN
    assert len(target.model.generation_config.eos_token_id) == 2  # type: ignore[union-attr]
    (compressed,) = compressor.compress([CompressionRequest(CONTEXT, prompt.question)])
    settings = GenerationSettings(max_new_tokens=LIMIT)

    def generate() -> Any:
        return compressor.generate([(compressed, prompt)], settings)[0]

    free = generate()
    assert free.generated_tokens == LIMIT  # the length limit
    for token, step in ((END_OF_TEXT, 3), (END_OF_TURN, 5)):
        token_id = target.tokenizer.convert_tokens_to_ids(token)
        assert isinstance(token_id, int)
        with token_forced_at(target.model, token_id, step):  # type: ignore[arg-type]
            stopped = generate()
        assert stopped.generated_tokens == step, token
        assert free.text.startswith(stopped.text) and len(stopped.text) < len(free.text)
