"""Evaluation: physics metrics (classification, regression, P(S|y)), their statistical
uncertainties (``uncertainty``: weighted DeLong and the delta method, paired comparisons) and
plots."""
