"""The one place simcse-lab calls the loaders of transformers and sentence-transformers.

Why one place: a model folder is data, possibly someone else's, and must never run code. Here

- every loader gets ``trust_remote_code=False`` (transformers then raises instead of asking "[y/N]"
  on stdin, and sentence-transformers refuses module classes from the folder);
- a local folder that asks for its own code is refused with one line before anything is loaded:
  ``auto_map`` in its ``config.json`` / ``tokenizer_config.json`` / processor configs (also in the
  Transformer module's folder of a sentence-transformers directory), or a ``modules.json`` naming a
  class outside ``sentence_transformers``. A ``modules.json`` that is not valid JSON is named;
- an ONNX graph (an export of ``simcse-lab export --format onnx``) that keeps any tensor in an external
  data file is refused (onnxruntime would read that file relative to the working directory, even for a
  graph handed over as bytes); the graph goes to onnxruntime with no custom-op library registered, so it
  can only use onnxruntime's own operators (:func:`load_onnx_session`);
- a peft (LoRA) adapter directory is read from its ``adapter_model.safetensors`` only; one holding pickled
  weights alone (``adapter_model.bin``) is refused (:func:`load_peft_adapter`);
- transformers' "Loading weights" / "Writing model shards" progress bars and its LOAD REPORT table
  (whose MISSING rows are, for simcse-lab, the pooler it drops on purpose) are silenced for the
  duration of each call: the verbosity goes to ERROR, so real errors are still logged, and loading
  problems that matter (missing, mismatched weights) are raised as exceptions by transformers itself.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from simcse_lab.errors import InputError, UserError, first_line

NO_REMOTE_CODE = {"trust_remote_code": False}
# files in which transformers looks for auto_map (custom configuration / model / tokenizer / processor classes)
CONFIG_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


@contextmanager
def quiet():
    """transformers' own progress bars off and its logging at ERROR for the block; both restored after.
    (A tqdm hook, not disable_progress_bar(): that would also switch the hub's download bars, globally.)"""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # transformers 5; under 4.x only the log level drops
    verbosity = hf_logging.get_verbosity()
    previous = set_hook(lambda factory, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs)) if set_hook else None
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if set_hook:
            set_hook(previous)


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(path, None, f"not valid JSON ({err})") from None


def _refuse_auto_map(folder: Path) -> None:
    for name in CONFIG_FILES:
        path = folder / name
        if path.is_file():
            data = _json(path)
            if isinstance(data, dict) and data.get("auto_map"):
                raise UserError(f"{path}: the model asks to run its own code (auto_map); simcse-lab never runs "
                                f"code from a model folder (trust_remote_code=False)")


def check_local_model(path) -> None:
    """Refuse, with one line, a local model folder that would need its own code; a hub id passes (transformers
    itself refuses remote code there, since trust_remote_code=False)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    _refuse_auto_map(folder)
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return
    modules = _json(modules_path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str)
                                                and isinstance(m.get("path", ""), str) for m in modules):
        raise InputError(modules_path, None, "not a sentence-transformers module list")
    for module in modules:
        if not module["type"].startswith("sentence_transformers."):
            raise UserError(f"{modules_path}: module {module['type']!r} is not a sentence-transformers class; "
                            f"simcse-lab never runs code from a model folder")
        sub = (folder / module.get("path", "")).resolve()
        if sub != folder.resolve() and folder.resolve() in sub.parents and sub.is_dir():
            _refuse_auto_map(sub)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    check_local_model(path)
    with quiet():
        return AutoTokenizer.from_pretrained(path, **NO_REMOTE_CODE)


def load_config(path: str):
    """``AutoConfig.from_pretrained(path)``, no remote code: the model's family and shape, no weights read."""
    from transformers import AutoConfig

    check_local_model(path)
    with quiet():
        return AutoConfig.from_pretrained(path, **NO_REMOTE_CODE)


