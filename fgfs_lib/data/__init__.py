"""Datasets: the embedded FashionSynth generator and readers for the five real datasets.

Introduced in ``notebooks/01_datasets.py``.

CONTRACT (other modules rely on these names; keep them stable):

``DatasetMeta``            name, ``attribute_names`` (list[str]), ``value_names``
                           (list[list[str]]), ``num_values`` (list[int]), ``num_attributes``.
``ImageSplit``             a ``torch.utils.data.Dataset`` over one split's images:
                           ``labels`` LongTensor [N, A] (-1 = not applicable / unknown),
                           ``__getitem__(i)`` -> (float image [3,H,W] normalised, i),
                           ``__getitems__(idx)`` / ``batch(idx)`` -> float [B,3,H,W] (fast
                           path for in-memory data), ``image_size``, ``boxes`` (float
                           [N, A, 4] pixel x0,y0,x1,y1, NaN where unknown; ``None`` for real
                           data), ``mask(i, a)`` -> bool [H,W] ground-truth region.
``RetrievalData``          ``meta``, ``train``/``valid``/``test`` ImageSplits,
                           ``{valid,test}_queries`` and ``{valid,test}_candidates`` LongTensor
                           [Q,3] rows (image index in that split, attribute id, value id),
                           ``root`` and ``config`` (the generator settings, recorded).
``load(name, root=None, cfg=None, protocol="fashionai")`` -> RetrievalData
"""
