"""LoRA adapters on the backbone, through peft, as LLM2Vec trains decoder LLMs (``--lora-r`` and friends).

:class:`BackboneSetup` is how the backbone is built for training: its weights' dtype (``bf16``: the frozen
weights in bf16, the adapters in fp32 through peft's ``autocast_adapter_dtype``), gradient checkpointing
(transformers' own, non-reentrant), an adapter merged into the weights first (``init_adapter``: an MNTP run's
adapter, as LLM2Vec stacks MNTP then SimCSE) and a new LoRA adapter (``r`` > 0) on the modules the backbone's
family declares (``Family.lora_targets``: LLM2Vec's attention and MLP projections for Llama-style decoders)
or the ones ``--lora-targets`` names.

An export is merged (:func:`merged_backbone`: a copy, the training model keeps its adapter) or an adapter
directory (:func:`save_adapter`: peft's ``adapter_config.json`` + ``adapter_model.safetensors``, the
tokenizer, and :data:`ADAPTER_META`: the base model, its content identity, its weights' dtype in training
(bf16 frozen weights: the base is rounded so when read back, as the merged export is), and the
:class:`~simcse_lab.modeling.recipe.EmbeddingRecipe` it embeds with), which :func:`load_adapter` reads back; an
adapter is refused, in one line, on a base model other than the one it was trained on. peft is the optional extra ``llm``; without it a LoRA setting is one line naming the extra.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.errors import InputError, UserError
from simcse_lab.modeling.recipe import EmbeddingRecipe, read_recipe
from simcse_lab.modeling.resolve import ADAPTER_CONFIG  # peft's name

EXTRA = "llm"
ADAPTER_META = "simcse_lab_adapter.json"  # the base model (name, identity) and the recipe the adapter trained with
BASE_KEYS = ("base_model", "base_model_sha256", "base_weights_dtype")  # ADAPTER_META's fields beside the recipe's
WEIGHTS_DTYPES = ("fp32", "bf16")


def require_peft():
    """The peft module; a one-line error naming the extra when it is not installed."""
    try:
        import peft
    except ImportError:
        raise UserError(f"LoRA needs peft, which is not installed: pip install 'simcse-lab[{EXTRA}]' "
                        f"(or pip install peft)") from None
    return peft


@dataclass(frozen=True)
class BackboneSetup:
    """How the training backbone is built (the defaults build it as before: fp32, every weight trained)."""

    lora_r: int = 0               # 0: no adapter, every weight trains
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = ""        # comma-separated module names; "": the family's declared targets
    init_adapter: str = ""        # an adapter directory merged into the weights before the new adapter
    weights_dtype: str = "fp32"   # the backbone's weights (bf16: frozen in bf16; needs lora_r > 0)
    gradient_checkpointing: bool = False
    attention_dropout: float = -1.0  # >= 0: the config's attention_dropout (LLM2Vec's simcse_dropout); -1: its own

    @classmethod
    def from_config(cls, cfg) -> BackboneSetup:
        return cls(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets, cfg.init_adapter,
                   cfg.weights_dtype, cfg.gradient_checkpointing, cfg.attention_dropout)

    def configure(self, config, model: str):
        """The backbone's config with ``attention_dropout`` set, when asked (one line where it has no such key)."""
        if self.attention_dropout < 0:
            return config
        if not hasattr(config, "attention_dropout"):
            raise UserError(f"{model}: attention_dropout: its config ({config.model_type}) has no attention_dropout "
                            f"key; leave it at -1 (the model's own dropout)")
        config.attention_dropout = self.attention_dropout
        return config

    def targets(self, family) -> list[str]:
        names = [t.strip() for t in self.lora_targets.split(",") if t.strip()]
        return names or list(family.lora_targets)

    @property
    def load_kwargs(self) -> dict:
        """What ``from_pretrained`` is given: the weights' dtype, always (transformers 5 loads a checkpoint in the
        dtype it was saved in by default: a decoder saved in bf16, as most are on the hub, would train in bf16)."""
        import torch
        import transformers

        name = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        return {name: torch.bfloat16 if self.weights_dtype == "bf16" else torch.float32}


def prepare_backbone(backbone, setup: BackboneSetup):
    """The loaded backbone with ``init_adapter`` merged into its weights and gradient checkpointing on, as
    ``setup`` asks (the new adapter goes on later, by :func:`add_lora`)."""
    if setup.init_adapter:
        backbone = merge_adapter_dir(backbone, setup.init_adapter)
    if setup.gradient_checkpointing:  # transformers 5 names it activation checkpointing; 4.x gradient checkpointing
        enable = getattr(backbone, "activation_checkpointing_enable", None)
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        backbone.config.use_cache = False  # what transformers would otherwise switch off with a warning
    return backbone


