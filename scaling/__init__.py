"""Measurements of scaling rules: coordinate checks, update sizes, sharpness, one-step loss
polynomials, LR transfer; `python -m scaling PROBE ...` writes JSON and a plot for each."""
