"""Benchmarks: pixelforge side by side with what users would write otherwise (``python -m bench.<name>``)."""
