"""Experiments: sweeps over policies × scenarios × loads × seeds, and the end-to-end pipeline."""
