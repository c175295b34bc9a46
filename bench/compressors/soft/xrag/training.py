"""Training xRAG's projector (``python -m bench.train pretrain|finetune --method xrag``), as
the reference's ``train.py`` does with ``update_projector_only``: the LLM and the retriever
stay frozen; only the projector learns.

* Pretraining (paraphrase): the LLM regenerates a document after a paraphrase instruction
  (drawn per document from :data:`~.prompts.PARAPHRASE_INSTRUCTIONS`, seeded) holding its one
  ``<xRAG>`` vector; loss: ``alpha_nll`` x NLL of the document and ``</s>``. The base LLM gets
  ``<pad>`` (when it has no pad token) and ``<xRAG>``, its new embedding rows drawn from
  N(0, initializer_range); the projector is drawn the same way (biases 0), seeded.
* Fine-tuning (``--init-from`` the pretraining's ``final/``): the context is cut into pieces of
  ``retriever_max_length`` retriever tokens, one ``<xRAG>`` each; loss: ``alpha_nll`` x NLL of
  the answer and ``</s>`` + ``alpha_kl`` x KL(teacher || student) at temperature
  ``kl_temperature`` (times T squared), the teacher being the same LLM reading the context as
  text. The KL compares the logits at the answer's label positions of both inputs, unshifted,
  as the reference does; an example whose student and teacher answers differ in length after
  the ``max_seq_length`` cut is left out, as the reference filters it.

Batches are left-padded with attention masks and no position ids, as the reference's collator
feeds them (positions count from the first pad). The loss of a step is the summed token loss
over the target tokens of the global batch: the reference's NLL mean plus batch-mean KL. The
export ``final/`` is the released layout (:mod:`.checkpoint`): the whole LLM with the projector
as ``projector.projector.*`` in safetensors, ``config.json`` with
``projector_type`` and ``retriever_hidden_size``, and the tokenizer with ``<xRAG>``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.xrag.checkpoint import XragCheckpointError, read_checkpoint
from bench.compressors.soft.xrag.compressor import DEFAULT_RETRIEVER, overwrite_placeholders
from bench.compressors.soft.xrag.projector import Projector, projector_depth
from bench.compressors.soft.xrag.prompts import (
    IGNORE_INDEX,
    PAD_TOKEN,
    PARAPHRASE_INSTRUCTIONS,
    XRAG_TOKEN,
    LabelledIds,
    finetuning_examples,
    pretraining_example,
)
from bench.compressors.soft.xrag.retriever import (
    DocumentBatch,
    document_batch,
    document_ids,
    last_token_embeddings,
    load_retriever,
    pad_id,
    split_by_tokens,
)
from bench.substrate.atomic import atomic_write_text
from bench.substrate.errors import InputError
from bench.training.config import STAGES, TrainConfig
from bench.training.example import Example
from bench.training.method import MethodParts, TokenBatch
from bench.training.registry import TrainingMethod, register_training_method

NAME = "xrag"
MAX_SEQ_LENGTH = {"pretrain": 336, "finetune": 1024}
"""The reference's LLM tokens per example of each stage."""


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass(frozen=True)
class XragTrainingOptions:
    """The options of ``--method xrag`` (flags of ``python -m bench.train``)."""

    retriever: str = field(default=DEFAULT_RETRIEVER, metadata=_help(
        "the frozen sentence embedder whose document embeddings the projector reads (hub id "
        "or folder)"))
    retriever_max_length: int = field(default=180, metadata=_help(
        "retriever tokens per document; fine-tuning also cuts the context into pieces of this "
        "many tokens, one <xRAG> each"))
    max_seq_length: int | None = field(default=None, metadata=_help(
        "LLM tokens per example; none: the reference's 336 (pretrain) or 1024 (finetune)"))
    alpha_nll: float = field(default=1.0, metadata=_help("weight of the NLL loss"))
    alpha_kl: float = field(default=2.0, metadata=_help(
        "finetune: weight of KL(teacher || student), the teacher reading the context as text "
        "(0: NLL only)"))
    kl_temperature: float = field(default=1.0, metadata=_help(
        "finetune: temperature of the KL loss"))
    projector_type: str = field(default="mlp2x_gelu", metadata=_help(
        "pretrain: the projector built on the base (mlp<N>x_gelu)"))

    def __post_init__(self) -> None:
        for name in ("retriever_max_length", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise _bad_option(name, f"must be a whole number >= 1, got {value}")
        for name in ("alpha_nll", "alpha_kl"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise _bad_option(name, f"must be a finite number >= 0, got {value}")
        if self.alpha_nll == self.alpha_kl == 0:
            raise _bad_option("alpha_nll", "alpha_nll and alpha_kl are both 0: no loss to train")
        if not (math.isfinite(self.kl_temperature) and self.kl_temperature > 0):
            raise _bad_option("kl_temperature", f"must be a finite number > 0, got "
                                                f"{self.kl_temperature}")
        try:
            projector_depth(self.projector_type)
        except ValueError as error:
            raise _bad_option("projector_type", str(error)) from None

    def seq_length(self, stage: str) -> int:
        return self.max_seq_length or MAX_SEQ_LENGTH[stage]


def _bad_option(name: str, problem: str) -> InputError:
    return InputError(problem, field="--" + name.replace("_", "-"))


def add_xrag_tokens(model: Any, tokenizer: Any) -> int:
    """Give ``tokenizer`` a pad token (``<pad>``, when it has none) and ``<xRAG>`` (when it
    has none), and the model embedding rows for them (drawn from N(0, initializer_range));
    the id of ``<xRAG>``. ``<xRAG>`` is matched before normalisation, so the text around it
    is tokenised as the reference's slow tokenizer did (a space on each side stays a ``▁``
    piece of its own)."""
    from tokenizers import AddedToken

    added = 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if XRAG_TOKEN not in tokenizer.get_vocab():
        added += tokenizer.add_tokens([AddedToken(XRAG_TOKEN, lstrip=False, rstrip=False,
                                                  normalized=False)])
    if added:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return int(tokenizer.convert_tokens_to_ids(XRAG_TOKEN))


@dataclass
class XragLlm:
    """The LLM with its xRAG tokens, its tokenizer and the projector."""

    tokenizer: Any
    llm: Any
    projector: Projector
    xrag_id: int


def build_llm(config: TrainConfig, cuda: bool, options: XragTrainingOptions,
              retriever_hidden_size: int) -> XragLlm:
    """The run's LLM (``--init-from`` else ``--base``) and projector (the checkpoint's, else
    a new one); the same on every call for the same settings (seeded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = config.init_from or config.base
    revision = None if config.init_from else config.revision
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    llm = AutoModelForCausalLM.from_pretrained(source, revision=revision,
                                               dtype=config.torch_dtype(cuda),
                                               low_cpu_mem_usage=True)
    llm.requires_grad_(False)
    if config.gradient_checkpointing:
        llm.gradient_checkpointing_enable()  # type: ignore[no-untyped-call]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        xrag_id = add_xrag_tokens(llm, tokenizer)
        projector = _starting_projector(config, options, llm, retriever_hidden_size)
    llm.requires_grad_(False)
    return XragLlm(tokenizer, llm, projector, xrag_id)


def _starting_projector(config: TrainConfig, options: XragTrainingOptions, llm: Any,
                        retriever_hidden_size: int) -> Projector:
    hidden = int(llm.config.hidden_size)
    if config.init_from:
        projector = read_checkpoint(config.init_from).projector()
        if projector.in_features != retriever_hidden_size:
            raise XragCheckpointError(
                f"its projector reads embeddings of {projector.in_features} values but the "
                f"retriever {options.retriever} gives {retriever_hidden_size}",
                config.init_from, hint="pass the retriever it was trained with as --retriever")
        return projector
    projector = Projector(options.projector_type, retriever_hidden_size, hidden)
    projector.init_weights(float(llm.config.initializer_range))
    return projector


def left_padded(rows: Sequence[LabelledIds], padding: int) -> TokenBatch:
    """``rows`` left-padded with ``padding`` (labels ``IGNORE_INDEX``, ``valid`` 0 there)."""
    width = max(len(row.input_ids) for row in rows)
    ids = torch.full((len(rows), width), padding, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        start = width - len(row.input_ids)
        ids[index, start:] = torch.tensor(row.input_ids, dtype=torch.long)
        labels[index, start:] = torch.tensor(row.labels, dtype=torch.long)
        valid[index, start:] = 1
    return TokenBatch(ids, labels, valid)


@dataclass(frozen=True)
class XragBatch:
    """A training batch: the student rows (``<xRAG>`` tokens), the retriever rows of their
    documents (in the order of the tokens) and, for the KL loss, the teacher rows."""

    student: TokenBatch
    documents: DocumentBatch
    teacher: TokenBatch | None = None

    @property
    def target_tokens(self) -> int:
        return self.student.target_tokens

    @property
    def tokens(self) -> int:
        teacher = self.teacher.tokens if self.teacher is not None else 0
        return self.student.tokens + self.documents.tokens + teacher

    def to(self, device: torch.device | str, non_blocking: bool = False) -> XragBatch:
        teacher = self.teacher.to(device, non_blocking) if self.teacher is not None else None
        return XragBatch(self.student.to(device, non_blocking),
                         self.documents.to(device, non_blocking), teacher)


def seeded_instruction(seed: int, document: str) -> int:
    """The paraphrase instruction of ``document``: drawn once per document and seed, so an
    example keeps its instruction across epochs, processes and resumed runs."""
    return random.Random(f"{seed}\0{document}").randrange(len(PARAPHRASE_INSTRUCTIONS))


@dataclass(frozen=True)
class XragCollator:
    """Tokenises examples into one :class:`XragBatch` (see the module docstring)."""

    tokenizer: Any
    retriever_tokenizer: Any
    stage: str
    max_seq_length: int
    retriever_max_length: int
    with_teacher: bool
    instruction_of: Callable[[str], int]

    def pretraining_row(self, example: Example) -> tuple[LabelledIds, list[str]]:
        document = example.context.strip()
        row = pretraining_example(self.tokenizer, document, self.instruction_of(document),
                                  self.max_seq_length)
        return row, [document]

    def finetuning_rows(self, example: Example
                        ) -> tuple[LabelledIds, LabelledIds, list[str]] | None:
        """Student and teacher rows and the documents of a QA example; None when the
        reference would leave it out (no answer left, or answers of different lengths)."""
        if example.question is None:
            raise ValueError("xrag fine-tuning needs QA examples")
        chunks = split_by_tokens(self.retriever_tokenizer, example.context,
                                 self.retriever_max_length, self.max_seq_length)
        student, teacher = finetuning_examples(self.tokenizer, chunks, example.context,
                                               example.question, example.target,
                                               self.max_seq_length)
        if student.targets == 0 or teacher.targets == 0:
            return None
        if self.with_teacher and student.targets != teacher.targets:
            return None
        return student, teacher, chunks

    def __call__(self, examples: Sequence[Example]) -> XragBatch:
        students: list[LabelledIds] = []
        teachers: list[LabelledIds] = []
        documents: list[str] = []
        for example in examples:
            if self.stage == "pretrain":
                row, docs = self.pretraining_row(example)
            else:
                rows = self.finetuning_rows(example)
                if rows is None:
                    continue
                row, teacher, docs = rows
                teachers.append(teacher)
            students.append(row)
            documents.extend(docs)
        if not students:
            raise ValueError(f"xrag: no example of this batch keeps an answer within "
                             f"--max-seq-length {self.max_seq_length}")
        padding = int(self.tokenizer.pad_token_id)
        retriever_rows = document_ids(self.retriever_tokenizer, documents,
                                      self.retriever_max_length)
        teacher_batch = left_padded(teachers, padding) if self.with_teacher else None
        return XragBatch(left_padded(students, padding),
                         document_batch(retriever_rows, pad_id(self.retriever_tokenizer)),
                         teacher_batch)


def kl_sum(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Summed KL(teacher || student) over rows of logits, at ``temperature``, times its
    square."""
    log_student = F.log_softmax(student / temperature, dim=-1)
    target = F.softmax(teacher / temperature, dim=-1)
    return F.kl_div(log_student, target, reduction="sum") * temperature ** 2


@contextlib.contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Run the block with ``module`` in eval mode (the reference's teacher pass)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class XragTrainingModule(nn.Module):
    """The frozen LLM and retriever with the trained projector; ``forward(batch)`` gives the
    batch's summed token loss."""

    def __init__(self, llm: Any, projector: Projector, retriever: Any, xrag_id: int,
                 options: XragTrainingOptions) -> None:
        super().__init__()
        self.llm = llm
        self.projector = projector
        self.retriever = retriever
        self.xrag_id = xrag_id
        self.options = options

    def vectors(self, documents: DocumentBatch) -> torch.Tensor:
        """The projected embeddings of the batch's documents (gradient: projector only)."""
        with torch.no_grad():
            embeddings = last_token_embeddings(self.retriever, documents)
        projected: torch.Tensor = self.projector(embeddings)
        return projected

    def logits(self, rows: TokenBatch, vectors: torch.Tensor | None) -> torch.Tensor:
        """LLM logits of ``rows``, their ``<xRAG>`` rows overwritten by ``vectors``."""
        embeds = input_embedding(self.llm)(rows.input_ids)
        if vectors is not None:
            embeds = overwrite_placeholders(embeds, rows.input_ids == self.xrag_id, vectors)
        out = self.llm(inputs_embeds=embeds, attention_mask=rows.valid, use_cache=False)
        logits: torch.Tensor = out.logits
        return logits.float()

    def forward(self, batch: XragBatch) -> torch.Tensor:
        student = batch.student
        logits = self.logits(student, self.vectors(batch.documents))
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                              student.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX,
                              reduction="sum")
        loss = self.options.alpha_nll * nll
        if batch.teacher is not None:
            with torch.no_grad(), evaluation_mode(self.llm):
                teacher = self.logits(batch.teacher, None)
            selected = teacher[batch.teacher.labels != IGNORE_INDEX]
            kl = kl_sum(logits[student.labels != IGNORE_INDEX], selected,
                        self.options.kl_temperature)
            loss = loss + self.options.alpha_kl * kl
        return loss


def retriever_hidden_size(name: str) -> int:
    """The hidden size of retriever ``name``, from its config."""
    from transformers import AutoConfig

    from bench.hub import load_from_hub

    config = load_from_hub(lambda: AutoConfig.from_pretrained(name), name, "retriever",
                           "--retriever")
    return int(config.hidden_size)


def save_xrag_model(directory: Path, built: XragLlm, inputs: dict[str, Any]) -> None:
    """Write the released layout: the LLM with the projector, its config and tokenizer."""
    llm, projector = built.llm, built.projector
    dtype = input_embedding(llm).weight.dtype
    state = {**llm.state_dict(),
             **{name: tensor.to(dtype) for name, tensor in projector.released_state().items()}}
    llm.save_pretrained(directory, state_dict=state, safe_serialization=True)
    built.tokenizer.save_pretrained(directory)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.update(projector_type=projector.projector_type,
                  retriever_hidden_size=projector.in_features, training_inputs=inputs,
                  architectures=["X" + name for name in config.get("architectures") or []])
    atomic_write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _export(config: TrainConfig, options: XragTrainingOptions, inputs: dict[str, Any],
            directory: Path, weights: dict[str, torch.Tensor], final: bool) -> None:
    built = build_llm(config, False, options, retriever_hidden_size(options.retriever))
    trained = {name: tensor for name, tensor in weights.items() if name.startswith("projector.")}
    built.projector.load_state_dict({name[len("projector."):]: tensor
                                     for name, tensor in trained.items()})
    save_xrag_model(directory, built, inputs)


def xrag_parts(config: TrainConfig, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
    """The parts of an xRAG training run."""
    options: XragTrainingOptions = XRAG.options_of(config.extra)
    retriever = load_retriever(options.retriever, config.torch_dtype(cuda), torch.device("cpu"),
                               options.retriever_max_length, "--retriever")
    built = build_llm(config, cuda, options, retriever.hidden_size)
    with_teacher = config.stage == "finetune" and options.alpha_kl > 0
    module = XragTrainingModule(built.llm, built.projector, retriever.model, built.xrag_id,
                                options)
    collate = XragCollator(built.tokenizer, retriever.tokenizer, config.stage,
                           options.seq_length(config.stage), options.retriever_max_length,
                           with_teacher, partial(seeded_instruction, config.seed))
    return MethodParts(module=module, collate=collate, base=built.llm,
                       export=partial(_export, config, options, inputs),
                       checkpoint_export=False)


XRAG = register_training_method(TrainingMethod(
    name=NAME,
    summary="the projector from a frozen retriever's document embedding to one LLM input "
            "vector; writes the released xRAG model layout",
    parts=xrag_parts, options=XragTrainingOptions, every_parameter_trained_in=STAGES))
