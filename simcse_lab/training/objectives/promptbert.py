"""PromptBERT (Jiang et al. 2022, kongds/Prompt-BERT): a sentence is the [MASK] state of a template around it.

Each sentence is put in two templates, one per view (PromptBERT's defaults for a BERT-like or a RoBERTa-like
tokenizer, told apart by its mask token, or ``--template`` / ``--second-template``), both views in one forward pass
with dropout as in SimCSE; the ``mask`` pooler reads each row at its template's mask token; with template denoising
(``--template-denoise``, default on) each row's template delta for its sentence length is subtracted
(:mod:`simcse_lab.modeling.denoise`), with dropout and gradients as PromptBERT's ``get_delta``; then InfoNCE as
unsupervised SimCSE (first views against the second views of the global batch, gathered with gradients). The
first template (and the denoising) is the model's own: saved in its recipe, used by eval, index and export.
"""

from __future__ import annotations

from simcse_lab.errors import UserError
from simcse_lab.modeling.template import InputFormat, compile_template
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS
from simcse_lab.training.objectives.base import register
from simcse_lab.training.objectives.unsup import UnsupSimCSE

# PromptBERT's run.sh templates (unsup-bert, unsup-roberta), written with this project's slots: first view, second
BERT_TEMPLATES = ('This sentence of "{sentence}" means {mask} .', 'This sentence : "{sentence}" means {mask} .')
ROBERTA_TEMPLATES = ("This sentence : '{sentence} ' means{mask}.", "The sentence : '{sentence} ' means{mask}.")


def default_templates(tokenizer) -> tuple[str, str]:
    """PromptBERT's two templates for ``tokenizer``: RoBERTa's where its mask token is ``<mask>``, else BERT's."""
    return ROBERTA_TEMPLATES if getattr(tokenizer, "mask_token", None) == "<mask>" else BERT_TEMPLATES


@register("promptbert")
class PromptBERT(UnsupSimCSE):
    """Unsupervised SimCSE's views and loss (``embed``, ``loss_from_embeddings``), each view in its own template."""

    options = OBJECTIVE_OPTIONS["promptbert"]  # template, second_template, template_denoise

    def __init__(self, tokenizer, embedder, temperature: float = 0.05, templates: tuple[str, str] = ("", ""),
                 denoise: bool = True):
        super().__init__(tokenizer, temperature)
        if embedder.pooler != "mask":
            raise UserError(f"--objective promptbert reads each sentence at its template's mask token: use "
                            f"--pooler mask, not {embedder.pooler}")
        defaults = default_templates(tokenizer)
        first = compile_template(tokenizer, templates[0] or defaults[0], "--template")
        second = compile_template(tokenizer, templates[1] or defaults[1], "--second-template")
        embedder.set_template(first, denoise)  # the model's own: saved with it, used at evaluation
        self.views = (InputFormat(template=first, index=0), InputFormat(template=second,
                                                                         index=embedder.add_template(second)))

    @classmethod
    def check_run(cls, cfg) -> None:
        """Both templates against the model's tokenizer (its mask token), before anything is written."""
        from simcse_lab.modeling.embedder import backbone_path
        from simcse_lab.modeling.loading import load_tokenizer

        tokenizer = load_tokenizer(backbone_path(cfg.model))
        defaults = default_templates(tokenizer)
        compile_template(tokenizer, cfg.template or defaults[0], "--template")
        compile_template(tokenizer, cfg.second_template or defaults[1], "--second-template")

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder) -> PromptBERT:
        return cls(tokenizer, embedder, cfg.temperature, (cfg.template, cfg.second_template), cfg.template_denoise)

    def collate(self, examples: list[list[int]], step: int) -> dict:
        return self.pad_views([examples, examples], list(self.views))  # rows i and i + N: the same sentence
