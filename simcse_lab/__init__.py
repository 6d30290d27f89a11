"""simcse-lab: contrastive sentence-embedding training (SimCSE family), evaluation and analysis."""

__version__ = "0.1.0"
