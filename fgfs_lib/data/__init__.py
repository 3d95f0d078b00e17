"""Datasets: the embedded FashionSynth generator and readers for the five real datasets.

Introduced in ``notebooks/01_datasets.py``.

CONTRACT (other modules rely on these names; keep them stable):

``DatasetMeta``            name, ``attribute_names`` (list[str]), ``value_names``
                           (list[list[str]]), ``num_values`` (list[int]), ``num_attributes``.
``ImageSplit``             a ``torch.utils.data.Dataset`` over one split's images:
                           ``labels`` LongTensor [N, A] (-1 = not applicable / unknown),
                           ``__getitem__(i)`` -> (float image [3,H,W] normalised, i),
                           ``__getitems__(idx)`` / ``batch(idx, augment=False, generator=None)``
                           -> float [B,3,H,W] (one indexing op for in-memory data),
                           ``image_size``, ``boxes`` (float [N, A, 4] pixel x0,y0,x1,y1, NaN
                           where the attribute does not apply; ``None`` for real data),
                           ``mask(i, a)`` -> bool [H,W] ground-truth region,
                           ``region_masks(indices, attributes)`` -> bool [B,H,W],
                           ``denormalize(x)`` -> [0, 1] for display, ``raw(idx)`` -> uint8.
``RetrievalData``          ``meta``, ``train``/``valid``/``test`` ImageSplits,
                           ``{valid,test}_queries`` and ``{valid,test}_candidates`` LongTensor
                           [Q,3] rows (image index in that split, attribute id, value id),
                           ``root`` and ``config`` (the generator settings, recorded).
``load(name, root=None, cfg=None, protocol="fashionai", **options)`` -> RetrievalData

Datasets (``DATASETS``): ``fashionsynth`` (generated, cached under
``cfg.data_dir / "fashionsynth" / <config hash>``), ``fashionai``, ``darn``, ``deepfashion``
(ASEN split format, :mod:`.asen_format`; FashionAI's raw Tianchi CSV is converted by
:func:`.fashionai.convert_fashionai_csv`), ``shopping100k`` (ADDE format,
:mod:`.shopping100k`) and ``zappos50k`` (CSN triplet lists, :mod:`.zappos`; ``load`` returns a
:class:`.zappos.TripletData` for it, the triplet-relation task has no queries).

Protocols: ``"fashionai"`` (rows ``(image, attribute, value)``; a query is ranked against
the candidates of its attribute. FashionSynth: every applicable attribute of every valid/test
image is a row, and 20 % of the images of each garment category are queries for all their
attributes, :func:`.core.stratified_protocol`. Real data: the folder's own files, one
attribute per image in FashionAI's; :func:`.fashionai.convert_fashionai_csv` draws them with
:func:`.core.fashionai_protocol`, 20 % of each attribute's images as queries) and
``"multilabel"`` (every applicable attribute of every image; 20 % of all the images are
queries, drawn without regard to category: for search with attribute manipulation).

FashionSynth options (``load("fashionsynth", cfg=cfg, num_images=600, image_size=32)``, or
``detail_scale``, ``clutter`` ...) are listed in :mod:`.synth`; the dataset seed defaults to 0
(the same data for every training seed) and can be set with ``seed=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core import IMAGENET_MEAN, IMAGENET_STD, PROTOCOLS, DatasetMeta, ImageSplit, RetrievalData
from .files import DataFormatError, Problem

DATASETS = ("fashionsynth", "fashionai", "darn", "deepfashion", "zappos50k", "shopping100k")

__all__ = [
    "DATASETS", "DatasetMeta", "ImageSplit", "RetrievalData", "DataFormatError", "Problem", "load",
    "IMAGENET_MEAN", "IMAGENET_STD", "check_name",
]


def check_name(name: str) -> str:
    """The dataset name in lower case; a ValueError listing the valid names otherwise."""
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def load(name: str = "fashionsynth", root: str | Path | None = None, cfg: Any = None, protocol: str = "fashionai",
         image_size: int | None = None, **options: Any):
    """Load a dataset as :class:`RetrievalData` (``TripletData`` for zappos50k).

    ``fashionsynth``: with ``root=None`` the profile's dataset is generated on first use
    (18 s with 2 processes in the quick profile) and cached under ``cfg.data_dir``; with a
    ``root`` (a folder written by ``make-data``) it is read from there. Real datasets are read
    from ``root`` (default ``cfg.data_dir / name``). ``image_size`` (real data) defaults to
    the profile's (64 quick, 224 full).
    """
    from .. import config as config_module
    from . import asen_format

    key = check_name(name)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    cfg = cfg if cfg is not None else config_module.load()
    size = image_size if image_size is not None else cfg.pick(quick=64, full=224)
    if key == "fashionsynth":
        from . import synth

        if root is None:
            folder = synth.ensure_fashionsynth(cfg, **options,
                                               **({"image_size": image_size} if image_size else {}))
        else:
            if options:
                raise TypeError(f"options {sorted(options)} only apply when generating (root=None)")
            folder = Path(root)
        return asen_format.load_folder(folder, protocol, image_size=size, name="fashionsynth", dataset=key)
    if options:
        raise TypeError(f"unexpected options {sorted(options)} for dataset {key!r}")
    folder = Path(root) if root is not None else Path(cfg.data_dir) / key
    if key == "zappos50k":
        from . import zappos

        return zappos.load_zappos(folder, image_size=size)
    if key == "shopping100k":
        from . import shopping100k

        return shopping100k.load_shopping100k(folder, image_size=size, protocol=protocol)
    return asen_format.load_folder(folder, protocol, image_size=size, name=key, dataset=key)
