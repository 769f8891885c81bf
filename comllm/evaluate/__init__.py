"""Evaluation: closed loop on the simulator, open loop on a fixed test set, metrics."""
