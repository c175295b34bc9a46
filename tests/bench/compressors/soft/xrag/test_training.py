"""``python -m bench.train --method xrag``: its flags, and (slow) runs against the reference.

The reference fine-tuned the pretraining checkpoint on the fixture's QA items for as many
steps as its log records, with ``finetune.yaml``'s optimisation (AdamW, lr 2e-5, linear decay,
no warm-up, weight decay 0, no clipping) and a batch of 4, i.e. every item at every step while
there are at most 4. The same run here must log the same losses, end with the projector of the
fine-tuned checkpoint, and that export must answer as the fixture recorded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, build_compressor
from bench.compressors.soft.decode import greedy_ids
from bench.compressors.soft.xrag.checkpoint import read_checkpoint
from bench.compressors.soft.xrag.training import XragTrainingOptions
from bench.generation import DecoderPrompt, GenerationSettings
from bench.train import build_parser, config_from_args, main
from bench.training.registry import training_method
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    load_fixture,
    reference_root,
    report_missing,
)
from tests.bench.compressors.soft.xrag.fixture_models import (
    METHOD,
    SHARED_DATA,
    case_context,
    compressor_options,
    load_target,
    retriever_dir,
)

REFERENCE_BATCH = 4
FINETUNE_FLAGS = ("--lr", "2e-5", "--schedule", "linear", "--warmup-steps", "0",
                  "--weight-decay", "0", "--max-grad-norm", "0")


def test_flags_reach_the_method_options(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "finetune", "--method", METHOD, "--base", "b", "--data", "d", "--out", "o",
        "--retriever", "r", "--alpha-kl", "0.5", "--kl-temperature", "2",
        "--max-seq-length", "100"])
    options = training_method(METHOD).options_of(config_from_args(args).extra)
    assert options == XragTrainingOptions(retriever="r", alpha_kl=0.5, kl_temperature=2.0,
                                          max_seq_length=100)
    assert options.seq_length("pretrain") == options.seq_length("finetune") == 100
    assert XragTrainingOptions().seq_length("finetune") == 1024


@pytest.mark.parametrize(("flag", "value", "problem"), [
    ("--kl-temperature", "0", "field '--kl-temperature': must be a finite number > 0, got 0.0"),
    ("--alpha-kl", "nan", "field '--alpha-kl': must be a finite number >= 0, got nan"),
    ("--projector-type", "linear", "field '--projector-type': xrag: projector_type 'linear'"),
    ("--retriever-max-length", "0", "field '--retriever-max-length': must be a whole number"),
])
def test_bad_option_values_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str,
        problem: str) -> None:
    argv = ["pretrain", "--method", METHOD, "--base", str(tmp_path), "--data", str(tmp_path),
            "--out", str(tmp_path / "out"), flag, value]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {problem}") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def only(values: set[str], what: str) -> str:
    if len(values) != 1:
        pytest.skip(f"the fixture set has {len(values)} {what}; the recorded run used one")
    return values.pop()


def qa_folder(cases: list[dict[str, Any]], folder: Path) -> Path:
    """The QA cases as a training folder: context (the documents joined by a space),
    question and answer."""
    import pandas as pd

    folder.mkdir(parents=True)
    frame = pd.DataFrame({"context": [" ".join(case["documents"]) for case in cases],
                          "question": [case["question"] for case in cases],
                          "answers": [[case["answer"]] for case in cases]})
    for split in ("train", "dev"):
        frame.to_parquet(folder / f"{split}.parquet")
    return folder


def finetune_like_the_reference(fixture: ReferenceFixture, qa: list[dict[str, Any]],
                                start: Path, out: Path) -> list[float]:
    """Run the reference's fine-tuning here; the loss of each step."""
    steps = len(fixture.losses["training_log"]["finetune"])
    argv = ["finetune", "--method", METHOD, "--base", str(start), "--init-from", str(start),
            "--data", str(qa_folder(qa, out.parent / "qa")), "--out", str(out),
            "--retriever", str(retriever_dir(qa[0])), "--steps", str(steps),
            "--batch-size", str(len(qa)), "--eval-every", "0", "--save-every", str(steps),
            "--retriever-max-length", str(qa[0]["retriever_max_length"]), "--no-progress",
            *FINETUNE_FLAGS]
    assert main(argv) == 0
    log = (out / "train_log.jsonl").read_text().splitlines()
    return [float(json.loads(line)["loss"]) for line in log]