def load_model(path: str, config=None, **kwargs):
    """The encoder at ``path`` (``**kwargs`` e.g. ``output_loading_info=True``), no remote code: the class its
    backbone family names for the encoder alone (``T5EncoderModel`` for a T5), else ``AutoModel``."""
    import transformers

    from simcse_lab.modeling.families import family_of

    config = config if config is not None else load_config(path)
    name = family_of(config).model_class(config)
    model_class = getattr(transformers, name) if name else transformers.AutoModel
    check_local_model(path)
    with quiet():
        return model_class.from_pretrained(path, config=config, **kwargs, **NO_REMOTE_CODE)


def load_with_lm_head(path: str, config, model: str, **kwargs):
    """(the base model, its LM head) of the causal LM at ``path`` (``AutoModelForCausalLM``, no remote code;
    ``**kwargs`` to ``from_pretrained`` as :func:`load_model` takes them, e.g. a dtype): the head MNTP predicts with. A checkpoint without trained LM-head weights (an encoder saved alone) is a one-line
    UserError: a randomly initialised head would be trained as if it were the model's."""
    import transformers

    check_local_model(path)
    with quiet():
        causal, info = transformers.AutoModelForCausalLM.from_pretrained(path, config=config, output_loading_info=True,
                                                                        **kwargs, **NO_REMOTE_CODE)
    head = causal.get_output_embeddings()
    tied = head.weight is causal.get_input_embeddings().weight
    missing = [k for k in info.get("missing_keys", []) if k.split(".")[0] in ("lm_head", "embed_out", "output")]
    if missing and not tied:
        raise UserError(f"{model}: no LM-head weights ({missing[0]}) to predict masked tokens with; MNTP needs the "
                        f"causal LM checkpoint (a saved encoder has none; continue an MNTP run with --resume)")
    return causal.base_model, head


ADAPTER_WEIGHTS = "adapter_model.safetensors"  # peft's safetensors file; its adapter_model.bin is a pickle


def load_peft_adapter(backbone, path: str):
    """``peft.PeftModel.from_pretrained(backbone, path)``, the adapter's weights from safetensors only: a directory
    without :data:`ADAPTER_WEIGHTS` (pickled weights, which peft would read with ``torch.load``) is one line."""
    import peft

    if not (Path(path) / ADAPTER_WEIGHTS).is_file():
        raise UserError(f"{path}: no {ADAPTER_WEIGHTS}; simcse-lab reads adapter weights from safetensors only "
                        f"(save the adapter with peft's safe_serialization=True)")
    _refuse_auto_map(Path(path))
    with quiet():
        model = peft.PeftModel.from_pretrained(backbone, path)
    _check_adapter_loaded(model, Path(path))
    return model


def _check_adapter_loaded(model, path: Path) -> None:
    """Every adapter weight of the model came from the file, and the file holds no other: peft only warns about
    missing keys (a file saved from a differently wrapped model), and leaves those weights at their initial values
    (lora_B = 0: an adapter that changes nothing), which would embed as the base model does."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    with safe_open(str(path / ADAPTER_WEIGHTS), "pt") as f:
        saved = set(f.keys())
    loaded = set(get_peft_model_state_dict(model))
    missing, unused = sorted(loaded - saved), sorted(saved - loaded)
    if missing or unused:
        which = f"{len(missing)} of the model's adapter weights are not in it (e.g. {missing[0]})" if missing else \
            f"{len(unused)} of its weights fit no module of the model (e.g. {unused[0]})"
        raise UserError(f"{path / ADAPTER_WEIGHTS}: {which}; it was saved from another model or another wrapping "
                        f"of it")


def load_sentence_transformer(path: str, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    check_local_model(path)
    with quiet():
        return SentenceTransformer(path, device=device, **NO_REMOTE_CODE)


def default_prompt(model) -> str:
    """The prompt a SentenceTransformer puts before every text it encodes by default ("" for none)."""
    name = getattr(model, "default_prompt_name", None)
    return (getattr(model, "prompts", None) or {}).get(name, "") if name else ""


def sentence_transformer_from_modules(modules, device: str | None = None, prompts: dict | None = None):
    """A SentenceTransformer assembled from module objects (nothing read from disk); ``prompts``: its
    ``prompts`` / ``default_prompt_name`` arguments, where it has them."""
    from sentence_transformers import SentenceTransformer

    with quiet():
        return SentenceTransformer(modules=modules, device=device, **(prompts or {}))


def transformer_module(path: str, **kwargs):
    """sentence-transformers' Transformer module over the Hugging Face folder ``path``, no remote code."""
    from sentence_transformers.sentence_transformer.modules import Transformer

    check_local_model(path)
    safe = {key: {**(kwargs.pop(key, None) or {}), **NO_REMOTE_CODE}
            for key in ("model_kwargs", "processor_kwargs", "config_kwargs")}
    with quiet():
        return Transformer(path, **kwargs, **safe)


