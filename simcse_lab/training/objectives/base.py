"""The objective interface, its shared setup and the name -> class registry.

An objective turns pretokenised examples into a loss in three steps, each a method a subclass fills in:

- ``collate(examples, step)``: this process's examples -> model inputs (views are built next to their loss);
- ``embed(model, batch)``: the model's sentence vectors, as a tuple (only embedding happens here);
- ``loss_from_embeddings(*embeddings)``: pure tensor math, which also owns the cross-process
  handling: local anchors are scored against candidates gathered from every rank
  (:mod:`simcse_lab.runtime.distributed`), so DDP's gradient mean is already exact and the training
  loop multiplies nothing by the world size.

``forward(model, batch)`` chains the last two (and adds the auxiliary MLM term under ``--do-mlm``).
What an objective reads is declared on the class: ``data_columns`` text columns per example (1: a sentence;
sup: 3, sentence / positive / hard negative) and ``with_index`` (``collate`` gets ``(index, ids)`` pairs, as
ESimCSE's per-sentence repetition draws need); the loader picks and checks the columns from them.

``--cos-reg WEIGHT`` (:meth:`Objective.add_cos_reg`, any objective) adds ``WEIGHT * R(z)``, the cosine
regulariser of :mod:`.cos_reg`, where ``z`` are the *anchors' embeddings of the global batch*: the first
tensor ``embed`` returns (unsup: the first dropout view; sup: the anchor sentences, not their entailments or
contradictions; esimcse: the original sentences, not their repetitions nor the momentum queue), gathered from
every rank with the same gradient-carrying gather as the contrastive candidates. Every rank then adds the same
global-batch penalty, so DDP's gradient mean is exactly its gradient (as for the contrastive loss; checked by
tests/integration/test_distributed.py). The parts are kept in ``loss_parts`` (``contrastive``, ``cos_reg`` = the unweighted
R, ``mlm`` under ``--do-mlm``) for the metrics log; without the option nothing changes, not even a bit.

An objective's own options (ESimCSE's ``dup_rate`` ..., sup's ``hard_negative_weight``, PromptBERT's templates) are
declared in :mod:`simcse_lab.training.objective_options` and named on the class (``options``); ``register`` checks
the two agree. They are config fields and flags like any other; ``from_config`` reads them. An objective may put its
views in templates (:meth:`Objective.pad_views`) and set the model's own (``SimCSEEmbedder.set_template``), which
then flows with the model: its recipe, eval, index, search, export.

Hooks with no-op defaults: ``after_step(model)`` (after each optimizer step), ``extra_state()`` /
``load_extra_state(state)`` (what a checkpoint must keep beyond the model, e.g. ESimCSE's queue).
A new objective is a subclass decorated with ``@register("name")``; tests/training/test_objective_plugin.py
plugs one in from outside the package and trains it through the unchanged loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.modeling.batching import pad_batch
from simcse_lab.modeling.pooling import embed_mask, instruction_prefix
from simcse_lab.modeling.template import TEMPLATE_ENTRY, InputFormat
from simcse_lab.runtime.distributed import gather_with_grad, global_targets
from simcse_lab.training.config import MASKED_TOKEN_OBJECTIVES, OBJECTIVE_NAMES
from simcse_lab.training.mlm import MaskedLMAuxiliary
from simcse_lab.training.objective_options import Option, check_declared
from simcse_lab.training.objectives.cos_reg import CosineRegularizer

OBJECTIVES: dict[str, type[Objective]] = {}


def register(name: str):
    """Class decorator: make an :class:`Objective` subclass available as ``--objective name``."""
    def add(cls: type[Objective]) -> type[Objective]:
        check_declared(name, cls.options)
        OBJECTIVES[name] = cls
        if name not in OBJECTIVE_NAMES:
            OBJECTIVE_NAMES.append(name)
        if cls.masked_tokens and name not in MASKED_TOKEN_OBJECTIVES:
            MASKED_TOKEN_OBJECTIVES.append(name)
        return cls
    return add


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) cosine similarities, computed in fp32."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """InfoNCE from the logits of this rank's anchors (rows) against the candidates of the global batch
    (columns, gathered with :func:`gather_with_grad`, further negatives may follow): the positive of
    anchor i is candidate ``rank * local batch + i``. The mean over this rank's anchors."""
    return F.cross_entropy(logits, global_targets(len(logits), logits.device))


