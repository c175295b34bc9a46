"""``bench.train --method pisco``: its flags, the pretraining layouts beyond the fixtures'
(long texts, text continuation), and a pretrain + finetune run on the real tiny Llama whose
export the ``pisco`` compressor loads."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from bench.compressors.soft.pisco.collate import Lengths, PiscoCollator
from bench.compressors.soft.pisco.layout import IGNORE, MEM_TOKEN, memory_count
from bench.compressors.soft.pisco.tokens import PiscoTokenizer
from tests.bench.compressors.soft.reference_fixtures import load_fixture

STORY = ("Once upon a time, there was a little girl named Lily. She loved to play in the "
         "garden with her cat. One day, she found a small blue bird under a big tree. The bird "
         "could not fly, so Lily took it home and gave it water and seeds.")


@pytest.fixture(scope="module")
def collator() -> PiscoCollator:
    checkpoint = load_fixture("pisco").path / "checkpoint"
    compressor = PiscoTokenizer.load(str(checkpoint / "compressor_tokenizer"))
    decoder = PiscoTokenizer.load(str(checkpoint / "decoder_tokenizer"))
    return PiscoCollator(compressor, decoder, compressor.token_id(MEM_TOKEN),
                         Lengths(compression_rate=4, compressor_max_length=20,
                                 decoder_max_length=512))


def test_flags_come_from_the_registration(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.train import main

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "pisco: compressor ids per vector: a chunk of n ids gets n // rate + 1" in flat
    for flag in ("--compression-rate", "--compressor-model", "--ae-ratio", "--query-dependent"):
        assert flag in text


def test_long_texts_are_autoencoded_from_random_chunks(collator: PiscoCollator) -> None:
    ids = collator.compressor.encode(STORY, special_tokens=True)
    assert len(ids) > 64
    example = collator.autoencoding(STORY, random.Random(3))
    chunks = [row[:len(row) - row.count(collator.compressor_mem)] for row in example.rows]
    assert [t for chunk in chunks for t in chunk] == ids
    assert all(16 <= len(chunk) <= 20 for chunk in chunks)
    ids_out = collator.ids
    memories = sum(memory_count(len(chunk), 4) for chunk in chunks)
    assert example.decoder_ids[:memories + 2] == ids_out.regeneration_prefix(memories)


def test_continuation_targets_the_text_after_the_compressed_part(collator: PiscoCollator
                                                                 ) -> None:
    example = collator.continuation(STORY, random.Random(5))
    assert len(example.rows) == 1
    compressed = [t for t in example.rows[0] if t != collator.compressor_mem]
    memories = len(example.rows[0]) - len(compressed)
    assert memories == memory_count(len(compressed), 4)
    batch = collator.batch([example])
    decoder = batch.decoder_input_ids[0].tolist()
    ids = collator.ids
    assert decoder.count(ids.mem) == memories
    first = decoder.index(ids.mem)
    assert collator.compressor.decode_all(decoder[first + memories:]) == \
        collator.compressor.decode_all([*compressed_future(collator, compressed), ids.eos])
    special = {ids.mem, ids.ae, ids.pad, ids.bos}
    assert batch.labels[0].tolist() == [IGNORE if t in special else t for t in decoder]


def compressed_future(collator: PiscoCollator, compressed: list[int]) -> list[int]:
    """The text ids after the compressed part (the continuation's target)."""
    ids = collator.compressor.encode(STORY, special_tokens=True)
    start = next(i for i in range(len(ids)) if ids[i:i + len(compressed)] == compressed)
    return ids[start + len(compressed):]


def test_questions_see_their_documents_with_query_dependent_compression(
        collator: PiscoCollator) -> None:
    from dataclasses import replace

    oscar = replace(collator, query_dependent=True)
    example = oscar.documents_answer(["Tom had a red ball."], "What did Tom have?", "a ball")
    chunks = [t for row in example.rows for t in row if t != oscar.compressor_mem]
    text = oscar.compressor.decode_all(chunks)
    assert text == "<s> Query: What did Tom have?\n Document: Tom had a red ball."


@pytest.fixture(scope="module")
def chat_base(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with the fixture's chat template (PISCO's QA prompt needs one)."""
    base = tmp_path_factory.mktemp("pisco_base") / "stories_chat"
    shutil.copytree(stories, base)
    template = load_fixture("pisco").path / "checkpoint" / "decoder_tokenizer"
    shutil.copy(template / "chat_template.jinja", base / "chat_template.jinja")
    return base


@pytest.mark.slow
def test_pretrain_then_finetune_writes_a_checkpoint_pisco_loads(
        chat_base: Path, tmp_path: Path) -> None:
    import json

    from bench.compressors._api import CompressionRequest, TargetModel
    from bench.compressors.soft.pisco.checkpoint import read_checkpoint
    from bench.compressors.soft.pisco.compressor import Pisco, make_pisco
    from bench.generation import DecoderPrompt, GenerationSettings
    from bench.train import main
    from bench.training.synthetic import write_opening_qa, write_text_corpus

    corpus = write_text_corpus([f"Lily had {n} red balls. She gave {n % 3} of them to Tom."
                                for n in range(48)], tmp_path / "corpus", dev=8)
    common = ["--base", str(chat_base), "--steps", "10", "--lr", "1e-3", "--batch-size", "2",
              "--warmup-steps", "1", "--eval-every", "10", "--dev-size", "4", "--lora-r", "4",
              "--no-progress"]
    assert main(["pretrain", "--method", "pisco", "--data", str(corpus), "--out",
                 str(tmp_path / "pre"), "--compression-rate", "8",
                 "--compressor-mlp-hidden-dim", "32", *common]) == 0
    history = json.loads((tmp_path / "pre" / "metrics.json").read_text())
    assert history[-1]["dev_loss"] < 0.8 * history[0]["dev_loss"]
    qa = write_opening_qa(corpus, tmp_path / "qa")
    assert main(["finetune", "--method", "pisco", "--data", str(qa), "--init-from",
                 str(tmp_path / "pre" / "final"), "--out", str(tmp_path / "ft"), *common]) == 0
    final = tmp_path / "ft" / "final"
    checkpoint = read_checkpoint(str(final))
    assert (checkpoint.compression_rate, checkpoint.lora_r, checkpoint.mlp_hidden) == (8, 4, 32)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(chat_base)).eval()  # type: ignore[no-untyped-call]
    target = TargetModel(str(chat_base), AutoTokenizer.from_pretrained(str(chat_base)), model)
    compressor = make_pisco(target, {"checkpoint": str(final)})
    assert isinstance(compressor, Pisco)
    trained = checkpoint.decoder.embeddings
    loaded = compressor.model.decoder.get_input_embeddings().weight
    assert torch.equal(loaded, next(t for name, t in trained.items() if "embed" in name))
    compressed = compressor.compress([CompressionRequest(STORY)])[0]
    rows = compressor.compressor_rows([STORY])
    assert compressed.stats.compressed_tokens == sum(rows.mems_per_chunk)
    answer = compressor.generate([(compressed, DecoderPrompt("qa", "", "", "Who is Lily?"))],
                                 GenerationSettings(max_new_tokens=4))[0]
    assert answer.generated_tokens <= 4
