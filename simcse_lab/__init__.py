"""simcse-lab: contrastive sentence-embedding training (SimCSE family), evaluation and analysis.

One subpackage per capability; imports go one way (tests/test_layout.py):
errors, io <- data, runtime <- modeling <- evaluation <- analysis <- training; export and search use
data, runtime, modeling and evaluation; commands (the CLI) may use everything, and nothing imports it.
"""

__version__ = "0.1.0"
