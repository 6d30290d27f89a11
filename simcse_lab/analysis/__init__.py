"""Analysis: the geometry report behind `simcse-lab analyze` (isotropy, per-layer profile, token-level
degeneration, token-level dynamics, BERT-whitening and BERT-flow, the raw / + whitening / + flow comparison
table, a training trajectory point by point) and its figures.
Extension points: an analysis section is one module in `sections/` (a `Section`: its flags, measurement,
report.md chapter, figures and printed summary lines; listed in `sections.build`); a post-hoc map is one module
implementing `post_hoc.PostHocMap` (fit on a corpus's vectors, apply to any, describe itself), named in
`maps.MAPS`, and is then used by `eval`, `analyze` and the comparison table alike.
Tests: tests/analysis/test_analyze.py, tests/analysis/test_degeneration.py, tests/analysis/test_token_dynamics.py, tests/analysis/test_whitening.py,
tests/analysis/test_flow.py, tests/training/test_trajectory.py, tests/analysis/test_eval_post_hoc.py, tests/evaluation/test_tables.py,
tests/analysis/test_report_sections.py."""
