"""Training configuration: defaults < YAML file (``--config``) < command-line flags.

Reading and checking a config imports no torch: a bad file is refused in a fraction of a second,
before any model is loaded."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

import yaml

from simcse_lab.data.columns import parse_columns
from simcse_lab.data.readers import line_number
from simcse_lab.errors import InputError, UserError
from simcse_lab.io import expand_user
from simcse_lab.modeling.pooling import check_instruction, check_pooler
from simcse_lab.runtime.numbers import SEED_LIMIT, check_number
from simcse_lab.runtime.precision import TRAINING_PRECISIONS
from simcse_lab.runtime.progress import progress_default
from simcse_lab.training.objective_options import OBJECTIVE_POOLERS, all_options, check_options

# The objectives a config may name, known without importing torch. The built-in ones are listed here
# (tests/training/test_objective_plugin.py checks them against the registry); ``training.objectives.register``
# appends the name of each plug-in objective it registers.
OBJECTIVE_NAMES = ["unsup", "sup", "esimcse", "mntp", "promptbert", "conpvp"]
# the objectives that are the masked-token loss themselves (no sentence vectors; ``Objective.masked_tokens``)
MASKED_TOKEN_OBJECTIVES = ["mntp"]
MLM_MASKINGS = ("80/10/10", "all_mask")  # training.mlm.MASKINGS
ADAMW_KERNELS = ("fused", "foreach", "for-loop")
# every numeric option: (low, high, low excluded, high excluded, note); NaN and infinities are always refused
# (tests/training/test_config.py walks this table: each option gets a value below, above and nan)
NUMBER_RANGES = {
    "temperature": (0, None, True, False, ""),
    "mlm_weight": (0, None, False, False, ""),
    "mlm_probability": (0, 1, True, False, ""),
    "cos_reg": (0, None, False, False, " (0: off)"),
    "max_seq_len": (1, None, False, False, ""),
    "batch_size": (1, None, False, False, ""),
    "lr": (0, None, True, False, ""),
    "weight_decay": (0, None, False, False, ""),
    "warmup_steps": (0, None, False, False, ""),
    "max_grad_norm": (0, None, False, False, " (0: off)"),
    "epochs": (1, None, False, False, ""),
    "max_steps": (0, None, False, False, " (0: run the epochs)"),
    "seed": (0, SEED_LIMIT, False, True, ""),
    "eval_steps": (0, None, False, False, " (0: off)"),
    "save_steps": (0, None, False, False, ""),
    "keep_checkpoints": (0, None, False, False, " (0: keep all)"),
    "log_steps": (1, None, False, False, ""),
    "eval_batch_size": (1, None, False, False, ""),
    "length_chunks": (1, None, False, False, ""),
    "pack_width": (0, None, False, False, " (0: off)"),
    "mini_batch_size": (0, None, False, False, " (0: off)"),
    "lora_r": (0, None, False, False, " (0: no adapter, every weight trains)"),
    "lora_alpha": (0, None, True, False, ""),
    "lora_dropout": (0, 1, False, True, ""),
    "attention_dropout": (-1, 1, False, True, " (-1: the model's own)"),
}
# the objectives' own options (simcse_lab.training.objective_options) are config fields too, after these
NUMBER_RANGES.update({option.name: option.range for option in all_options() if option.numeric})
WEIGHTS_DTYPES = ("fp32", "bf16")  # as simcse_lab.modeling.lora.WEIGHTS_DTYPES (no torch import here)


@dataclass
class CoreConfig:
    """The options of every run; :class:`TrainConfig` adds the objectives' own (objective_options)."""

    objective: str = "unsup"
    model: str = "all-MiniLM-L6-v2"
    data: str = "wiki"            # the one --data syntax (simcse_lab.data.spec)
    columns: str = ""             # "a,b,c": the sentence / positive / hard-negative columns ("": a known naming)
    output_dir: str = "runs/unsup"
    pooler: str = ""              # "": the backbone family's natural pooler (cls; avg for T5), set once its config is read
    instruction: str = ""         # text before every sentence, its tokens not pooled (LLM2Vec); saved with the model
    mlp_only_train: bool = True
    projection: bool = False      # Sentence-T5's bias-free projection + normalisation after pooling (kept from an ST dir)
    bidirectional: bool = True    # a decoder LLM attends bidirectionally (LLM2Vec); False: causal (SGPT, E5-Mistral)
    temperature: float = 0.05
    do_mlm: bool = False          # SimCSE's auxiliary MLM loss
    mlm_weight: float = 0.1
    mlm_probability: float = 0.15  # share of tokens masked (--do-mlm, --objective mntp; LLM2Vec: 0.2, Mistral 0.8)
    mlm_masking: str = "80/10/10"  # the masked tokens: 80% mask / 10% random / 10% kept, or all_mask (all masked)
    cos_reg: float = 0.0          # weight of the cosine regulariser on the anchors' embeddings; 0: off
    max_seq_len: int = 32
    batch_size: int = 64
    lr: float = 3e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    epochs: int = 1
    max_steps: int = 0            # > 0: stop after this many steps (overrides epochs)
    seed: int = 42
    precision: str = "auto"       # accelerate's mixed precision: auto = bf16 where native, else fp16 on CUDA, else fp32
    eval_steps: int = 125         # 0: no dev evaluation during training
    save_steps: int = 0           # training-state checkpoints; 0: at every eval step (or 125)
    keep_checkpoints: int = 2     # the newest N training-state checkpoints are kept; 0: keep all (a trajectory)
    log_steps: int = 10
    report_to: str = "none"       # accelerate trackers, comma-separated: tensorboard, wandb, ... (metrics.jsonl always)
    eval_batch_size: int = 128
    test_tasks: str = "sts12,sts13,sts14,sts15,sts16,stsb,sickr"  # "" or "none": skip the test table
    test_before: bool = True      # False: no test table of the untrained model (a sweep's trials share one)
    deterministic: bool = False   # torch's deterministic algorithms (runtime.provenance.make_deterministic)
    select: str = "stsb:dev:spearman"  # TASK:SPLIT:METRIC that picks OUTPUT/best (any task, a user's sts:FILE ...)
    resume: bool = False
    progress: bool = field(default_factory=progress_default)  # bars when stderr is a terminal
    # the speed of a step, not its result (eval/step_changes.md: the measured effect of each)
    length_chunks: int = 2        # run a step's rows as N length-sorted chunks, each padded to its own longest
    pack_width: int = 0           # > 0: pack sentences into rows of N positions (families where it is exact)
    adamw: str = "fused"          # AdamW kernel: fused (one pass), foreach, or for-loop (torch's CPU default)
    # the memory of a step, not its result
    mini_batch_size: int = 0      # > 0: encode at most N rows at a time, recomputed in backward (GradCache); 0: off
    attention_dropout: float = -1.0  # the backbone config's attention_dropout (LLM2Vec's simcse_dropout); -1: its own
    gradient_checkpointing: bool = False  # recompute each layer's activations in backward (transformers' own)
    weights_dtype: str = "fp32"   # bf16: the frozen backbone weights in bf16 (with lora_r > 0)
    # LoRA through peft (the extra "llm"): only the adapter (and the pooler's head) trains
    lora_r: int = 0               # the adapter's rank; 0: no adapter, every weight trains
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = ""        # "q_proj,v_proj": the modules that get an adapter; "": the family's declared ones
    merge_lora: bool = True       # best/ and final/ merged into the weights; False: adapter directories
    init_adapter: str = ""        # an adapter directory (an MNTP run's) merged into the weights before the new LoRA

    def __post_init__(self):
        # ``output_dir: ~/runs/x`` in a YAML file (or a quoted flag) is under the home directory, never ./~
        self.output_dir = expand_user(self.output_dir) if isinstance(self.output_dir, str) else self.output_dir
        if self.objective not in OBJECTIVE_NAMES:
            raise UserError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVE_NAMES)}")
        self._check_objective_pooler()
        if self.pooler:
            check_instruction(check_pooler(self.pooler), self.instruction)
        if self.instruction and self.objective == "esimcse":
            raise UserError("--instruction with esimcse: its word repetition would repeat the instruction's tokens "
                            "too; use unsup or sup")
        if self.precision not in TRAINING_PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {', '.join(TRAINING_PRECISIONS)}")
        parse_columns(self.columns)
        if self.mlm_masking not in MLM_MASKINGS:
            raise UserError(f"unknown mlm_masking {self.mlm_masking!r}; choose from {', '.join(MLM_MASKINGS)}")
        if self.objective in MASKED_TOKEN_OBJECTIVES and (self.do_mlm or self.cos_reg):
            raise UserError(f"objective {self.objective} is the masked-token loss alone (no sentence vectors): drop "
                            f"{'--do-mlm' if self.do_mlm else '--cos-reg'}")
        if self.adamw not in ADAMW_KERNELS:
            raise UserError(f"unknown adamw {self.adamw!r}; choose from {', '.join(ADAMW_KERNELS)}")
        for name, (low, high, low_open, high_open, note) in NUMBER_RANGES.items():
            check_number(getattr(self, name), name, low, high, low_open=low_open, high_open=high_open, note=note)
        check_options(self)
        from simcse_lab.evaluation.tasks import parse_select

        parse_select(self.select)  # an unknown task, split or metric: one line, before anything else
        self._check_lora()
        self._check_conpvp()
        if self.momentum_half_life:  # the momentum a half-life of that many steps means (m ** half_life = 0.5)
            self.momentum = 0.5 ** (1 / self.momentum_half_life)
        if self.pack_width and self.mini_batch_size:
            raise UserError("pack_width and mini_batch_size cannot be combined: packing runs the step's sentences "
                            "as one pass; use length_chunks with mini_batch_size")

    def _check_objective_pooler(self) -> None:
        """The pooler an objective needs (promptbert: ``mask``) is its default; ``mask`` needs a templated objective."""
        needed = OBJECTIVE_POOLERS.get(self.objective)
        if needed and self.pooler not in ("", needed):
            raise UserError(f"--objective {self.objective} reads its vectors with pooler {needed!r}; drop --pooler "
                            f"{self.pooler}")
        if needed:
            self.pooler = needed
        elif self.pooler == "mask":
            templated = ", ".join(name for name, pooler in OBJECTIVE_POOLERS.items() if pooler == "mask")
            raise UserError(f"--pooler mask reads a template's mask token, and objective {self.objective} puts "
                            f"the sentences in no template; use --objective {templated}")
        if needed and self.instruction:
            raise UserError(f"--instruction with {self.objective}: put the instruction's text into the template")

    def _check_conpvp(self) -> None:
        """--objective conpvp embeds every sentence through its continuous prompt (pooler ``mask``: the objective's,
        :data:`OBJECTIVE_POOLERS`): settings that would embed otherwise or lose the prompt are one line."""
        if self.objective != "conpvp":
            return
        refused = {"do_mlm": "--do-mlm", "pack_width": "--pack-width",
                   "mini_batch_size": "--mini-batch-size", "projection": "--projection",
                   "merge_lora": "--no-merge-lora"}
        for name, flag in refused.items():
            if bool(getattr(self, name)) != (name == "merge_lora"):
                raise UserError(f"--objective conpvp embeds every sentence through its continuous prompt, which "
                                f"{flag} does not carry; drop {flag}")

    def _check_lora(self) -> None:
        self.init_adapter = expand_user(self.init_adapter) if self.init_adapter else self.init_adapter
        if self.attention_dropout != -1 and self.attention_dropout < 0:
            raise UserError(f"attention_dropout must be -1 (the model's own) or in [0, 1), got {self.attention_dropout}")
        if self.weights_dtype not in WEIGHTS_DTYPES:
            raise UserError(f"unknown weights_dtype {self.weights_dtype!r}; choose from {', '.join(WEIGHTS_DTYPES)}")
        if self.weights_dtype != "fp32" and not self.lora_r:
            raise UserError(f"weights_dtype {self.weights_dtype}: the weights would be trained in {self.weights_dtype}; "
                            f"it keeps frozen weights in {self.weights_dtype} under a LoRA adapter: add --lora-r 16")
        if not self.merge_lora and not self.lora_r:
            raise UserError("--no-merge-lora saves the LoRA adapter, and there is none: add --lora-r 16, or drop "
                            "--no-merge-lora")
        if not self.merge_lora and self.init_adapter:
            raise UserError("--no-merge-lora with --init-adapter: an adapter directory holds the new adapter on its "
                            "base model only, and would embed without the init adapter merged before it; drop "
                            "--no-merge-lora (best/ and final/ are then merged, the init adapter included)")
        if self.lora_targets and not self.lora_r:
            raise UserError("lora_targets without lora_r: add --lora-r 16")

    @property
    def needs_lm_head(self) -> bool:
        """Whether the run trains a masked-token loss (``--do-mlm``, or an objective that is one)."""
        return self.do_mlm or self.objective in MASKED_TOKEN_OBJECTIVES

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def column_names(self) -> list[str] | None:
        """``columns`` as a list, None when not given."""
        return parse_columns(self.columns)