def is_adapter_dir(path) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


def saved_recipe(path) -> EmbeddingRecipe | None:
    """The recipe a local model directory embeds with: an adapter directory's (in :data:`ADAPTER_META`), else the
    one saved beside the model (None: it has none)."""
    return adapter_meta(path).recipe if is_adapter_dir(path) else read_recipe(path)


def _adapter_json(path, name: str) -> dict:
    from simcse_lab.io import read_small_json

    data, why = read_small_json(Path(path) / name, 1 << 20)
    if data is None:
        raise UserError(f"{Path(path) / name}: {why}")
    return data


def check_adapter_dir(path: str, what: str = "--init-adapter") -> None:
    """Refuse, in one line, a directory that is not a peft adapter (before any weights load)."""
    if not is_adapter_dir(path):
        raise UserError(f"{what} {path}: not an adapter directory (no {ADAPTER_CONFIG}); give the adapter "
                        f"directory a run saved with --no-merge-lora")


@dataclass(frozen=True)
class AdapterMeta:
    """What :data:`ADAPTER_META` records: the base model the adapter goes on, and how the pair embeds."""

    base_model: str
    base_sha256: str  # the base model folder's content identity (modeling.resolve.model_identity); "": a hub id
    recipe: EmbeddingRecipe
    base_weights_dtype: str = "fp32"  # bf16: it trained on the base's weights rounded to bf16 (--weights-dtype)


def adapter_meta(path) -> AdapterMeta:
    """The :class:`AdapterMeta` of an adapter directory simcse-lab wrote; a malformed file is one line naming it."""
    where = Path(path) / ADAPTER_META
    if not where.is_file():
        raise UserError(f"{path}: an adapter directory without {ADAPTER_META}: simcse-lab does not know its base "
                        f"model and pooler; load it with peft, or save it with simcse-lab train --no-merge-lora")
    data = _adapter_json(path, ADAPTER_META)  # a JSON object, or one line naming the file
    base = {key: data.get(key, "") for key in BASE_KEYS}
    for key, value in base.items():
        if not isinstance(value, str):
            raise InputError(where, None, f"{key!r} must be a str, not {value!r}")
    if not base["base_model"]:
        raise InputError(where, None, "no 'base_model' field")
    weights = base["base_weights_dtype"] or "fp32"  # written before it was recorded: fp32
    if weights not in WEIGHTS_DTYPES:
        raise InputError(where, None, f"'base_weights_dtype' must be {' or '.join(map(repr, WEIGHTS_DTYPES))}, "
                                      f"not {weights!r}")
    recipe = EmbeddingRecipe.from_dict({k: v for k, v in data.items() if k not in BASE_KEYS}, where)
    return AdapterMeta(base["base_model"], base["base_model_sha256"], recipe, weights)


def round_base_weights(backbone, meta: AdapterMeta):
    """``backbone`` (fp32, adapter not yet attached) with its weights rounded as the adapter's training saw them:
    bf16 frozen weights are rounded to bf16 and kept in fp32, which is what the merged export holds
    (:func:`merged_backbone`); fp32: unchanged."""
    import torch

    if meta.base_weights_dtype == "bf16":
        with torch.no_grad():
            for param in backbone.parameters():
                if param.dtype == torch.float32:
                    param.copy_(param.to(torch.bfloat16).to(torch.float32))
    return backbone


def base_identity(model: str) -> str:
    """The content identity of ``model``'s local folder (cached per file state); "" for a hub id."""
    from simcse_lab.modeling.resolve import model_identity, resolve_model

    local = resolve_model(model)
    return model_identity(local) if os.path.isdir(local) else ""


def check_adapter_base(path, meta: AdapterMeta, model: str, what: str = "--init-adapter") -> None:
    """Refuse, in one line, the adapter at ``path`` on ``model`` when it was trained on another base model (by
    content where the adapter recorded it, else by name)."""
    if meta.base_sha256:
        same = base_identity(model) == meta.base_sha256
    else:  # an adapter written before the identity was recorded
        from simcse_lab.modeling.resolve import resolve_model

        same = os.path.realpath(resolve_model(meta.base_model)) == os.path.realpath(resolve_model(model))
    if not same:
        raise UserError(f"{what} {path}: trained on the base model {meta.base_model}"
                        f"{' (other weights than ' + model + ' now)' if meta.base_model == model else ''}, not on "
                        f"{model}; use that base model, or an adapter trained on {model}")


