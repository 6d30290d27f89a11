"""Training: the loop on accelerate and what it keeps (run state, resumable checkpoints, all of them with
keep_checkpoints 0, tokens/s and achieved TFLOP/s), its config, sampler and examples (the --data spec tokenised at
scale), experiment tracking, the auxiliary masked-token loss (BERT's MLM, a decoder's MNTP), and the objectives (training/objectives/, with the cosine
regulariser any of them can add).
Tests: tests/integration/test_train_loop.py, tests/training/test_train_data.py, tests/training/test_training_precision.py, tests/training/test_tracking.py,
tests/training/test_config.py, tests/integration/test_distributed.py, tests/training/test_objective_plugin.py, tests/training/test_objectives.py,
tests/training/test_checkpoint_safety.py, tests/training/test_cos_reg.py, tests/training/test_trajectory.py, tests/modeling/test_length_chunks.py,
tests/modeling/test_packing.py, tests/modeling/test_mini_batches.py, tests/training/test_sampler.py, tests/training/test_mntp.py, tests/training/test_conpvp.py."""
