"""Optimisation on plain arrays: H-EMD selection, joint ILP, LAP, top-K, probabilities.

Nothing here knows about SQL or torch; inputs and outputs are numpy arrays and frozen dataclasses
from :mod:`solvers.types`.
"""
