"""Models: backbones, baselines (triplet network, CSN), ASEN, and the methods after it.

One module per model; each module's docstring names the paper, the equations it
implements and the notebook that introduces it.
"""
