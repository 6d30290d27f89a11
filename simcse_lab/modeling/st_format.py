"""Saving a SimCSE encoder as a sentence-transformers directory that reproduces its pooler exactly.

Pooler -> sentence-transformers modules (no Normalize: the saved model returns the same raw vectors
as ``simcse_lab.modeling.pooling.pool``; cosine similarity is unaffected):

- ``cls`` (with the dense+tanh head) -> Transformer, Pooling("cls"), Dense(Tanh)
- ``cls_before_pooler``              -> Transformer, Pooling("cls")
- ``avg``                            -> Transformer, Pooling("mean")
- ``avg_first_last``                 -> Transformer(output_hidden_states), WeightedLayerPooling(layer_start=1,
                                        weights [1, 0, ..., 0, 1]), Pooling("mean")
- ``avg_top2``                       -> Transformer(output_hidden_states), WeightedLayerPooling(layer_start=L-1,
                                        weights [1, 1]), Pooling("mean")
- ``last_token``                     -> Transformer, Pooling("lasttoken") (the last attended position, either
                                        padding side)
- ``weighted_avg``                   -> Transformer, Pooling("weightedmean") (weights 1..L from each row's first
                                        attended token: SGPT's, as :func:`~simcse_lab.modeling.pooling.weighted_mean`)

An instruction (``--instruction``) becomes the model's default prompt (``prompts={"instruction": ...}``,
``default_prompt_name``) and the Pooling module's ``include_prompt=False``: sentence-transformers then prepends it
to every text and leaves its tokens out of the pooled ones, with the same count of tokens
(:func:`~simcse_lab.modeling.pooling.instruction_length`); the sentence-token poolers take no instruction.

followed, for a model with Sentence-T5's projection head (:mod:`simcse_lab.modeling.projection`), by
Dense(no bias, identity) [+ Normalize].

``all_layer_embeddings`` index 0 is the embedding layer, as ``hidden_states`` in ``pool``.
Every directory also holds the model's :class:`~simcse_lab.modeling.recipe.EmbeddingRecipe`
(``simcse_lab_recipe.json``). A decoder made bidirectional where transformers has no config flag for it, which
sentence-transformers would run causal, is not written as a sentence-transformers directory at all but in
simcse-lab's own layout (:func:`save_own_layout`: the recipe + ``backbone/``), which sentence-transformers and
``AutoModel`` refuse to load rather than load wrong.

The directory is written to a temporary sibling and renamed into place, so a reader never sees a
half-written model and an existing model at ``output_dir`` is replaced only once the new one is complete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from sentence_transformers.sentence_transformer.modules import Dense, Pooling, WeightedLayerPooling

from simcse_lab.errors import UserError
from simcse_lab.io import make_temp_dir, staged_dir
from simcse_lab.modeling.attention import is_bidirectional, reproducible_on_load, saving_config
from simcse_lab.modeling.continuous_prompt import save_prompt_vectors
from simcse_lab.modeling.embedder import SimCSEEmbedder
from simcse_lab.modeling.families import appends_eos, family_of
from simcse_lab.modeling.loading import quiet, sentence_transformer_from_modules, transformer_module
from simcse_lab.modeling.lora import merged_backbone, save_adapter
from simcse_lab.modeling.pooling import NEEDS_HIDDEN_STATES, TEMPLATE_POOLERS, check_instruction, check_pooler
from simcse_lab.modeling.projection import projection_modules
from simcse_lab.modeling.recipe import BACKBONE_DIR, EmbeddingRecipe

# simcse-lab pooler -> sentence-transformers Pooling mode (the layer poolers average layers first, then "mean")
POOLING_MODES = {"cls": "cls", "cls_before_pooler": "cls", "avg": "mean", "avg_first_last": "mean",
                 "avg_top2": "mean", "last_token": "lasttoken", "weighted_avg": "weightedmean"}
PROMPT_NAME = "instruction"  # the name an instruction is saved under as the default prompt


def _mlp_linear(mlp: torch.nn.Module) -> torch.nn.Linear:
    """The nn.Linear of an MLP head: the Linear itself, a module with ``.dense`` (MLPHead, BertPooler), or the
    (dense, tanh) Sequential that :func:`~simcse_lab.modeling.embedder.backbone_mlp` makes of a backbone's pooler."""
    if isinstance(mlp, torch.nn.Linear):
        return mlp
    if isinstance(mlp, torch.nn.Sequential) and len(mlp) and isinstance(mlp[0], torch.nn.Linear):
        return mlp[0]
    dense = getattr(mlp, "dense", None)
    if isinstance(dense, torch.nn.Linear):
        return dense
    raise TypeError(f"mlp must be an nn.Linear or a module with a .dense nn.Linear, got {type(mlp).__name__}")


