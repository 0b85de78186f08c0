"""Imports the modules that register ops beyond the Keras vocabulary (kept lazy-free and explicit)."""
