"""Measuring models: size, latency, fidelity to the original, accuracy against labels."""
