"""Do a trained compressor's compressed tokens carry their text? Four controls on held-out texts.

    python benchmarks/bench_information_flow.py [--method 500x gist ...]
        [--base ../shared/data/stories260K_hf] [--texts sampled|FILE] [--steps 40 150]
        [--num-mem 4] [--context-length 48] [--train-texts 184] [--held-out 16] [--seed 0]
        [--retriever Salesforce/SFR-Embedding-Mistral]

Each method trains through ``bench.training`` (the loop of ``python -m bench.train``) on texts
cut to --context-length tokens of the base tokenizer, then reads each held-out text i back
(teacher-forced, the method's own loss on the text and EOS) with:
  own      the compressed tokens of text i;
  other    the compressed tokens of held-out text i+1 (the last one takes the first's);
  none     no compressed tokens: the decoder the memory feeds (the frozen base for 500x/ICAE/
           xRAG, the trained LM for gist/AutoCompressor, the LoRA decoder for PISCO) reads BOS
           (EOS without one), then the text;
  step 0   the compressed tokens of text i from the untrained compressor (the seeded
           initialisation the run starts from: for xRAG the projector's).
Printed per method and step budget: nats/token of each control (summed over the held-out
texts' target tokens / their number), the texts where own < other (summed nats of the text),
bits carried per text (the mean over texts of (other - own) nats/token x the text's target
tokens / ln 2: what the own memory saves over another text's, in bits), and sacrebleu BLEU and
Rouge-L-F (bench.metrics) of greedy regenerations from the own memory, decoded by the
method's compressor from the exported OUT/final checkpoint (at most --context-length new
tokens, stopping at EOS).

Training tasks: 500x, ICAE and other encoder methods (registered with the encoder training
parts) and gist: ``pretrain`` (regeneration); AutoCompressor: ``finetune`` on the question
"Repeat the text." answered by the text (its pretraining has no regeneration task).
xRAG: ``pretrain`` (paraphrase: the text regenerated after an instruction holding one
``<xRAG>`` token, whose input row is the projected --retriever embedding of the text; only the
projector trains). PISCO: ``pretrain`` (auto-encoding and text continuation mixed by its
``ae_ratio``; the controls read the auto-encoding layout ``<AE>`` + ``<MEM>`` x n + BOS + text),
at the largest compression rate that gives a text of --context-length tokens and BOS at
least --num-mem vectors (n // rate + 1).
Several --steps values continue one run (each later budget resumes from the earlier one).
--texts FILE: JSON lines (.jsonl or .jsonl.gz) whose ``text``, ``abstract`` (arXiv) or
``context`` (MRQA) field is the text, read in order until --train-texts + --held-out texts of
at least --context-length tokens are found, then split (seeded). ``sampled``: texts sampled
from the base model itself (in-distribution for a tiny model).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch

from bench.compressors.soft.encoder.training import soft_parts
from bench.compressors.soft.xrag.compressor import DEFAULT_RETRIEVER
from bench.generation import DecoderPrompt
from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import RawHelpFormatter
from bench.training.config import TrainConfig
from bench.training.example import Example
from bench.training.method import IGNORE, MethodParts, Substeps, pad_rows, summed_loss
from bench.training.registry import TrainingMethod, training_methods

DEFAULT_BASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stories260K_hf"
REGENERATION_QUESTION = "Repeat the text."
TEXT_FIELDS = ("text", "abstract", "context")
COMPRESSOR_OPTIONS = {"icae": {"variant": "500x-baseline"}}
"""Compressor options an encoder method's export needs beyond its checkpoint."""


@dataclass(frozen=True)
class Scored:
    """A text's summed token loss (nats) over its target tokens."""

    nats: float
    tokens: int


@dataclass(frozen=True)
class CompressorSpec:
    """How the method's compressor decodes the exported checkpoint."""

    name: str
    target: str
    """The target model (folder or hub id) the compressor reads the memory with."""
    options: dict[str, Any]
    prompt: DecoderPrompt