@pytest.mark.slow
def test_finetuning_reproduces_the_reference_run(fixture: ReferenceFixture,
                                                 tmp_path: Path) -> None:
    qa = [case for case in fixture.cases if case["kind"] == "qa"]
    if not 1 <= len(qa) <= REFERENCE_BATCH:
        pytest.skip(f"{len(qa)} QA cases: the reference's batches of {REFERENCE_BATCH} "
                    "depend on its data order")
    start = fixture.path / only({case["checkpoint"] for case in fixture.cases
                                 if case["kind"] == "regeneration"}, "pretraining checkpoints")
    finetuned = fixture.path / only({case["checkpoint"] for case in qa}, "QA checkpoints")
    losses = finetune_like_the_reference(fixture, qa, start, tmp_path / "run")
    recorded = [step["loss"] for step in fixture.losses["training_log"]["finetune"]]
    assert losses == pytest.approx(recorded, abs=fixture.loss_atol)
    final = tmp_path / "run" / "final"
    ours, reference = read_checkpoint(str(final)), read_checkpoint(str(finetuned))
    assert sorted(ours.tensors) == sorted(reference.tensors)
    for name, tensor in reference.tensors.items():
        torch.testing.assert_close(ours.tensors[name], tensor, atol=fixture.tensor_atol,
                                   rtol=fixture.tensor_rtol)
    check_answers(final, qa)


def check_answers(folder: Path, cases: list[dict[str, Any]]) -> None:
    """The exported model, loaded as ``pretrained=``, gives the cases' greedy ids."""
    target = load_target(folder)
    compressor: Any = build_compressor(METHOD, target, compressor_options(cases[0]))
    for case in cases:
        compressed = compressor.compress([CompressionRequest(case_context(case))])[0]
        prompt = DecoderPrompt(case["kind"], "", "", case.get("question"))
        settings = GenerationSettings(max_new_tokens=case["max_new_tokens"])
        rows, _, _ = greedy_ids(compressor.model, target.tokenizer,
                                [compressor.decoder_item(compressed, prompt)], settings,
                                compressor.eos_ids)
        assert rows[0].with_eos == case["expected_token_ids"], case["id"]


def reference_base(case: dict[str, Any], folder: Path) -> Path:
    """The plain LLM as the reference loaded it: its scratch copy has no tokenizer.json, and
    its slow tokenizer (legacy SentencePiece) adds BOS."""
    path = reference_root().parent / PurePosixPath(case["llm_base"]).relative_to(SHARED_DATA)
    if not path.is_dir():
        report_missing("the base LLM of the xRAG fixtures", path)
    shutil.copytree(path, folder, ignore=shutil.ignore_patterns("tokenizer.json"))
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.update(add_bos_token=True, add_eos_token=False, legacy=True)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder


def test_pretraining_adds_the_tokens_and_exports_the_released_layout(
        fixture: ReferenceFixture, small_corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    case = fixture.cases[0]
    out = tmp_path / "run"
    base = reference_base(case, tmp_path / "base")
    assert main(["pretrain", "--method", METHOD, "--base", str(base), "--data",
                 str(small_corpus), "--out", str(out), "--retriever",
                 str(retriever_dir(case)), "--steps", "2", "--batch-size", "2",
                 "--eval-every", "0", "--warmup-steps", "0", "--lr", "1e-3",
                 "--no-progress"]) == 0
    final, released = out / "final", fixture.path / case["checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    assert tokenizer.get_added_vocab() == \
        AutoTokenizer.from_pretrained(str(released)).get_added_vocab()
    for each in fixture.cases:
        assert tokenizer(each["prompt"])["input_ids"] == each["input_ids"], each["id"]
    config = json.loads((final / "config.json").read_text())
    reference = json.loads((released / "config.json").read_text())
    for key in ("projector_type", "retriever_hidden_size", "vocab_size", "architectures"):
        assert config[key] == reference[key], key
    compressor: Any = build_compressor(METHOD, load_target(final), compressor_options(case))
    result = compressor.compress([CompressionRequest(case_context(case))])[0]
    prompt = DecoderPrompt(case["kind"], "", "", case.get("question"))
    assert compressor.generate([(result, prompt)], GenerationSettings(4))[0].generated_tokens


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)
