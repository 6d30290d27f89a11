"""``simcse-lab train``: contrastive training (unsup / sup SimCSE, ESimCSE) on accelerate.

Also runs as ``accelerate launch [--multi_gpu --num_processes N] -m simcse_lab train ...``."""

from __future__ import annotations

import argparse

BOOL = argparse.BooleanOptionalAction
# --help of the options (FIELDS); an option without one says its default
HELPS = {"objective": "unsup, sup, esimcse, promptbert (PromptBERT: two templates, [MASK] pooling, template "
                      "denoising), or mntp (a decoder's masked next-token prediction alone, LLM2Vec's step "
                      "before SimCSE); each objective's own options below name it",
         "data": "a registry NAME[:SPLIT] (wiki, nli, wiki1m, nli_for_simcse ...; fetched and verified on first "
                 "use), a .txt/.csv/.tsv/.jsonl/.parquet file, a save_to_disk directory or hub:OWNER/NAME[:CONFIG][@SPLIT]",
         "columns": "the sentence[,positive[,hard negative]] columns of --data (default: a known naming "
                    "such as sent0,sent1,hard_neg or anchor,positive,negative, or the only column)",
         "report_to": "experiment trackers through accelerate, comma-separated: none, tensorboard, wandb, "
                      "mlflow, ... or all (metrics.jsonl is always written; TensorBoard under OUTPUT/logs)",
         "model": "model directory, hub id or alias",
         "pooler": "cls, cls_before_pooler, avg, avg_first_last, avg_top2, last_token (the last real token, "
                   "either padding side), weighted_avg (SGPT's position weights) (default: the backbone family's "
                   "natural one: cls, or avg for T5)",
         "instruction": "text put before every sentence, its tokens left out of the pooled ones (LLM2Vec's "
                        "instruction masking; token poolers only); saved with the model (its "
                        "sentence-transformers default prompt), so eval, index and search embed with it",
         "mlm_probability": "share of the tokens masked by --do-mlm / --objective mntp (default 0.15; "
                            "LLM2Vec: 0.2, Mistral 0.8 with all_mask)",
         "mlm_masking": "80/10/10 (mask / random / kept, default) or all_mask (every chosen token masked)",
         "do_mlm": "add the auxiliary masked-token loss (BERT: MLM; a decoder: MNTP with its own LM head and "
                   "the mask token '_' where its tokenizer has none)",
         "projection": "Sentence-T5's head: a bias-free dense projection (hidden x hidden) after pooling, then "
                       "L2 normalisation, trained with the model and exported as Dense -> Normalize (a "
                       "sentence-transformers --model that has one keeps its own)",
         "bidirectional": "decoder LLMs (Llama, Mistral, Qwen2/3, Gemma, Phi-3, GPT-2): attend bidirectionally, "
                          "as LLM2Vec (default); --no-bidirectional keeps them causal (SGPT, E5-Mistral). Saved "
                          "with the model (simcse_lab_recipe.json); encoders are bidirectional anyway",
         "max_steps": "stop after N steps (0: run the epochs)", "eval_steps": "dev evaluation period (--select; 0: off)",
         "test_tasks": "STS test tasks for summary.json ('none' to skip)",
         "test_before": "also the test table of the untrained model, before training (default); "
                        "--no-test-before skips it (a sweep's trials share one baseline)",
         "deterministic": "torch's deterministic algorithms (torch.use_deterministic_algorithms, cuDNN "
                          "deterministic, CUBLAS_WORKSPACE_CONFIG): slower, the same numbers on the same "
                          "machine and versions",
         "select": "TASK:SPLIT:METRIC whose best value picks OUTPUT/best at each dev evaluation (default "
                   "stsb:dev:spearman; any task of eval --tasks and its metrics, its direction respected, e.g. "
                   "sickr:dev:pearson, stsb-retrieval:dev:mrr@10, a user's sts:FILE[:LOW-HIGH]:spearman or "
                   "retrieval:FILE:mrr@10)", "resume": "continue from the last checkpoint",
         "precision": "accelerate's mixed precision: auto (bf16 where native, else fp16 on CUDA, else fp32), "
                      "fp32, bf16 or fp16 (CUDA; gradient scaling); accelerate launch --mixed_precision is "
                      "honoured",
         "progress": "show a progress bar on stderr (default: when stderr is a terminal)",
         "output_dir": "the run directory to write (metrics.jsonl, best/, final/, summary.json, checkpoints/)",
         "cos_reg": "weight of the cosine regulariser (mean pairwise cosine of the batch's anchor embeddings) "
                    "added to the loss; 0: off (default)",
         "keep_checkpoints": "keep the newest N training-state checkpoints (default 2); 0: keep all, for "
                             "analyze --trajectory RUN_DIR",
         "mini_batch_size": "encode at most N sentences at a time and recompute them in the backward pass "
                            "(gradient cache): activation memory of N sentences whatever --batch-size, for one "
                            "more forward pass per step; the same loss and gradients (0: off, default)",
         "lora_r": "train a LoRA adapter of this rank (peft; pip install 'simcse-lab[llm]') instead of every "
                   "weight; 0: off (default)",
         "lora_alpha": "LoRA scaling alpha (default 32; LLM2Vec: 2 x r)",
         "lora_dropout": "dropout on the LoRA adapter's input (default 0.05)",
         "lora_targets": "comma-separated module names that get an adapter (default: the backbone family's "
                         "attention and MLP projections, LLM2Vec's q,k,v,o,gate,up,down_proj for Llama-style "
                         "decoders)",
         "merge_lora": "best/ and final/ with the adapter merged into the weights (default), or "
                       "--no-merge-lora: adapter directories on --model",
         "init_adapter": "an adapter directory (e.g. an MNTP run's final/ saved with --no-merge-lora) merged "
                         "into the weights before the new LoRA adapter, as LLM2Vec stacks them",
         "weights_dtype": "fp32 (default) or bf16: the frozen backbone weights in bf16 under a LoRA adapter "
                          "(half the weights' memory)",
         "attention_dropout": "the backbone config's attention dropout (LLM2Vec's simcse_dropout 0.3: the noise of "
                              "unsupervised SimCSE on decoders whose config has none); -1: the model's own (default)",
         "gradient_checkpointing": "recompute each layer's activations in the backward pass (transformers' "
                                   "gradient checkpointing): less activation memory, one more forward pass"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from simcse_lab.training.config import FIELDS
    from simcse_lab.training.objective_options import all_options

    p.add_argument("--config", default=None, help="YAML file of options (flags given here override it)")
    helps = {**HELPS, **{option.name: option.help for option in all_options()}}  # each objective's own, named
    for name, field in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}.get(field.type)
        if field.type == "bool":
            p.add_argument(flag, action=BOOL, default=None, help=helps.get(name, f"default {field.default}"))
        else:
            p.add_argument(flag, type=kind, default=None, help=helps.get(name, f"default {field.default}"))


