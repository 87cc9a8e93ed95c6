"""kb: Japanese knowledge-base search, related cases and Q&A for municipal BPO work."""
__version__ = "0.1.0"