def _target_error(backbone, targets: list[str], err: Exception) -> UserError:
    import torch

    linear = sorted({name.rsplit(".", 1)[-1] for name, module in backbone.named_modules()
                     if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"})
    return UserError(f"--lora-targets {','.join(targets)}: {str(err).splitlines()[0][:160]}; this backbone's "
                     f"linear modules are {', '.join(linear) or 'none'}")


def add_lora(backbone, setup: BackboneSetup, family):
    """``backbone`` wrapped by peft with a new LoRA adapter on the family's (or the named) target modules: only
    the adapter trains; the adapter's weights are fp32 whatever the frozen weights' dtype."""
    peft = require_peft()
    targets = setup.targets(family)
    config = peft.LoraConfig(r=setup.lora_r, lora_alpha=setup.lora_alpha, lora_dropout=setup.lora_dropout,
                             target_modules=targets, bias="none")
    try:
        return peft.get_peft_model(backbone, config, autocast_adapter_dtype=True)
    except ValueError as err:
        raise _target_error(backbone, targets, err) from None


def merge_adapter_dir(backbone, path: str):
    """``backbone`` with the adapter at ``path`` merged into its weights (LLM2Vec: the MNTP adapter before SimCSE)."""
    from simcse_lab.modeling.loading import load_peft_adapter

    require_peft()
    if os.path.isfile(os.path.join(path, ADAPTER_META)):  # one simcse-lab wrote: on the base as it trained on it
        backbone = round_base_weights(backbone, adapter_meta(path))
    try:
        return load_peft_adapter(backbone, path).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise UserError(f"--init-adapter {path}: does not fit this model ({str(err).splitlines()[0][:200]})") from None


def is_lora(backbone) -> bool:
    return hasattr(backbone, "peft_config")


def merged_backbone(backbone):
    """The backbone to export: itself without an adapter; with one, a merged fp32 copy (the training model keeps
    its adapter and its weights untouched, so training goes on bit for bit)."""
    import torch

    if not is_lora(backbone):
        return backbone
    merged = copy.deepcopy(backbone)
    if any(p.dtype != torch.float32 for p in merged.parameters()):
        merged = merged.to(torch.float32)  # bf16 frozen weights: the merged export in fp32, the adapter unrounded
    return merged.merge_and_unload()


def save_adapter(backbone, tokenizer, recipe: EmbeddingRecipe, base_model: str, output_dir) -> Path:
    """The adapter alone as a directory (peft's files + the tokenizer + :data:`ADAPTER_META`: the base model, its
    content identity and ``recipe``, how the pair embeds), written to a temporary sibling and renamed into place."""
    import torch

    from simcse_lab.io import staged_dir
    from simcse_lab.modeling.loading import quiet

    output_dir = Path(output_dir)
    weights = "bf16" if any(p.dtype == torch.bfloat16 for p in backbone.parameters()) else "fp32"
    meta = {"base_model": base_model, "base_model_sha256": base_identity(base_model), "base_weights_dtype": weights,
            **recipe.to_dict()}
    with staged_dir(output_dir) as tmp:
        with quiet():
            backbone.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        (tmp / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    return output_dir


def load_adapter(backbone, path: str):
    """``backbone`` with the adapter at ``path`` attached (not merged, not trainable), for encoding."""
    from simcse_lab.modeling.loading import load_peft_adapter

    require_peft()
    try:
        return load_peft_adapter(backbone, path)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise UserError(f"{path}: the adapter does not fit its base model ({str(err).splitlines()[0][:200]})") from None


def frozen_names(module) -> set[str]:
    """The names of ``module``'s parameters that do not train (a LoRA backbone's base weights)."""
    return {name for name, param in module.named_parameters() if not param.requires_grad}


def trained_state(module, frozen: set[str] | None = None) -> dict:
    """``module.state_dict()`` without its frozen parameters (``frozen``: their names, default the module's own):
    what a checkpoint must hold, the adapter and heads of a LoRA run, everything of a full fine-tuning run."""
    frozen = frozen_names(module) if frozen is None else frozen
    state = module.state_dict()
    return state if not frozen else {name: value for name, value in state.items() if name not in frozen}


def load_trained_state(module, state: dict, frozen: set[str] | None = None) -> None:
    """Load :func:`trained_state`'s dict back; only the frozen parameters may be missing from it."""
    frozen = frozen_names(module) if frozen is None else frozen
    if not frozen:
        module.load_state_dict(state)
        return
    missing, unexpected = module.load_state_dict(state, strict=False)
    left = [name for name in missing if name not in frozen]
    if left or unexpected:
        raise RuntimeError(f"state does not fit: missing {left[:3]}, unexpected {list(unexpected)[:3]}")
