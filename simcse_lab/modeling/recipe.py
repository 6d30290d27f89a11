"""How a saved model embeds: the :class:`EmbeddingRecipe` written beside every model simcse-lab writes.

A model directory simcse-lab writes (a training run's ``best/`` and ``final/``, every export) holds
``simcse_lab_recipe.json`` (:data:`RECIPE_FILE`): the pooler, whether a decoder LLM attends bidirectionally,
whether EOS is appended to every input, the instruction put before each input (empty: none), and the input
template with its denoising flag (PromptBERT: :mod:`simcse_lab.modeling.template`; empty: none). The loader
(:class:`~simcse_lab.modeling.encoder.Encoder`, through :func:`read_recipe`) applies it, so that
``eval --model RUN/best`` embeds exactly as training did.

Two layouts carry a recipe:

- a sentence-transformers directory (``modules.json``) with the recipe beside it: what sentence-transformers runs
  is what the recipe says (EOS is appended by the saved tokenizer itself; a decoder is causal, or bidirectional
  through its family's own config flag, e.g. Gemma's ``use_bidirectional_attention``);
- simcse-lab's own layout (:data:`BACKBONE_DIR`): ``simcse_lab_recipe.json`` + ``backbone/`` (a Hugging Face
  folder: config, weights, tokenizer), and no ``modules.json`` or ``config.json`` at the top. It is written for a
  model that sentence-transformers and ``AutoModel`` cannot run as trained -- a decoder made bidirectional where
  transformers has no config flag for it (Llama, Mistral, Qwen2/3, Phi-3, GPT-2): they would run it causal, so
  the top level is one they refuse to load rather than load wrong. ``export --format onnx`` turns it into a graph
  any ONNX runtime runs bidirectionally; ``--format sentence-transformers`` / ``hf`` refuse it in one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from simcse_lab.errors import InputError

RECIPE_FILE = "simcse_lab_recipe.json"
BACKBONE_DIR = "backbone"  # simcse-lab's own layout: the Hugging Face folder under the recipe
FORMAT = 1


@dataclass(frozen=True)
class EmbeddingRecipe:
    """What turns the saved weights into the vectors training produced."""

    pooler: str                 # a simcse-lab pooler name (simcse_lab.modeling.pooling)
    bidirectional: bool = False  # a decoder LLM run with bidirectional attention (simcse_lab.modeling.attention)
    append_eos: bool = False    # EOS appended to every input (the family's rule, applied to the tokenizer)
    instruction: str = ""       # text put before every input (empty: none)
    template: str = ""          # the input template, '... {sentence} ... [MASK] ...' (empty: none)
    template_denoise: bool = False  # the template's own mask state (for the sentence's length) is subtracted
    continuous_prompt: int = 0  # ConPVP: learned vectors of the anchor prompt (continuous_prompt.safetensors); 0: none

    def to_dict(self) -> dict:
        """The fields to save; the template's and the continuous prompt's only where there is one, so a recipe without
        them is written as it was before they existed."""
        data = asdict(self)
        if not self.template:
            del data["template"], data["template_denoise"]
        if not self.continuous_prompt:
            del data["continuous_prompt"]
        return data

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self.to_dict()}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str | Path = RECIPE_FILE) -> EmbeddingRecipe:
        """The recipe in ``text``; anything else (not JSON, a missing or unknown field, a wrong type, another
        format) is one line naming ``where``."""
        try:
            data = json.loads(text)
        except ValueError as err:
            raise InputError(where, None, f"not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(where, None, f"not a simcse-lab embedding recipe of format {FORMAT}")
        return cls.from_dict({k: v for k, v in data.items() if k != "format"}, where)

    @classmethod
    def from_dict(cls, data: dict, where: str | Path = RECIPE_FILE) -> EmbeddingRecipe:
        """The recipe of the fields in ``data``; an unknown or missing field, a wrong type is one line naming
        ``where``."""
        expected = {f.name: type(f.default) if f.name != "pooler" else str for f in fields(cls)}
        unknown = sorted(set(data) - set(expected))
        if unknown or "pooler" not in data:
            raise InputError(where, None, f"unknown field {unknown[0]!r}" if unknown else "no 'pooler' field")
        for name, value in data.items():
            if not isinstance(value, expected[name]):
                raise InputError(where, None, f"{name!r} must be a {expected[name].__name__}, not {value!r}")
        return cls(**data)

    def write(self, directory) -> Path:
        path = Path(directory) / RECIPE_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path


def read_recipe(directory) -> EmbeddingRecipe | None:
    """The recipe saved in ``directory`` (a local model folder), or None where there is none (a model simcse-lab
    did not write, a hub id)."""
    path = Path(directory) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, None, f"cannot read the recipe ({err})") from None
    return EmbeddingRecipe.from_json(text, path)


def is_own_layout(directory) -> bool:
    """simcse-lab's own layout: a recipe and a ``backbone/`` Hugging Face folder."""
    root = Path(directory)
    return (root / RECIPE_FILE).is_file() and (root / BACKBONE_DIR / "config.json").is_file()
