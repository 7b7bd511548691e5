"""tinylm: pretrain small language models on small data with unconventional curricula."""

__version__ = "0.1.0"
