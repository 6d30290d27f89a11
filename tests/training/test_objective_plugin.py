"""A fourth objective, written and registered here, outside the package, trains through the unchanged
loop: the base class and the registry are the whole extension point."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from conftest import random_sentences, write_lines

from simcse_lab.training.config import OBJECTIVE_NAMES, TrainConfig
from simcse_lab.training.loop import train
from simcse_lab.modeling.embedder import load_embedder
from simcse_lab.training.objectives import OBJECTIVES
from simcse_lab.training.objectives.base import Objective, register


@register("pull-views")
class PullViews(Objective):
    """Pull two dropout views of each sentence together: mean squared distance of the unit vectors (no
    negatives, a per-rank mean, so nothing to gather). Counts its steps to exercise the hooks."""

    def __init__(self, tokenizer, temperature: float = 0.05):
        super().__init__(tokenizer, temperature)
        self.steps_seen = 0

    def collate(self, examples: list[list[int]], step: int) -> dict:
        return self.pad(examples + examples)

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return model(**batch).chunk(2)

    def loss_from_embeddings(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return (F.normalize(z1.float(), dim=-1) - F.normalize(z2.float(), dim=-1)).pow(2).sum(-1).mean()

    def after_step(self, model) -> None:
        self.steps_seen += 1

    def extra_state(self) -> dict:
        return {"steps_seen": self.steps_seen}

    def load_extra_state(self, state: dict) -> None:
        self.steps_seen = state["steps_seen"]


def test_the_config_accepts_exactly_the_registered_objectives():
    # the config checks names without importing torch; the registry is where the classes are
    assert OBJECTIVE_NAMES[:3] == ["unsup", "sup", "esimcse"]
    assert set(OBJECTIVE_NAMES) == set(OBJECTIVES) and OBJECTIVES["pull-views"] is PullViews


def test_a_plugged_in_objective_trains_through_the_loop(tmp_path, tiny_bert):
    data = write_lines(tmp_path / "corpus.txt", random_sentences(48))
    cfg = TrainConfig(model=str(tiny_bert), data=str(data), objective="pull-views", pooler="avg", batch_size=8,
                      max_seq_len=16, lr=1e-3, max_steps=3, eval_steps=0, test_tasks="none", precision="fp32",
                      log_steps=1, progress=False, output_dir=str(tmp_path / "run"))
    summary = train(cfg)
    assert summary["steps"] == 3 and (tmp_path / "run" / "final" / "modules.json").is_file()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(0 < x < 4 for x in losses) and len(set(losses)) > 1
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-0000003" / "state.pt", weights_only=False)
    assert state["objective"] == {"steps_seen": 3}  # after_step ran every step; extra_state was saved
    _, start = load_embedder(str(tiny_bert), "avg", False)
    moved = [k for k, v in start.state_dict().items() if not torch.equal(v, state["model"][k])]
    assert moved, "the objective's loss did not reach the weights"
