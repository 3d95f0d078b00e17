"""Models: backbones, baselines (triplet network, CSN), ASEN, and the methods after it.

One module per model; each module's docstring names the paper, the equations it
implements and the notebook that introduces it.
"""


def load_released(path, source, num_attributes, **options):
    """The authors' checkpoint ``path`` as our model in eval mode (:mod:`fgfs_lib.models.released`)."""
    from .released import load_released as load

    return load(path, source, num_attributes, **options)
