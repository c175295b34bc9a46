"""End-to-end training runs on CPU with the real tiny Llama."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.substrate.errors import InputError
from bench.train import build_parser, config_from_args, main
from bench.training.config import TrainConfig, preset_values
from bench.training.data import load_examples
from bench.training.loop import train


def _history(out: Path) -> list[dict[str, float]]:
    history: list[dict[str, float]] = json.loads((out / "metrics.json").read_text())
    return history


@pytest.mark.slow
def test_pretraining_lowers_dev_regeneration_loss(story_corpus: Path, stories: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base", str(stories),
                 "--data", str(story_corpus), "--out", str(out), "--steps", "100",
                 "--eval-every", "100", "--eval-generate", "2", "--no-progress"]) == 0
    history = _history(out)
    assert [h["step"] for h in history] == [0, 100]
    assert history[1]["dev_loss"] < 0.9 * history[0]["dev_loss"]
    assert 0.0 <= history[1]["rouge_l_f"] <= 1.0
    config = json.loads((out / "final" / "soft_config.json").read_text())
    assert config["training"]["steps"] == 100 and config["training"]["lr"] == 1e-3
    assert config["special_token_ids"] == {"bos": 1, "eos": 2, "pad": 2}
    tiny = preset_values("tiny-cpu", "pretrain")
    assert config["layout"] == {"name": "reference", "context_length": tiny["context_length"],
                                "max_context_tokens": tiny["max_context_tokens"],
                                "decoder_positions": None, "max_qa_len": 46,
                                "loss_on_padding": True}

    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = TargetModel(stories.name, AutoTokenizer.from_pretrained(str(stories)),
                         AutoModelForCausalLM.from_pretrained(str(stories)).eval())  # type: ignore[no-untyped-call]
    compressor = build_compressor("500x", target, {"checkpoint": str(out / "final")})
    (record,) = compressor.compress([CompressionRequest("Lily saw a big dog.")])
    assert record.stats.compressed_tokens == 4


def _config(data: Path, out: Path, stories: Path, **overrides: object) -> TrainConfig:
    args = build_parser().parse_args(["pretrain", "--preset", "tiny-cpu", "--method", "icae",
                                      "--base", str(stories), "--data", str(data),
                                      "--out", str(out), "--no-progress"])
    values = {**config_from_args(args).__dict__, **overrides}
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_resumed_run_matches_an_uninterrupted_one(story_corpus: Path, stories: Path,
                                                  tmp_path: Path) -> None:
    settings = {"steps": 6, "save_every": 3, "eval_every": 0, "grad_accum": 2,
                "gradient_checkpointing": True, "lora_dropout": 0.1}
    straight = train(_config(story_corpus, tmp_path / "a", stories, **settings))
    interrupted = tmp_path / "b"
    train(_config(story_corpus, interrupted, stories, **{**settings, "steps": 3}))
    resumed = train(_config(story_corpus, interrupted, stories, **settings))
    assert resumed.step == straight.step == 6
    from safetensors.torch import load_file

    a = load_file(str(straight.final_dir / "soft_weights.safetensors"))
    b = load_file(str(resumed.final_dir / "soft_weights.safetensors"))
    assert a.keys() == b.keys() and "trigger" in a
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key
    assert sorted(p.name for p in interrupted.glob("checkpoint-*")) == [
        "checkpoint-0000003", "checkpoint-0000006"]


@pytest.mark.parametrize("layout", ["reference", "compressbench"])
def test_finetuning_reads_mrqa_and_reports_f1(stories: Path, tmp_path: Path, layout: str) -> None:
    path = tmp_path / "toy.jsonl.gz"
    lines: list[dict[str, object]] = [{"header": {"dataset": "Toy"}}]
    for i, (name, thing) in enumerate([("Lily", "ball"), ("Tom", "dog"), ("Mia", "box"),
                                       ("Ben", "car"), ("Sue", "cat"), ("Max", "hat")]):
        context = f"{name} had a red {thing}. {name} liked the {thing} very much."
        lines.append({"context": context, "qas": [
            {"qid": f"q{i}", "question": f"What did {name} have?", "answers": [thing]}]})
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(line) for line in lines) + "\n")
    train_set, dev_set = load_examples(str(path), "qa", dev_size=2)
    assert len(train_set) + len(dev_set) == 6 and all(e.answers for e in dev_set)
    out = tmp_path / "ft"
    assert main(["finetune", "--preset", "tiny-cpu", "--method", "500x", "--base", str(stories),
                 "--data", str(path), "--out", str(out), "--steps", "4", "--eval-every", "2",
                 "--layout", layout, "--no-progress"]) == 0
    history = _history(out)
    assert [h["step"] for h in history] == [0, 2, 4]
    assert all(0.0 <= h["squad_f1"] <= 1.0 for h in history)
    recorded = json.loads((out / "final" / "soft_config.json").read_text())["layout"]
    assert recorded["name"] == layout


def test_layout_flags_reach_the_run_settings(tmp_path: Path) -> None:
    common = ["pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base", "b",
              "--data", "d", "--out", str(tmp_path)]
    config = config_from_args(build_parser().parse_args(
        [*common, "--no-loss-on-padding", "--context-length", "80", "--max-qa-len", "20"]))
    layout = config.layout_settings()
    assert (layout.name, layout.context_length, layout.max_qa_len, layout.loss_on_padding) == (
        "reference", 80, 20, False)
    assert layout.max_context_tokens == preset_values("tiny-cpu", "pretrain")["max_context_tokens"]
    config = config_from_args(build_parser().parse_args(
        [*common, "--layout", "compressbench", "--decoder-positions", "restart"]))
    assert config.layout_settings().decoder_positions == "restart"
    with pytest.raises(ValueError, match="compressbench only"):
        config_from_args(build_parser().parse_args([*common, "--decoder-positions", "restart"]))
    with pytest.raises(ValueError, match="must not exceed"):
        config_from_args(build_parser().parse_args([*common, "--context-length", "32"]))


def test_bad_data_is_a_clear_error(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "train.parquet")
    with pytest.raises(InputError, match="missing column"):
        load_examples(str(tmp_path), "regeneration")
    (tmp_path / "notes.parquet").write_text("not Parquet", encoding="utf-8")
    with pytest.raises(InputError, match=r"notes\.parquet: not a readable Parquet file \("):
        load_examples(str(tmp_path / "notes.parquet"), "regeneration")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_examples(str(tmp_path / "nothing"), "regeneration")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no train\.parquet"):
        load_examples(str(tmp_path / "empty"), "regeneration")
