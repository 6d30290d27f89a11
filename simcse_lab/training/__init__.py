"""Training: the loop on accelerate and what it keeps (run state, resumable checkpoints, all of them with
keep_checkpoints 0, tokens/s and achieved TFLOP/s), its config, sampler and examples (the --data spec tokenised at
scale), experiment tracking, the auxiliary masked-token loss (BERT's MLM, a decoder's MNTP), and the objectives (training/objectives/, with the cosine
regulariser any of them can add).
Tests: tests/test_train_loop.py, tests/test_train_data.py, tests/test_training_precision.py, tests/test_tracking.py,
tests/test_config.py, tests/test_distributed.py, tests/test_objective_plugin.py, tests/test_objectives.py,
tests/test_checkpoint_safety.py, tests/test_cos_reg.py, tests/test_trajectory.py, tests/test_length_chunks.py,
tests/test_packing.py, tests/test_mini_batches.py, tests/test_sampler.py, tests/test_mntp.py, tests/test_conpvp.py."""