class Objective(nn.Module):
    """Base class of the training objectives (see the module docstring)."""

    data_columns: int = 1     # text columns per example: sentence[, positive[, hard negative]]
    with_index: bool = False  # collate receives (example index, ids) pairs
    masked_tokens: bool = False  # the objective is the masked-token loss itself (mntp): the model needs its LM head
    forward_only_inputs: tuple[str, ...] = ()  # batch inputs encoded without gradient (throughput counts a forward)
    options: tuple[Option, ...] = ()  # its own options (training/objective_options.py): config fields, flags, checks

    def __init__(self, tokenizer, temperature: float = 0.05):
        super().__init__()
        self.pad_id = tokenizer.pad_token_id
        self.with_types = "token_type_ids" in tokenizer.model_input_names  # only where the tokenizer uses them
        self.temperature = temperature
        self.mlm: MaskedLMAuxiliary | None = None
        self.mlm_weight = 0.0
        self.cos_reg: CosineRegularizer | None = None
        self.loss_parts: dict[str, torch.Tensor] = {}  # detached parts of the last loss (with --cos-reg)
        self.instruction_tokens = 0  # leading tokens of every row that are the instruction's (--instruction)
        self.max_positions: int | None = None  # the model's token limit: a template cuts the sentence to fit it

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder: nn.Module) -> Objective:
        """The objective a TrainConfig asks for; override to read more options."""
        return cls(tokenizer, cfg.temperature)

    @classmethod
    def check_run(cls, cfg) -> None:
        """Checks of the run's settings that need the model's tokenizer (e.g. a template's mask token), made by
        ``train`` before the run directory is claimed or any weights load; a bad setting is one line (default:
        nothing to check)."""

    def add_mlm(self, tokenizer, weight: float, masking: MaskedLMAuxiliary | None = None) -> None:
        """SimCSE's auxiliary MLM loss (``--do-mlm``; MNTP on a decoder): a per-rank term, so DDP's mean is exact
        for it too. ``masking``: the run's (:meth:`MaskedLMAuxiliary.for_run`); default BERT's MLM at 15%."""
        self.mlm, self.mlm_weight = masking or MaskedLMAuxiliary(None, tokenizer), weight

    def add_instruction(self, tokenizer, instruction: str, max_length: int) -> None:
        """``--instruction``: the data is tokenised as instruction + sentence (the examples' cache keys it); each
        batch :meth:`pad` builds then carries ``embed_mask`` without the instruction's tokens, as encoding does."""
        self.instruction_tokens = instruction_prefix(tokenizer, instruction, max_length)

    def add_cos_reg(self, weight: float) -> None:
        """The cosine regulariser on the global batch's anchor embeddings (``--cos-reg``; see the module docstring)."""
        self.cos_reg = CosineRegularizer(weight)

    def pad(self, token_ids: list[list[int]], text: InputFormat | None = None) -> dict:
        """Dynamically padded model inputs of single sentences (token_type_ids all 0). ``text``: the template the rows
        are put in (:class:`~simcse_lab.modeling.template.InputFormat`), as :meth:`pad_views` does."""
        if text is not None:
            return self.pad_views([token_ids], [text])
        batch = pad_batch(token_ids, self.pad_id, [[0] * len(ids) for ids in token_ids] if self.with_types else None)
        if self.instruction_tokens:
            batch["embed_mask"] = embed_mask(batch["attention_mask"], self.instruction_tokens)
        return batch

    def pad_views(self, views: list[list[list[int]]], texts: list[InputFormat]) -> dict:
        """One batch of several views' rows, view after view, each view's sentences put in its own template
        (``texts``: each view's :class:`~simcse_lab.modeling.template.InputFormat`, its ``index`` among the model's
        templates: :meth:`~simcse_lab.modeling.embedder.SimCSEEmbedder.add_template`), the sentence cut to the
        model's limit, never the template. The batch carries ``template_mask``, which the ``mask`` pooler and
        template denoising read."""
        rows, spans = [], []
        for token_ids, text in zip(views, texts, strict=True):
            wrapped, _ = text.wrap(token_ids, None, self.max_positions)
            spans.append((len(rows), len(rows) + len(wrapped), text))
            rows += wrapped
        batch = self.pad(rows)
        marks = torch.zeros_like(batch["input_ids"])
        for start, end, text in spans:
            if text.template is not None:
                marks[start:end] = text.mark({"input_ids": batch["input_ids"][start:end]})[TEMPLATE_ENTRY]
        batch[TEMPLATE_ENTRY] = marks
        return batch

    def collate(self, examples: list, step: int) -> dict:
        raise NotImplementedError

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def loss_from_embeddings(self, *embeddings: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model, batch: dict) -> torch.Tensor:
        if self.cos_reg is not None:
            return self._forward_with_cos_reg(model, batch)
        if self.mlm is None:
            return self.loss_from_embeddings(*self.embed(model, batch))
        net = self.mlm.wrapping(model)
        return self.loss_from_embeddings(*self.embed(net, batch)) + self.mlm_weight * net.loss

    def _forward_with_cos_reg(self, model, batch: dict) -> torch.Tensor:
        net = model if self.mlm is None else self.mlm.wrapping(model)
        embeddings = self.embed(net, batch)
        contrastive = self.loss_from_embeddings(*embeddings)
        penalty = self.cos_reg.penalty(gather_with_grad(embeddings[0]))  # the same R on every rank
        loss = contrastive + self.cos_reg.weight * penalty
        self.loss_parts = {"contrastive": contrastive.detach(), "cos_reg": penalty.detach()}
        if self.mlm is not None:
            loss = loss + self.mlm_weight * net.loss
            self.loss_parts["mlm"] = net.loss.detach()
        return loss

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step with the (unwrapped) model."""

    def extra_state(self) -> dict:
        """State a checkpoint must keep besides model, optimizer and schedule (empty: none)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""
