"""ConPVP (Zeng et al., EMNLP 2022 Findings, lemon0830/promptCSE): contrastive learning with prompt-derived
virtual semantic prototypes.

Each sentence gives three views, all read at a template's mask token less the template-only pass
(:mod:`simcse_lab.modeling.continuous_prompt`):

- the anchor ``z1``: the sentence in the continuous prompt ``{sentence} [PAD]*L [MASK] .``, whose ``L`` places hold
  learned vectors (``--prompt-length L``; part of the model, saved with it: this is how the model embeds a
  sentence afterwards too);
- the positive prototype ``z2``: the sentence in a template drawn per example from the prototype list;
- the negative prototype ``n1``: the same sentence in that template's negated form.

The draw is keyed by (seed, step, example index), so a run and its resume draw the same templates. The loss is
InfoNCE over ``[cos(z1, z2_all) || cos(z1, n1_all)] / τ`` with the anchor's own positive prototype as target, where
``z2_all`` and ``n1_all`` are the prototypes of the GLOBAL batch (gathered from every process with the
gradient-carrying gather, as unsup / sup): every other sentence's prototypes and every negative prototype, the
anchor's own included, are negatives.

Prototype templates: ``--prototype-templates FILE`` of ``positive<TAB>negative`` lines, default the paper's
(:mod:`simcse_lab.training.prototypes`).
"""

from __future__ import annotations

import random

import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.continuous_prompt import ContinuousPrompt, anchor_template, check_no_slots
from simcse_lab.modeling.template import TemplateTokens, compile_template
from simcse_lab.runtime.distributed import gather_with_grad
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS
from simcse_lab.training.objectives.base import Objective, cosine_matrix, info_nce, register
from simcse_lab.training.prototypes import prototype_pairs


def compile_prototypes(tokenizer, pairs, where: str) -> list[tuple[TemplateTokens, TemplateTokens]]:
    """Each (positive, negative) pair tokenised; a template the tokenizer cannot read at a mask token is one line."""
    def compiled(text: str, which: str) -> TemplateTokens:
        return check_no_slots(compile_template(tokenizer, text, f"{where}: {which}"), tokenizer.pad_token_id)
    return [(compiled(pos, f"pair {i} positive"), compiled(neg, f"pair {i} negative"))
            for i, (pos, neg) in enumerate(pairs, 1)]


def check_encoder(family) -> None:
    """ConPVP reads a masked-language model's [MASK]: a decoder LLM family is one line."""
    if family.causal:
        raise UserError(f"--objective conpvp reads a masked-language model's [MASK] state; the {family.name} family "
                        f"is a decoder LLM: use an encoder (BERT, RoBERTa, ...)")


def run_templates(cfg, tokenizer) -> list[tuple[TemplateTokens, TemplateTokens]]:
    """The run's prototype pairs tokenised, once the anchor template is known to fit the tokenizer (one line if not)."""
    anchor_template(tokenizer, cfg.prompt_length)
    where = cfg.prototype_templates or "the default prototype templates"
    return compile_prototypes(tokenizer, prototype_pairs(cfg.prototype_templates), where)


@register("conpvp")
class ConPVP(Objective):
    with_index = True  # the prototype draw is keyed by the example's index
    options = OBJECTIVE_OPTIONS["conpvp"]  # prompt_length, prototype_templates

    def __init__(self, tokenizer, prompt: ContinuousPrompt, prototypes: list[tuple[TemplateTokens, TemplateTokens]],
                 temperature: float = 0.05, seed: int = 42):
        super().__init__(tokenizer, temperature)
        self.prompt = prompt  # the model's own (the embedder holds it); here to build the anchor rows
        self.prototypes = prototypes
        self.seed = seed

    @classmethod
    def check_run(cls, cfg) -> None:
        """An encoder family, and the anchor's and prototype templates against the model's tokenizer (its mask and pad
        tokens), before anything is written."""
        from simcse_lab.modeling.embedder import backbone_config, backbone_path
        from simcse_lab.modeling.families import family_of
        from simcse_lab.modeling.loading import load_tokenizer

        path = backbone_path(cfg.model)
        check_encoder(family_of(backbone_config(cfg.model, path)))
        run_templates(cfg, load_tokenizer(path))

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder) -> ConPVP:
        check_encoder(embedder.family)
        prototypes = run_templates(cfg, tokenizer)
        prompt = embedder.add_continuous_prompt(tokenizer, cfg.prompt_length)
        return cls(tokenizer, prompt, prototypes, cfg.temperature, cfg.seed)

    def draw(self, step: int, index: int) -> tuple[TemplateTokens, TemplateTokens]:
        """The (positive, negative) pair of example ``index`` at ``step``: the same on every run and resume."""
        return self.prototypes[random.Random(f"{self.seed}-{step}-{index}").randrange(len(self.prototypes))]

    def collate(self, examples: list[tuple[int, list[int]]], step: int) -> dict:
        """``examples`` are (sentence index, token ids): 3N prompted rows, anchors / positives / negatives."""
        pairs = [self.draw(step, index) for index, _ in examples]
        anchors = self.prompt.rows([ids for _, ids in examples])
        positives = [self.prompt.builder.row(ids, pair[0]) for (_, ids), pair in zip(examples, pairs)]
        negatives = [self.prompt.builder.row(ids, pair[1]) for (_, ids), pair in zip(examples, pairs)]
        return self.prompt.builder.batch(anchors + positives + negatives, self.with_types)

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return model(**batch).chunk(3)  # anchors, positive prototypes, negative prototypes

    def logits(self, z1: torch.Tensor, z2: torch.Tensor, n1: torch.Tensor) -> torch.Tensor:
        """(n, 2N): this process's anchors against the positive, then the negative prototypes of the global batch."""
        positives = cosine_matrix(z1, gather_with_grad(z2))  # (n, N), the own prototype at rank * n + i
        negatives = cosine_matrix(z1, gather_with_grad(n1))  # (n, N)
        return torch.cat([positives, negatives], dim=1) / self.temperature

    def loss_from_embeddings(self, z1: torch.Tensor, z2: torch.Tensor, n1: torch.Tensor) -> torch.Tensor:
        return info_nce(self.logits(z1, z2, n1))