def run(args) -> int:
    import os

    from simcse_lab.commands import _validate
    from simcse_lab.data.spec import parse_spec
    from simcse_lab.io import claim_output_dir, release_output_dir
    from simcse_lab.runtime.progress import library_bars
    from simcse_lab.training.config import FIELDS, load_config

    cfg = load_config(args.config, {name: getattr(args, name) for name in FIELDS})
    library_bars(cfg.progress)
    _validate.process_env()
    # cheapest first, and everything before a model loads or a row is tokenised: the data (a registry set
    # missing here is fetched now, by the main process only; offline that is one line), the model (a hub id
    # offline: one line in a second), then, with the first torch import, the launcher's precision against
    # --precision, the trackers and the columns the objective reads
    parse_spec(cfg.data, default_split="train", fetch=os.environ.get("RANK", "0") == "0")
    if cfg.eval_steps:  # the --select task's data (a user's file is read and checked here)
        from simcse_lab.evaluation.tasks import parse_select

        selection = parse_select(cfg.select)
        selection.task.check(selection.split)
    from simcse_lab.modeling.resolve import check_loadable

    _not_an_adapter(check_loadable(cfg.model).path, cfg.model)
    from simcse_lab.runtime.precision import training_precision
    from simcse_lab.training.examples import check_training_data
    from simcse_lab.training.tracking import parse_report_to

    from simcse_lab.training.backbone import family_precision, resolve_backbone

    family = resolve_backbone(cfg)  # the model's config.json: pooler, max length, packing, MLM against its family
    family_precision(family, training_precision(cfg.precision), cfg.precision, note=False)  # the loop says it
    parse_report_to(cfg.report_to)
    check_training_data(cfg, fetch=False)
    from simcse_lab.training.objectives import OBJECTIVES

    OBJECTIVES[cfg.objective].check_run(cfg)  # e.g. a template's mask token against the tokenizer
    # every rank may: a directory of ours, or refused before any work; the main process locks it for the run,
    # so that a second run into it is refused before it touches anything
    main = os.environ.get("RANK", "0") == "0"
    claim_output_dir(cfg.output_dir, "train", lock=main)
    try:
        from simcse_lab.training.loop import train

        train(cfg)
    finally:
        release_output_dir(cfg.output_dir)
    return 0


def _not_an_adapter(path: str, model: str) -> None:
    """An adapter directory is trained on as its base model with the adapter merged in (--init-adapter), which
    --model alone would not say: one line naming that."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.lora import adapter_meta, is_adapter_dir

    if is_adapter_dir(path):
        base = adapter_meta(path).base_model
        raise UserError(f"--model {model}: an adapter directory; to train from it, give its base model and the "
                        f"adapter: --model {base} --init-adapter {path}")