def target_ids(batch: Any) -> list[int]:
    """The target token ids of a one-row batch, in order."""
    pieces = batch.pieces if isinstance(batch, Substeps) else (batch,)
    return [int(token) for piece in pieces for token in piece.labels[piece.labels != IGNORE]]


@torch.no_grad()
def bos_only_loss(lm: Any, bos: int, targets: Sequence[int]) -> Scored:
    """Summed loss of ``targets`` read by ``lm`` after ``bos`` alone."""
    ids = torch.tensor([[bos, *targets[:-1]]])
    logits = lm(input_ids=ids).logits[0].float()
    nats = torch.nn.functional.cross_entropy(logits, torch.tensor(list(targets)), reduction="sum")
    return Scored(float(nats), len(targets))


class Probe:
    """A method's batches for the controls: the memory of one text, the targets of another."""

    stage: ClassVar[str] = "pretrain"
    # TrainConfig fields the probe's run sets, beside the shared ones
    train_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, parts: MethodParts, config: TrainConfig) -> None:
        self.module: Any = parts.module.eval()
        self.collate: Any = parts.collate
        self.config = config

    def batch(self, memory: str, target: str) -> Any:
        """A one-row batch: ``target``'s tokens read through the compressed ``memory``."""
        raise NotImplementedError

    def decoder(self) -> Any:
        """The LM that reads the compressed tokens."""
        raise NotImplementedError

    def tokenizer(self) -> Any:
        raise NotImplementedError

    def compressor(self, final: Path) -> CompressorSpec:
        raise NotImplementedError

    @classmethod
    def method_options(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The method's own training options (``TrainConfig.extra``) the run sets."""
        return {}

    def targets(self, text: str) -> list[int]:
        """The target token ids of ``text`` read through its own memory, in order."""
        return target_ids(self.batch(text, text))

    @torch.no_grad()
    def score(self, memory: str, target: str) -> Scored:
        batch = self.batch(memory, target)
        return Scored(float(summed_loss(self.module, batch)), int(batch.target_tokens))

    def score_without_memory(self, target: str) -> Scored:
        tokenizer = self.tokenizer()
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else \
            tokenizer.eos_token_id
        return bos_only_loss(self.decoder(), int(bos), self.targets(target))


class EncoderProbe(Probe):
    """500x, ICAE and any method trained by the encoder parts: memory from a frozen base with
    LoRA, read by the same base with the adapter off."""

    def batch(self, memory: str, target: str) -> Any:
        own = self.collate([Example(target, "regeneration", target)])
        if memory == target:
            return own
        donor = self.collate([Example(memory, "regeneration", memory)])
        return replace(own, encoder_ids=donor.encoder_ids, encoder_mask=donor.encoder_mask)

    def decoder(self) -> Any:
        return self.module.soft.base

    def tokenizer(self) -> Any:
        return self.module.soft.tokenizer

    def compressor(self, final: Path) -> CompressorSpec:
        name = str(self.module.soft.method)
        options = {"checkpoint": str(final), "max_context_tokens": self.config.max_context_tokens,
                   **COMPRESSOR_OPTIONS.get(name, {})}
        return CompressorSpec(name, self.config.base, options,
                              DecoderPrompt("regeneration", "", ""))


class GistProbe(Probe):
    """Gist: the context before the gist tokens is the memory; the LM itself is trained."""

    def batch(self, memory: str, target: str) -> Any:
        collate = self.collate
        prompt, _ = collate.example_ids(Example(memory, "regeneration", memory))
        _, answer = collate.example_ids(Example(target, "regeneration", target))
        return pad_rows([(prompt + answer, [IGNORE] * len(prompt) + answer)],
                        int(self.tokenizer().eos_token_id))

    def decoder(self) -> Any:
        return self.module.model

    def tokenizer(self) -> Any:
        return self.collate.tokens.tokenizer

    def compressor(self, final: Path) -> CompressorSpec:
        return CompressorSpec("gist", str(final), {"num_gist_tokens": self.config.num_mem},
                              DecoderPrompt("regeneration", "", ""))


class AutoCompressorProbe(Probe):
    """AutoCompressor: the summary of the memory's segment, then the question and answer as a
    second segment reading it (no context token reaches the answer directly)."""

    stage: ClassVar[str] = "finetune"
    # One backward pass over text, cue and answer: with two substeps the cut falls near the
    # text's end and the summaries reach the answer detached, so no loss trains the encoding.
    train_settings: ClassVar[dict[str, Any]] = {"training_substeps": 1}

    def batch(self, memory: str, target: str) -> Any:
        collate = self.collate
        memory_ids = collate.tokenizer(memory)["input_ids"][:collate.max_context_tokens]
        own_ids = collate.tokenizer(target)["input_ids"][:collate.max_context_tokens]
        ids, labels = collate.example_ids(regeneration_question(target))
        rest, rest_labels = ids[len(own_ids):], labels[len(own_ids):]
        piece = pad_rows([(memory_ids + rest, [IGNORE] * len(memory_ids) + rest_labels)], 0)
        piece = replace(piece, lengths=(len(memory_ids), len(rest)))
        return Substeps((piece,), piece.target_tokens, piece.tokens)

    def decoder(self) -> Any:
        return self.module.model

    def tokenizer(self) -> Any:
        return self.collate.tokenizer

    def compressor(self, final: Path) -> CompressorSpec:
        from bench.compressors.soft.autocompressor.training import QA_PROMPT

        cue = QA_PROMPT.format(question=REGENERATION_QUESTION)
        return CompressorSpec("autocompressor", str(final),
                              {"max_context_tokens": self.config.max_context_tokens},
                              DecoderPrompt("qa", "", " " + cue, REGENERATION_QUESTION))


def shifted_targets(labels: torch.Tensor) -> list[int]:
    """The targets of one row of labels that the loss compares with the logits before them."""
    shifted = labels[1:]
    return [int(token) for token in shifted[shifted != IGNORE]]


class XragProbe(Probe):
    """xRAG: the --retriever embedding of the memory text, projected onto the ``<xRAG>`` token
    of the target text's paraphrase prompt, read by the frozen LLM; the projector is trained."""

    def batch(self, memory: str, target: str) -> Any:
        own = self.collate([Example(target, "regeneration", target)])
        if memory == target:
            return own
        donor = self.collate([Example(memory, "regeneration", memory)])
        return replace(own, documents=donor.documents)

    def targets(self, text: str) -> list[int]:
        return shifted_targets(self.batch(text, text).student.labels[0])

    def decoder(self) -> Any:
        return self.module.llm

    def tokenizer(self) -> Any:
        return self.collate.tokenizer

    def compressor(self, final: Path) -> CompressorSpec:
        options = self.module.options
        return CompressorSpec("xrag", str(final),
                              {"retriever": options.retriever,
                               "retriever_max_length": options.retriever_max_length},
                              DecoderPrompt("regeneration", "", ""))

    @classmethod
    def method_options(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"retriever": str(args.retriever)}


def pisco_rate(context_length: int, num_mem: int) -> int:
    """PISCO's compression rate for a text of ``context_length`` ids and BOS (``n // rate + 1``
    vectors): the largest rate that gives at least ``num_mem`` vectors (``num_mem`` 1: the
    smallest that gives one; 1 where no rate gives as many)."""
    ids = context_length + 1
    return ids + 1 if num_mem == 1 else max(1, ids // (num_mem - 1))


class PiscoProbe(Probe):
    """PISCO: the compressor LM's states at the ``<MEM>`` tokens after the memory text, through
    the connector, in place of the ``<MEM>`` placeholders of the target's auto-encoding prompt
    (one per memory vector), read by the LoRA decoder."""

    def batch(self, memory: str, target: str) -> Any:
        from bench.compressors.soft.pisco.collate import PiscoExample
        from bench.compressors.soft.pisco.layout import clean_text, regeneration_text

        collate = self.collate
        donor = collate.autoencoding(clean_text(memory), random.Random(self.config.seed))
        memories = sum(row.count(collate.compressor_mem) for row in donor.rows)
        tokens = collate.decoder
        text = regeneration_text(memories, tokens.bos_text, tokens.eos_text, clean_text(target))
        return collate.batch([PiscoExample(donor.rows, collate.decoder_ids(text))])

    def targets(self, text: str) -> list[int]:
        return shifted_targets(self.batch(text, text).labels[0])

    def decoder(self) -> Any:
        return self.module.decoder

    def tokenizer(self) -> Any:
        return self.collate.decoder.hf

    def compressor(self, final: Path) -> CompressorSpec:
        return CompressorSpec("pisco", self.config.base, {"checkpoint": str(final)},
                              DecoderPrompt("regeneration", "", ""))

    @classmethod
    def method_options(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"compression_rate": pisco_rate(args.context_length, args.num_mem)}


NAMED_PROBES: dict[str, type[Probe]] = {"gist": GistProbe, "autocompressor": AutoCompressorProbe,
                                        "xrag": XragProbe, "pisco": PiscoProbe}


def probe_class(name: str, method: TrainingMethod) -> type[Probe] | None:
    """The probe of a registered training method: by name, or the encoder probe for every
    method registered with the encoder training parts; None where there is none."""
    if name in NAMED_PROBES:
        return NAMED_PROBES[name]
    parts = method.parts
    if isinstance(parts, partial) and parts.func is soft_parts:
        return EncoderProbe
    return None


def covered_methods() -> tuple[list[str], list[str]]:
    """The registered training methods this benchmark covers, and the others."""
    covered: list[str] = []
    others: list[str] = []
    for name, method in training_methods().items():
        (covered if probe_class(name, method) is not None else others).append(name)
    return covered, others


def regeneration_question(text: str) -> Example:
    return Example(text, "qa", text, REGENERATION_QUESTION, (text,))


# --------------------------------------------------------------------------- texts


def _records(path: Path) -> Iterator[dict[str, Any]]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise InputError("not a JSON record", path, number) from None
            if isinstance(record, dict):
                yield record


def cut_text(tokenizer: Any, text: str, length: int) -> tuple[str, int]:
    """``text`` cut to its first ``length`` tokens, and how many tokens it had (up to
    ``length``)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:length]
    return str(tokenizer.decode(ids, skip_special_tokens=True)).strip(), len(ids)


def file_texts(path: Path, tokenizer: Any, count: int, length: int) -> list[str]:
    """The first ``count`` distinct texts of ``path`` with at least ``length`` tokens, cut."""
    texts: list[str] = []
    seen: set[str] = set()
    for record in _records(path):
        raw = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
        if raw is None:
            continue
        text, tokens = cut_text(tokenizer, raw, length)
        if tokens == length and text not in seen:
            seen.add(text)
            texts.append(text)
            if len(texts) == count:
                return texts
    raise InputError(f"has {len(texts)} texts of at least {length} tokens in a field "
                     f"{' / '.join(TEXT_FIELDS)}; {count} are needed", path)


def sampled_texts(base: str, count: int, length: int, seed: int) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.training.synthetic import sample_texts

    model = AutoModelForCausalLM.from_pretrained(base).eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(base)
    return sample_texts(model, tokenizer, count, length, seed=seed)


def split_texts(texts: list[str], held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) after a seeded shuffle."""
    order = list(texts)
    random.Random(seed).shuffle(order)
    return order[held_out:], order[:held_out]


def write_data(folder: Path, stage: str, train: list[str], held_out: list[str]) -> Path:
    """``train.parquet`` / ``dev.parquet``: texts (pretrain) or the regeneration question."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for name, texts in (("train.parquet", train), ("dev.parquet", held_out)):
        frame = (pd.DataFrame({"text": texts}) if stage == "pretrain" else
                 pd.DataFrame({"context": texts, "question": REGENERATION_QUESTION,
                               "answers": [[text] for text in texts]}))
        frame.to_parquet(folder / name, index=False)
    return folder


# --------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class Row:
    """One method after one step budget: the four controls per held-out text."""

    method: str
    steps: int
    seconds_per_step: float
    own: list[Scored]
    other: list[Scored]
    none: list[Scored]
    step0: list[Scored]
    bleu: float
    rouge_l_f: float
    regenerations: list[str]

    def own_beats_other(self) -> int:
        return sum(own.nats < other.nats for own, other in zip(self.own, self.other, strict=True))

    def bits_per_text(self) -> float:
        """Mean over texts of (other - own) summed nats / ln 2 (both score the same tokens)."""
        saved = [other.nats - own.nats for own, other in zip(self.own, self.other, strict=True)]
        return sum(saved) / len(saved) / math.log(2)

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "steps": self.steps,
                "seconds_per_step": self.seconds_per_step,
                **{name: nats_per_token(getattr(self, name))
                   for name in ("own", "other", "none", "step0")},
                "own_beats_other": self.own_beats_other(), "texts": len(self.own),
                "bits_per_text": self.bits_per_text(), "bleu": self.bleu,
                "rouge_l_f": self.rouge_l_f}


def nats_per_token(scores: Sequence[Scored]) -> float:
    return sum(s.nats for s in scores) / sum(s.tokens for s in scores)


def own_scores(probe: Probe, texts: Sequence[str]) -> list[Scored]:
    return [probe.score(text, text) for text in texts]


def other_scores(probe: Probe, texts: Sequence[str]) -> list[Scored]:
    return [probe.score(texts[(i + 1) % len(texts)], text) for i, text in enumerate(texts)]


@torch.no_grad()
def regenerate(spec: CompressorSpec, texts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy regenerations of ``texts`` by the method's compressor from its export."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors import CompressionRequest, SoftDecoder, TargetModel, build_compressor
    from bench.generation import GenerationSettings

    model = AutoModelForCausalLM.from_pretrained(spec.target, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec.target)
    model.eval()  # type: ignore[no-untyped-call]
    compressor = build_compressor(spec.name, TargetModel(spec.target, tokenizer, model),
                                  spec.options)
    if not isinstance(compressor, SoftDecoder):
        raise TypeError(f"compressor {spec.name} does not decode compressed contexts")
    compressed = compressor.compress([CompressionRequest(context=text) for text in texts])
    outputs = compressor.generate([(item, spec.prompt) for item in compressed],
                                  GenerationSettings(max_new_tokens=max_new_tokens))
    return [output.text for output in outputs]


def regeneration_metrics(predictions: Sequence[str], texts: Sequence[str]
                         ) -> tuple[float, float]:
    """Mean sacrebleu BLEU and Rouge-L-F (bench.metrics) of the regenerations."""
    from bench.metrics import bleu, rouge_l_f

    pairs = list(zip(predictions, texts, strict=True))
    return (sum(bleu(p, t) for p, t in pairs) / len(pairs),
            sum(rouge_l_f(p, t) for p, t in pairs) / len(pairs))


# --------------------------------------------------------------------------- runs


def run_config(name: str, method: TrainingMethod, probe_type: type[Probe],
               args: argparse.Namespace, data: Path, out: Path, steps: int) -> TrainConfig:
    """The training run of ``name`` for ``steps`` steps (method-specific settings only where
    the method reads them)."""
    length = args.context_length
    optional = {"context_length": length, "loss_on_padding": False, "lora": args.lora}
    return TrainConfig(
        stage=probe_type.stage, method=name, base=str(args.base), data=str(data), out=str(out),
        num_mem=args.num_mem, steps=steps, lr=args.lr, batch_size=args.batch_size,
        warmup_steps=args.warmup_steps, eval_every=0, save_every=steps,
        max_context_tokens=length, max_answer_tokens=length, dev_size=args.held_out,
        seed=args.seed, progress=sys.stderr.isatty(), extra=probe_type.method_options(args),
        **{key: value for key, value in {**optional, **probe_type.train_settings}.items()
           if key in method.settings})


def untrained_scores(probe_type: type[Probe], method: TrainingMethod, config: TrainConfig,
                     texts: Sequence[str]) -> list[Scored]:
    """Own-memory scores of the compressor the run starts from (seeded as ``train`` seeds)."""
    from accelerate.utils import set_seed

    set_seed(config.seed)  # what train() sets on its one process (rank 0)
    return own_scores(probe_type(method.parts(config, False, {}), config), texts)


def evaluate_run(probe_type: type[Probe], method: TrainingMethod, config: TrainConfig,
                 texts: Sequence[str]) -> dict[str, Any]:
    """The controls of the trained run in ``config.out`` and its regenerations."""
    final = Path(config.out) / "final"
    trained = replace(config, init_from=str(final))
    probe = probe_type(method.parts(trained, False, {}), config)
    scores = {"own": own_scores(probe, texts), "other": other_scores(probe, texts),
              "none": [probe.score_without_memory(text) for text in texts]}
    spec = probe.compressor(final)
    del probe
    regenerations = regenerate(spec, texts, config.max_context_tokens)
    bleu, rouge = regeneration_metrics(regenerations, texts)
    return {**scores, "bleu": bleu, "rouge_l_f": rouge, "regenerations": regenerations}


def run_method(name: str, texts: tuple[list[str], list[str]], work: Path,
               args: argparse.Namespace) -> Iterator[Row]:
    """Train ``name`` to each budget of ``--steps`` and yield its controls after each."""
    from bench.training.loop import train

    method = training_methods()[name]
    probe_type = probe_class(name, method)
    assert probe_type is not None
    train_texts, held_out = texts
    data = write_data(work / f"data-{probe_type.stage}", probe_type.stage, train_texts, held_out)
    configs = [run_config(name, method, probe_type, args, data, work / f"run-{name}", steps)
               for steps in sorted(set(args.steps))]
    step0 = untrained_scores(probe_type, method, configs[0], held_out)
    for config in configs:
        result = train(config)
        evaluated = evaluate_run(probe_type, method, config, held_out)
        seconds = result.train_seconds / max(len(result.losses), 1)
        yield Row(name, config.steps, seconds, step0=step0, **evaluated)


# --------------------------------------------------------------------------- report

HEADER = (f"{'method':<16} {'steps':>6} {'s/step':>7} {'own':>7} {'other':>7} {'none':>7} "
          f"{'step 0':>7} {'own<other':>10} {'bits/text':>10} {'BLEU':>6} {'Rouge-L':>7}")


def table_line(row: Row) -> str:
    s = row.summary()
    wins = f"{s['own_beats_other']}/{s['texts']}"
    return (f"{row.method:<16} {row.steps:>6} {row.seconds_per_step:>7.2f} {s['own']:>7.3f} "
            f"{s['other']:>7.3f} {s['none']:>7.3f} {s['step0']:>7.3f} {wins:>10} "
            f"{s['bits_per_text']:>10.1f} {row.bleu:>6.3f} {row.rouge_l_f:>7.3f}")


def write_json(path: Path, rows: Sequence[Row], setup: dict[str, Any]) -> None:
    from bench.substrate.atomic import atomic_write_json

    atomic_write_json(path, {"setup": setup, "rows": [
        {**row.summary(), "per_text": {name: [asdict(s) for s in getattr(row, name)]
                                       for name in ("own", "other", "none", "step0")},
         "regenerations": row.regenerations} for row in rows]})


def load_texts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(train, held-out) texts of ``--context-length`` tokens."""
    from transformers import AutoTokenizer

    count = args.train_texts + args.held_out
    length = args.context_length
    if args.texts == "sampled":
        tokenizer = AutoTokenizer.from_pretrained(str(args.base))
        texts = [cut_text(tokenizer, text, length)[0]
                 for text in sampled_texts(str(args.base), count, length, args.seed)]
    else:
        texts = file_texts(Path(args.texts), AutoTokenizer.from_pretrained(str(args.base)),
                           count, length)
    return split_texts(texts, args.held_out, args.seed)


def chosen_methods(requested: Sequence[str] | None) -> list[str]:
    covered, others = covered_methods()
    if not requested:
        if others:
            print(f"not covered (no probe for their training module): {', '.join(others)}")
        return covered
    for name in requested:
        if name not in covered:
            raise InputError(f"method {name!r} is not covered; covered: {', '.join(covered)}",
                             field="--method")
    return list(requested)


def report(args: argparse.Namespace, work: Path) -> list[Row]:
    methods = chosen_methods(args.method)
    texts = load_texts(args)
    print(f"base {args.base}; {len(texts[0])} training and {len(texts[1])} held-out texts of "
          f"{args.context_length} tokens ({args.texts}); k={args.num_mem}; seed {args.seed}\n"
          f"{HEADER}", flush=True)
    rows: list[Row] = []
    for name in methods:
        for row in run_method(name, texts, work, args):
            rows.append(row)
            print(table_line(row), flush=True)
    if args.json is not None:
        write_json(args.json, rows, {key: str(value) for key, value in vars(args).items()})
    return rows


# --------------------------------------------------------------------------- command line


def _at_least(least: int, text: str) -> int:
    value = int(text)
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    covered, _ = covered_methods()
    p = argparse.ArgumentParser(prog="bench_information_flow.py", description=__doc__,
                                formatter_class=RawHelpFormatter)
    p.add_argument("--method", nargs="+", choices=sorted(training_methods()),
                   help=f"training methods (default: every registered one this benchmark "
                        f"covers, now {', '.join(covered)})")
    p.add_argument("--base", default=str(DEFAULT_BASE),
                   help="base LM: a Hugging Face causal LM folder or hub id")
    p.add_argument("--texts", default="sampled",
                   help="'sampled' (from the base) or a JSON-lines file (.jsonl[.gz])")
    p.add_argument("--steps", type=partial(_at_least, 1), nargs="+", default=[40, 150],
                   help="optimizer step budgets; each later one continues the run")
    p.add_argument("--num-mem", type=partial(_at_least, 1), default=4,
                   help="compressed tokens k (memory slots, gist tokens, summary length)")
    p.add_argument("--context-length", type=partial(_at_least, 2), default=48,
                   help="tokens per text (base tokenizer); also the encoder's context length")
    p.add_argument("--train-texts", type=partial(_at_least, 1), default=184,
                   help="training texts")
    p.add_argument("--held-out", type=partial(_at_least, 2), default=16,
                   help="held-out texts the controls are measured on")
    p.add_argument("--batch-size", type=partial(_at_least, 1), default=4,
                   help="examples per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    p.add_argument("--warmup-steps", type=partial(_at_least, 0), default=2,
                   help="linear warm-up steps, then constant")
    p.add_argument("--lora", action="store_true",
                   help="gist / AutoCompressor: train LoRA adapters instead of the whole LM")
    p.add_argument("--retriever", default=DEFAULT_RETRIEVER,
                   help="xRAG: the frozen sentence embedder (hub id or folder) whose last-token "
                        "state is projected; on a CPU pass the --base itself")
    p.add_argument("--seed", type=int, default=0, help="data split, initialisation, order")
    p.add_argument("--threads", type=partial(_at_least, 1), default=1,
                   help="torch CPU threads")
    p.add_argument("--out", type=Path,
                   help="keep the data and runs here (an existing run resumes); default: a "
                        "temporary folder, removed at the end")
    p.add_argument("--json", type=Path,
                   help="also write the rows with per-text scores and regenerations as JSON "
                        "(default: print only)")
    add_debug_flag(p)
    return p


def _run(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    if args.out is not None:
        report(args, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report(args, Path(tmp))
    print(f"\n{time.perf_counter() - began:.0f} s in all", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, argv, failures=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
