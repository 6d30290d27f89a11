"""A fake ``simcse-lab train`` for the sweep's scheduling tests (run as ``python -m fake_train train ...`` through
the sweep's trainer hook): it locks its run directory as train does (refused: exit 2), appends "RUN_DIR PID" to
$FAKE_TRAIN_LOG, sleeps $FAKE_TRAIN_SECONDS, then writes a summary.json whose numbers come from its seed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.io import claim_output_dir


def main(argv: list[str]) -> int:
    out, seed = Path(argv[argv.index("--output-dir") + 1]), int(argv[argv.index("--seed") + 1])
    try:  # as train does: the run directory locked for this process, or refused (another run writes into it)
        claim_output_dir(out, "train", lock=True)
    except UserError as err:
        print(err)
        return 2
    with open(os.environ["FAKE_TRAIN_LOG"], "a") as log:
        log.write(f"{out} {os.getpid()}\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
    out.mkdir(parents=True, exist_ok=True)
    spearman = 70.0 + seed
    summary = {"best_dev_spearman": 80.0 + seed,
               "test_after": {"tasks": {"stsb": {"spearman": spearman}, "sickr": {"spearman": spearman - 1}},
                              "avg": spearman - 0.5, "geometry": {"avg": {"alignment": 0.1, "uniformity": -2.0},
                                                                  "isotropy": {"isoscore": 0.3}}}}
    (out / "summary.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