def _check_head(pooler: str, mlp: torch.nn.Module | None) -> None:
    """``cls`` and only ``cls`` comes with its MLP head (a wrong call is a programming error: ValueError)."""
    check_pooler(pooler)
    if pooler in TEMPLATE_POOLERS:
        raise UserError(f"pooler {pooler!r} reads a template's mask token, and sentence-transformers cannot put a "
                        f"template around the sentence; save the model in simcse-lab's own layout (as train does) "
                        f"or export it as onnx")
    if pooler == "cls" and mlp is None:
        raise ValueError("pooler 'cls' needs the dense+tanh head (mlp); use 'cls_before_pooler' without one")
    if mlp is not None and pooler != "cls":
        raise ValueError(f"an mlp head is only exported with pooler 'cls', not {pooler!r}")


def layer_weights(pooler: str, num_layers: int) -> tuple[int, list[float]]:
    """(layer_start, weights over all_layer_embeddings[layer_start:]) for a layer-averaging pooler."""
    if pooler == "avg_first_last":
        if num_layers == 1:
            return 1, [1.0]
        return 1, [1.0] + [0.0] * (num_layers - 2) + [1.0]
    if pooler == "avg_top2":
        return num_layers - 1, [1.0, 1.0]
    raise ValueError(f"{pooler!r} is not a layer-averaging pooler")


def has_pooler_weights(model_dir: str) -> bool:
    """Whether the saved HF weights in ``model_dir`` include a pooler (e.g. BertPooler)."""
    names = []
    for path in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            names.extend(f.keys())
    for path in Path(model_dir).glob("pytorch_model*.bin"):
        names.extend(torch.load(path, map_location="meta", weights_only=True))
    return any(name.startswith("pooler.") or ".pooler." in name for name in names)


def build_modules(transformer_dir: str, pooler: str, mlp: torch.nn.Module | None = None,
                  max_seq_length: int = 512, projection: torch.nn.Linear | None = None,
                  normalize: bool = False, instruction: str = "") -> list[torch.nn.Module]:
    """The sentence-transformers module list reproducing ``pooler`` on the HF model in ``transformer_dir``
    (then Sentence-T5's ``projection`` as a bias-free Dense [+ Normalize], when given); with ``instruction`` the
    Pooling leaves the prompt's tokens out (the prompt itself is the model's: :func:`save_sentence_transformer`)."""
    _check_head(pooler, mlp)
    check_instruction(pooler, instruction)
    config_kwargs = {"output_hidden_states": True} if pooler in NEEDS_HIDDEN_STATES else {}
    transformer = transformer_module(transformer_dir, max_seq_length=max_seq_length, config_kwargs=config_kwargs)
    dim = transformer.get_embedding_dimension()
    summary = family_of(transformer.model.config).summary_token
    if pooler.startswith("cls") and summary != 0:  # sentence-transformers' Pooling("cls") reads position 0
        raise UserError(f"pooler {pooler!r} reads a sentence token at position 0; this backbone has "
                        f"{'none' if summary is None else f'one at {summary}'}")
    backbone_layer = getattr(transformer.model, "pooler", None)  # Hugging Face's own pooler layer (BertPooler)
    if backbone_layer is not None:
        if pooler == "cls":  # SimCSE's convention: the kept MLP head also lives in the backbone's pooler weights
            backbone_layer.dense.load_state_dict({k: v.detach().float().cpu()
                                                  for k, v in _mlp_linear(mlp).state_dict().items()})
        elif not has_pooler_weights(transformer_dir):
            # loading re-created a randomly initialised pooler; never save it as if it were trained
            transformer.model.pooler = None
    modules: list[torch.nn.Module] = [transformer]
    if pooler in NEEDS_HIDDEN_STATES:
        num_layers = transformer.model.config.num_hidden_layers
        start, weights = layer_weights(pooler, num_layers)
        modules.append(WeightedLayerPooling(dim, num_hidden_layers=num_layers, layer_start=start,
                                            layer_weights=torch.nn.Parameter(torch.tensor(weights))))
    modules.append(Pooling(dim, pooling_mode=POOLING_MODES[pooler], include_prompt=not instruction))
    if pooler == "cls":
        linear = _mlp_linear(mlp)
        dense = Dense(linear.in_features, linear.out_features, bias=linear.bias is not None,
                      activation_function=torch.nn.Tanh())
        dense.linear.load_state_dict({k: v.detach().float().cpu() for k, v in linear.state_dict().items()})
        modules.append(dense)
    if projection is not None:
        modules += projection_modules(projection, normalize)
    return modules