# the training config: every run's options, then each objective's (their defaults, help and validation declared in
# training/objective_options.py; checked in CoreConfig.__post_init__ with the rest)
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(o.name, o.kind, field(default=o.default)) for o in all_options()], bases=(CoreConfig,),
    namespace={"__doc__": "Defaults < YAML file < flags: every run's options (CoreConfig) and the objectives' own.",
               "__module__": __name__})
FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value, where: str):
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if value is None or isinstance(value, (list, dict)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {name} must be a {kind}, got {value!r}") from None


coerce_value = _coerce  # one option's value as its field's type (a sweep file's values too); one line if not


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise InputError(path, line_number(path.read_bytes(), err.start), f"not valid UTF-8 ({err.reason})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(path, mark.line + 1 if mark else None, f"invalid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, 1, "a config must be a mapping of option: value")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise InputError(path, lines.get(key), f"unknown option {key!r}")
        out[name] = _coerce(name, value, f"{path}:{lines.get(key, '?')}")
    return out


def shipped_configs() -> list[str]:
    """The configs that ship inside the package (``simcse_lab/training/configs``), as ``configs/NAME.yaml``."""
    root = resources.files(__package__).joinpath("configs")
    names = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            names += [f"configs/{entry.name}/{e.name}" for e in sorted(entry.iterdir(), key=lambda e: e.name)
                      if e.name.endswith(".yaml")]
        elif entry.name.endswith(".yaml"):
            names.append(f"configs/{entry.name}")
    return names


def resolve_config(spec) -> Path:
    """A config file: a path that exists, else a shipped config named ``configs/NAME.yaml``, ``NAME.yaml`` or
    ``NAME`` (so the README's ``--config configs/...`` works from any directory and after ``pip install``)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    parts = Path(str(spec)).parts
    name = "/".join(parts[len(parts) - parts[::-1].index("configs"):]) if "configs" in parts else str(spec)
    name = name if name.endswith(".yaml") else f"{name}.yaml"
    shipped = resources.files(__package__).joinpath("configs", *name.split("/"))
    if shipped.is_file():
        return Path(str(shipped))
    raise UserError(f"{spec}: no such config file, and not a shipped config ({', '.join(shipped_configs())})")


def load_config(path=None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then ``overrides`` (flags given on the command line; None = not given)."""
    values = read_yaml(resolve_config(path)) if path else {}
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, "command line")
    if values.get("momentum_half_life") and "momentum" in values:
        raise UserError("momentum and momentum_half_life both given: the half-life sets the momentum "
                        f"(0.5 ** (1 / {values['momentum_half_life']:g})); keep one")
    return TrainConfig(**values)