def require_onnx():
    """(onnx, onnxruntime), the optional ``onnx`` extra; missing, it is one line saying how to install it."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise UserError(f"ONNX models need the onnx extra: pip install 'simcse-lab[onnx]' ({err.name} is not "
                        f"installed)") from None
    return onnx, onnxruntime


_MESSAGE_FIELDS: dict[str, list] = {}


def _message_fields(descriptor) -> list:
    """The fields of a protobuf message type that hold messages (singular or repeated); never its bytes fields,
    so walking a model does not copy its weights."""
    if descriptor.full_name not in _MESSAGE_FIELDS:
        _MESSAGE_FIELDS[descriptor.full_name] = [f for f in descriptor.fields if f.message_type is not None]
    return _MESSAGE_FIELDS[descriptor.full_name]


def _all_tensors(model):
    """Every ``TensorProto`` anywhere in a parsed ONNX model, found through the protobuf descriptors rather than
    a list of known places: initializers, sparse initializers (values and indices), node attributes (``t``,
    ``tensors``, ``sparse_tensor``, ``sparse_tensors``), subgraphs (``g``, ``graphs``) at any depth, functions,
    training info, and whatever a later ONNX version adds."""
    from onnx import TensorProto

    stack = [model]
    while stack:
        message = stack.pop()
        if isinstance(message, TensorProto):
            yield message
            continue  # a tensor holds no tensors (its external_data entries are key/value strings)
        for field in _message_fields(message.DESCRIPTOR):
            value = getattr(message, field.name)
            if hasattr(value, "DESCRIPTOR"):  # a singular message field: only when set
                if message.HasField(field.name):
                    stack.append(value)
            else:
                stack.extend(value)


def load_onnx_session(path, threads: int | None = None):
    """An onnxruntime CPU session over the ONNX graph file ``path`` (see the module docstring); a file
    onnxruntime cannot load, or a graph that keeps any tensor in an external file (onnxruntime would read it
    relative to the working directory), is one line naming it."""
    onnx, ort = require_onnx()
    path = Path(path)
    try:
        graph = path.read_bytes()
    except OSError as err:
        raise InputError(path, None, f"cannot read the ONNX graph ({err.strerror})") from None
    try:
        model = onnx.load_model_from_string(graph)
    except Exception as err:  # protobuf's DecodeError and friends
        raise InputError(path, None, f"not a loadable ONNX graph ({err.__class__.__name__})") from None
    external = next((t for t in _all_tensors(model)
                     if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)), None)
    if external is not None:
        raise InputError(path, None, f"tensor {external.name or '(unnamed)'!r} is kept in an external data file; "
                                     f"simcse-lab loads only self-contained graphs (as `simcse-lab export --format "
                                     f"onnx` writes)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...): one line, not a traceback
        raise InputError(path, None, f"not a loadable ONNX graph ({first_line(err)})") from None