def model_recipe(backbone, tokenizer, pooler: str, instruction: str = "") -> EmbeddingRecipe:
    """The recipe of ``backbone`` + ``tokenizer`` as they run now, with ``pooler``."""
    return EmbeddingRecipe(pooler=pooler, bidirectional=is_bidirectional(backbone), append_eos=appends_eos(tokenizer),
                           instruction=instruction)


def embedder_recipe(embedder: SimCSEEmbedder, backbone, tokenizer) -> EmbeddingRecipe:
    """The recipe of the model being trained, as ``backbone`` runs now: its exported pooler, its instruction, its own
    template and whether that template's delta is subtracted, its continuous prompt's length (ConPVP)."""
    recipe = model_recipe(backbone, tokenizer, embedder.export_pooler, embedder.instruction)
    if embedder.continuous_prompt is not None:
        recipe = replace(recipe, continuous_prompt=embedder.continuous_prompt.length)
    if embedder.template is None:
        return recipe
    return replace(recipe, template=embedder.template.text, template_denoise=embedder.denoise_from is not None)


def save_own_layout(backbone, tokenizer, recipe: EmbeddingRecipe, output_dir, prompt=None) -> Path:
    """simcse-lab's own layout (:mod:`simcse_lab.modeling.recipe`): the recipe and ``backbone/``, a Hugging Face
    folder whose config carries no run-time attention flag (and, for ConPVP, the continuous ``prompt``'s vectors
    beside the recipe); replaces ``output_dir`` once complete."""
    output_dir = Path(output_dir)
    with staged_dir(output_dir) as tmp:
        with quiet(), saving_config(backbone, family_of(backbone.config)):
            backbone.save_pretrained(tmp / BACKBONE_DIR)
            tokenizer.save_pretrained(tmp / BACKBONE_DIR)
        recipe.write(tmp)
        if prompt is not None:
            save_prompt_vectors(prompt, tmp)
    return output_dir


@dataclass(frozen=True)
class PooledLayers:
    """The layers after the pooler: SimCSE's MLP + tanh (``mlp``, for ``cls``), Sentence-T5's bias-free
    ``projection`` and its L2 normalisation."""

    mlp: torch.nn.Module | None = None
    projection: torch.nn.Linear | None = None
    normalize: bool = False


