"""Evaluation: physics metrics (classification, regression, P(S|y)) and plots."""