def save_sentence_transformer(backbone, tokenizer, pooler: str, output_dir, layers: PooledLayers = PooledLayers(),
                              max_seq_length: int = 512, model_card: str | None = None,
                              instruction: str = "") -> Path:
    """Write ``backbone`` (a transformers PreTrainedModel) + ``tokenizer`` + ``pooler`` (+ the ``layers`` after
    it: the MLP for ``cls``) as a sentence-transformers directory at ``output_dir``; return its path.

    ``SentenceTransformer(output_dir)`` reproduces ``pool(pooler, ...)`` (and the mlp+tanh) on the
    backbone's outputs. ``model_card`` (markdown) is written as README.md when given. ``instruction`` is saved
    as the default prompt, excluded from pooling (see the module docstring). A backbone that
    sentence-transformers cannot run as it runs now (a bidirectional decoder without a config flag) is refused:
    :func:`save_own_layout` is the directory for it.
    """
    _check_head(pooler, layers.mlp)
    check_instruction(pooler, instruction)
    family = family_of(backbone.config)
    if not reproducible_on_load(backbone, family):
        raise UserError(f"the {family.name} model runs bidirectionally, which sentence-transformers would run causal "
                        f"(transformers has no config flag for it); export it as onnx, or use simcse-lab's own "
                        f"layout")
    output_dir = Path(output_dir)
    # the positions the family can use (RoBERTa: 514 rows, 512 usable), so the saved model never runs past them
    max_seq_length = min(max_seq_length, family_of(backbone.config).max_tokens(backbone.config, max_seq_length))
    with staged_dir(output_dir) as tmp:
        hf_dir = make_temp_dir(output_dir)  # the backbone saved once, for sentence-transformers to read back
        try:
            with quiet(), saving_config(backbone, family):
                backbone.save_pretrained(hf_dir)
                tokenizer.save_pretrained(hf_dir)
            modules = build_modules(str(hf_dir), pooler, mlp=layers.mlp, max_seq_length=max_seq_length,
                                    projection=layers.projection, normalize=layers.normalize, instruction=instruction)
            model = sentence_transformer_from_modules(modules, device="cpu", prompts=instruction_prompts(instruction))
            with quiet():
                model.save(str(tmp))
        finally:
            shutil.rmtree(hf_dir, ignore_errors=True)
        if model_card is not None:
            (tmp / "README.md").write_text(model_card)
        model_recipe(backbone, tokenizer, pooler, instruction).write(tmp)
    return output_dir


def instruction_prompts(instruction: str) -> dict:
    """The SentenceTransformer arguments that make ``instruction`` the prompt of every encode call (none without)."""
    if not instruction:
        return {}
    return {"prompts": {PROMPT_NAME: instruction}, "default_prompt_name": PROMPT_NAME}


def save_embedder(embedder: SimCSEEmbedder, tokenizer, output_dir) -> Path:
    """The model being trained as a sentence-transformers directory, with the pooler it exports
    (``cls`` keeps its MLP head; under ``mlp_only_train`` the head is dropped: ``cls_before_pooler``) and its
    recipe; a bidirectional decoder that sentence-transformers would run causal in simcse-lab's own layout. A LoRA
    backbone is saved merged into its weights (a copy: training goes on with the adapter), or, when the embedder
    says so (``export_adapter``), as an adapter directory on its base model. A model with a continuous prompt
    (ConPVP) is written in simcse-lab's own layout, with its vectors, which plain sentence-transformers cannot run."""
    pooler = embedder.export_pooler
    if embedder.export_adapter is not None:
        recipe = embedder_recipe(embedder, embedder.backbone, tokenizer)
        return save_adapter(embedder.backbone, tokenizer, recipe, embedder.export_adapter, output_dir)
    backbone = merged_backbone(embedder.backbone)
    # sentence-transformers cannot put text after the sentence, subtract a delta, nor put in learned vectors (ConPVP)
    if embedder.template is not None or embedder.continuous_prompt is not None:
        return save_own_layout(backbone, tokenizer, embedder_recipe(embedder, backbone, tokenizer), output_dir,
                               embedder.continuous_prompt)
    if not reproducible_on_load(backbone, embedder.family):
        if embedder.projection is not None:  # refused before training (training.backbone); a guard here
            raise ValueError("a projection head is not saved in simcse-lab's own layout")
        return save_own_layout(backbone, tokenizer, model_recipe(backbone, tokenizer, pooler, embedder.instruction),
                               output_dir)
    layers = PooledLayers(mlp=embedder.mlp if pooler == "cls" else None, projection=embedder.projection,
                          normalize=embedder.normalize)
    return save_sentence_transformer(backbone, tokenizer, pooler, output_dir, layers,
                                     instruction=embedder.instruction)
