"""Attribute activation maps (CAM), the boxes drawn from them, and ROI features.

Introduced in ``notebooks/03_cam_localization.py``.

Papers and equations
--------------------
* FashionSearchNet (Ak et al., "Fashion search with attribute manipulation"), eq. 2:
  the *attribute activation map* of class ``c`` of attribute ``a`` is the class
  activation map (Zhou et al. 2016) of that attribute's linear head on globally
  average-pooled features::

      M_ac(I, i, j) = sum_k w_a(k, c) conv_k(I, i, j)                       (eq. 2)

  ``c`` is the class with the highest confidence unless one is chosen. Because the head
  sees the *average* of ``conv_k``, the spatial mean of ``M_ac`` plus the head's bias is
  exactly the logit of class ``c`` (a check used in the tests). The bias is a constant
  shift and is left out of the map, as in CAM.

  Its box: "the pixel values that are above 20% of the maximum value are segmented and a
  bounding box is estimated which covers the largest segmented region"
  (:func:`fsn_boxes`).
* ASEN++ (Dong et al., TIP 2021), local branch: upsample the attention map to the image,
  min-max normalise, threshold at 0.1, take the bounding box of *all* foreground pixels,
  make it square (side = the longer edge, at most the frame), and shift it inside the frame
  (:func:`asen_boxes`). The reference code cropped with OpenCV image by image; here a crop
  is one batched ``torchvision.ops.roi_align`` call (:func:`roi_features`).

Conventions
-----------
* Maps are tensors ``[..., H, W]`` (any leading batch dimensions).
* Boxes are float ``(x0, y0, x1, y1)`` in *continuous pixel coordinates*: pixel column
  ``x`` covers ``[x, x + 1)``, so a box around columns 3..5 is ``x0 = 3, x1 = 6`` and its
  width is ``x1 - x0`` pixels. ``roi_align`` is called with ``aligned=True``, which uses
  this convention (pixel centres at ``x + 0.5``).
* Both box functions first min-max normalise each map (``(m - min) / (max - min)``), the
  practice of the CAM reference code. For a map whose minimum is 0 (e.g. after a ReLU)
  "above 20% of the maximum" and "normalised value above 0.2" are the same thing; for a
  CAM with negative values the normalisation is what keeps the threshold meaningful.
* **Empty or constant map.** A constant map (all zeros included) says nothing about
  where the attribute is: both box functions return the *whole frame*
  ``(0, 0, W, H)``, i.e. they fall back to the whole-image baseline. A non-constant map
  always has foreground (its maximum normalises to 1). Maps with NaN or inf are rejected.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "class_activation_maps",
    "upsample_maps",
    "attribute_activation_maps",
    "normalize_maps",
    "mask_to_box",
    "largest_region",
    "fsn_boxes",
    "asen_boxes",
    "roi_features",
    "localisation_scores",
    "centre_boxes",
    "whole_image_boxes",
    "centre_gaussian_maps",
    "position_prior",
    "centroids",
    "centroid_correlation",
]


# ---------------------------------------------------------------------------------------
# Maps (eq. 2)
# ---------------------------------------------------------------------------------------


def class_activation_maps(features: Tensor, head_weight: Tensor, classes: Tensor | None = None) -> Tensor:
    """Eq. 2 for one attribute: ``M[b, i, j] = sum_k w[c_b, k] * features[b, k, i, j]``.

    ``features``: [B, C, h, w] (the conv features the GAP head sees); ``head_weight``:
    [n_classes, C] (``nn.Linear.weight`` of the attribute's head); ``classes``: [B] class
    per image, or ``None`` for the maps of *every* class -> [B, n_classes, h, w].
    Returns [B, h, w] when ``classes`` is given.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, h, w], got shape {tuple(features.shape)}")
    if head_weight.dim() != 2 or head_weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"head_weight must be [n_classes, C={features.shape[1]}], got {tuple(head_weight.shape)}"
        )
    # every class at once: [B, n, h, w] = sum_k w[n, k] * conv_k
    all_maps = torch.einsum("nk,bkhw->bnhw", head_weight, features)
    if classes is None:
        return all_maps
    classes = torch.as_tensor(classes, device=features.device).long()
    if classes.shape != (features.shape[0],):
        raise ValueError(f"classes must be [B={features.shape[0]}], got {tuple(classes.shape)}")
    return all_maps[torch.arange(features.shape[0], device=features.device), classes]


def upsample_maps(maps: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinearly resize maps [..., h, w] to the image size ``size`` (int or (H, W))."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


@torch.no_grad()
def attribute_activation_maps(
    model: torch.nn.Module,
    images: Tensor,
    classes: Tensor | None = None,
    attributes: Sequence[int] | None = None,
    upsample: bool = True,
) -> tuple[Tensor, Tensor]:
    """Attribute activation maps of a GAP classifier for a batch of images.

    ``model`` must expose ``features(images) -> [B, C, h, w]`` and ``heads`` (one
    ``nn.Linear`` per attribute), as :class:`fgfs_lib.models.classifier.AttributeClassifier`
    does. ``classes``: [B, A] chosen class per image and attribute (entries < 0 mean "use
    the predicted class"); ``None`` uses the predicted class everywhere (the paper's
    choice). ``attributes``: which attributes (default all).

    Returns ``(maps, classes_used)``: maps [B, A', H, W] (image size if ``upsample``,
    else the feature map's size) and the classes [B, A'] they belong to.
    """
    attributes = list(range(len(model.heads))) if attributes is None else list(attributes)
    feats = model.features(images)
    pooled = feats.mean(dim=(2, 3))
    maps, used = [], []
    for column, a in enumerate(attributes):
        head = model.heads[a]
        predicted = head(pooled).argmax(dim=1)
        if classes is not None:
            chosen = torch.as_tensor(classes, device=feats.device)[:, column].long()
            predicted = torch.where(chosen >= 0, chosen, predicted)
        maps.append(class_activation_maps(feats, head.weight, predicted))
        used.append(predicted)
    out = torch.stack(maps, dim=1)
    if upsample:
        out = upsample_maps(out, tuple(images.shape[-2:]))
    return out, torch.stack(used, dim=1)


# ---------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------


def _check_finite(maps: Tensor) -> None:
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf; compute the maps from finite features")


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map [..., H, W] to [0, 1]; a constant map becomes all zeros."""
    _check_finite(maps)
    flat = maps.reshape(*maps.shape[:-2], -1).float()
    low = flat.min(dim=-1, keepdim=True).values
    span = flat.max(dim=-1, keepdim=True).values - low
    normed = torch.where(span > 0, (flat - low) / span.clamp_min(1e-30), torch.zeros_like(flat))
    return normed.reshape(maps.shape)


def mask_to_box(mask: Tensor) -> Tensor:
    """Tight box (x0, y0, x1, y1) around the True pixels of masks [..., H, W].

    Continuous coordinates: ``x1 = last column + 1``. An empty mask gives the whole frame.
    """
    H, W = mask.shape[-2:]
    lead = mask.shape[:-2]
    mask = mask.reshape(-1, H, W).bool()
    cols = mask.any(dim=1)  # [n, W]
    rows = mask.any(dim=2)  # [n, H]
    xs = torch.arange(W, device=mask.device)
    ys = torch.arange(H, device=mask.device)
    big = torch.tensor(10**9, device=mask.device)
    x0 = torch.where(cols, xs, big).min(dim=1).values
    x1 = torch.where(cols, xs, -big).max(dim=1).values + 1
    y0 = torch.where(rows, ys, big).min(dim=1).values
    y1 = torch.where(rows, ys, -big).max(dim=1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    whole = torch.tensor([0.0, 0.0, float(W), float(H)], device=mask.device)
    boxes = torch.where(cols.any(dim=1, keepdim=True), boxes, whole)
    return boxes.reshape(*lead, 4)


_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def largest_region(mask: Tensor) -> Tensor:
    """Keep only the largest 8-connected region of each mask [..., H, W].

    Ties in size go to the region met first in raster order (top row first). An empty
    mask stays empty.
    """
    from scipy import ndimage

    H, W = mask.shape[-2:]
    flat = mask.reshape(-1, H, W).bool().cpu().numpy()
    out = np.zeros_like(flat)
    for n, m in enumerate(flat):
        labels, count = ndimage.label(m, structure=_EIGHT_NEIGHBOURS)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]  # label 0 is background
        out[n] = labels == (int(np.argmax(sizes)) + 1)  # argmax: first of equal sizes
    return torch.from_numpy(out).reshape(mask.shape).to(mask.device)


def fsn_boxes(maps: Tensor, threshold: float = 0.2, rule: str = "minmax") -> Tensor:
    """FashionSearchNet's box: the largest connected region above ``threshold`` x max.

    maps [..., H, W] -> boxes [..., 4] (x0, y0, x1, y1), continuous pixel coordinates.
    ``rule`` says what "above 20% of the maximum" is measured against:

    * ``"minmax"`` (this module's default, notebook 03): the min-max normalised map above
      ``threshold``, i.e. ``m > min + threshold (max - min)``; a constant map gives the
      whole frame;
    * ``"max"`` (the paper's words, FashionSearchNet's default in
      :mod:`fgfs_lib.models.fashionsearchnet`): the raw map above ``threshold * max``. For
      a map with negative values this threshold is higher than the min-max one
      (``threshold * max > min + threshold (max - min)`` when ``min < 0``), so boxes are
      as tight or tighter; a map whose maximum is not positive has no foreground and
      gives the whole frame.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if rule == "minmax":
        foreground = normalize_maps(maps) > threshold
    elif rule == "max":
        _check_finite(maps)
        peak = maps.flatten(-2).max(dim=-1).values[..., None, None]
        foreground = (maps > threshold * peak) & (peak > 0)
    else:
        raise ValueError(f"rule must be 'minmax' or 'max', got {rule!r}")
    return mask_to_box(largest_region(foreground))


def asen_boxes(maps: Tensor, threshold: float = 0.1) -> Tensor:
    """ASEN++'s square box: all foreground of the min-max normalised map, squared, inside.

    1. foreground = normalised map > ``threshold``; tight box (x0, y0, x1, y1) around
       *all* foreground pixels (not just the largest region);
    2. square: side = max(width, height), at most min(H, W); centred on the tight box
       (an odd extra pixel goes right/down);
    3. shifted (not shrunk) so it lies inside the frame.

    maps [..., H, W] -> boxes [..., 4]; a constant map gives the whole frame (which is
    not square when the frame is not).
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    H, W = maps.shape[-2:]
    normed = normalize_maps(maps)
    foreground = normed > threshold
    tight = mask_to_box(foreground)
    x0, y0, x1, y1 = tight.unbind(-1)
    side = torch.maximum(x1 - x0, y1 - y0).clamp(max=float(min(H, W)))
    # grow around the tight box: half the missing length on each side (floor on the left)
    nx0 = x0 - torch.div(side - (x1 - x0), 2, rounding_mode="floor")
    ny0 = y0 - torch.div(side - (y1 - y0), 2, rounding_mode="floor")
    # shift inside the frame
    nx0 = torch.minimum(nx0.clamp(min=0.0), W - side)
    ny0 = torch.minimum(ny0.clamp(min=0.0), H - side)
    square = torch.stack([nx0, ny0, nx0 + side, ny0 + side], dim=-1)
    constant = ~foreground.reshape(*foreground.shape[:-2], -1).any(dim=-1)
    whole = torch.tensor([0.0, 0.0, float(W), float(H)], device=maps.device)
    return torch.where(constant.unsqueeze(-1), whole, square)


# ---------------------------------------------------------------------------------------
# ROI features (FashionSearchNet's ROI pooling, ASEN++'s crop), batched
# ---------------------------------------------------------------------------------------


def roi_features(
    feature_map: Tensor,
    boxes: Tensor,
    image_size: int | tuple[int, int],
    output_size: int | tuple[int, int],
    sampling_ratio: int = 2,
) -> Tensor:
    """Crop one box per image from ``feature_map`` with ``torchvision.ops.roi_align``.

    ``feature_map``: [B, C, h, w] computed from images of size ``image_size`` (int or
    (H, W)); ``boxes``: [B, 4] (x0, y0, x1, y1) in *image* pixels (continuous
    coordinates, as returned by :func:`fsn_boxes` / :func:`asen_boxes`). Returns
    [B, C, out_h, out_w]. With ``feature_map = images`` and ``image_size = H`` this is
    ASEN++'s crop-and-resize of the original image, on tensors, for the whole batch.
    """
    from torchvision.ops import roi_align

    if feature_map.dim() != 4:
        raise ValueError(f"feature_map must be [B, C, h, w], got {tuple(feature_map.shape)}")
    B = feature_map.shape[0]
    if boxes.shape != (B, 4):
        raise ValueError(f"boxes must be [B={B}, 4] image-pixel (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    h, w = feature_map.shape[-2:]
    scale_y, scale_x = h / H, w / W
    if abs(scale_y - scale_x) > 1e-6:
        raise ValueError(
            f"feature map {h}x{w} is not a uniform rescale of the image {H}x{W}; roi_align takes one scale"
        )
    rois = torch.cat(
        [torch.arange(B, device=feature_map.device, dtype=feature_map.dtype).unsqueeze(1),
         boxes.to(device=feature_map.device, dtype=feature_map.dtype)],
        dim=1,
    )
    output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return roi_align(feature_map, rois, output_size=output_size, spatial_scale=scale_x,
                     sampling_ratio=sampling_ratio, aligned=True)


# ---------------------------------------------------------------------------------------
# Scores against ground-truth regions
# ---------------------------------------------------------------------------------------


def localisation_scores(maps: Tensor, masks: Tensor, gt_boxes: Tensor, fsn_threshold: float = 0.2,
                        asen_threshold: float = 0.1) -> dict[str, Tensor]:
    """Per-map localisation scores (uses :mod:`fgfs_lib.metrics`).

    ``maps`` [N, H, W] at the image size, ``masks`` [N, H, W] bool ground-truth regions,
    ``gt_boxes`` [N, 4]. Returns tensors [N]: ``pointing`` (1 if the map's maximum is in
    the region), ``mass`` (share of the map's positive mass inside the region),
    ``fsn_iou`` and ``asen_iou`` (IoU of :func:`fsn_boxes` / :func:`asen_boxes` with the
    ground-truth box) and ``area`` (the region's share of the image: what a uniform map
    would score on ``mass``).
    """
    from . import metrics

    masks = masks.bool()
    return {
        "pointing": metrics.pointing_game(maps, masks).float(),
        "mass": metrics.mass_inside(maps, masks).float(),
        "fsn_iou": metrics.box_iou(fsn_boxes(maps, fsn_threshold), gt_boxes).float(),
        "asen_iou": metrics.box_iou(asen_boxes(maps, asen_threshold), gt_boxes).float(),
        "area": masks.flatten(1).float().mean(1),
    }


# ---------------------------------------------------------------------------------------
# Trivial baselines for the localisation tables
# ---------------------------------------------------------------------------------------


def whole_image_boxes(n: int, image_size: int | tuple[int, int]) -> Tensor:
    """``n`` boxes covering the whole frame: the "no localisation" baseline."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return torch.tensor([0.0, 0.0, float(W), float(H)]).expand(n, 4).clone()


def centre_boxes(n: int, image_size: int | tuple[int, int], fraction: float = 0.5) -> Tensor:
    """``n`` centred boxes whose sides are ``fraction`` of the frame's."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    bw, bh = W * fraction, H * fraction
    box = torch.tensor([(W - bw) / 2, (H - bh) / 2, (W + bw) / 2, (H + bh) / 2])
    return box.expand(n, 4).clone()


def centre_gaussian_maps(n: int, image_size: int | tuple[int, int], sigma: float = 0.25) -> Tensor:
    """``n`` copies of an isotropic Gaussian centred in the frame (sigma as a fraction of
    the frame's side): the centre-bias baseline for pointing game and mass inside."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    ys = (torch.arange(H) + 0.5 - H / 2) / H
    xs = (torch.arange(W) + 0.5 - W / 2) / W
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
    return g.expand(n, H, W).clone()


def position_prior(masks: Tensor) -> Tensor:
    """``[N, H, W]`` ground-truth regions (of training images) -> ``[H, W]``: the share of
    those images whose region covers each pixel.

    A map that never looks at the image: where the attribute usually is. When a dataset
    frames its garments alike, this prior alone can put several times the uniform share of
    its mass inside a region (notebook 04 measures it beside the attention maps), so "mass
    inside" only shows localisation where it beats the prior, or together with
    :func:`centroid_correlation`.
    """
    if masks.dim() != 3 or len(masks) == 0:
        raise ValueError(f"masks must be a non-empty [N, H, W] stack, got {tuple(masks.shape)}")
    return masks.float().mean(0)


def centroids(maps: Tensor) -> Tensor:
    """``[N, H, W]`` non-negative maps -> ``[N, 2]`` centres of mass ``(row, column)`` in
    pixel-centre coordinates (pixel ``(i, j)`` sits at ``(i + 0.5, j + 0.5)``). NaN for an
    all-zero map."""
    m = maps.clamp_min(0).float()
    total = m.sum((1, 2))
    rows = torch.arange(m.shape[1], dtype=m.dtype) + 0.5
    cols = torch.arange(m.shape[2], dtype=m.dtype) + 0.5
    row = (m.sum(2) * rows).sum(1) / total
    col = (m.sum(1) * cols).sum(1) / total
    return torch.stack([row, col], 1)


def centroid_correlation(maps: Tensor, masks: Tensor) -> Tensor:
    """``[2]``: Pearson correlation, over the images, between the centre of mass of each map
    and that of its ground-truth region, for the rows and the columns.

    A map that follows the garment when the region moves from image to image scores near 1;
    a fixed map (a prior, a centred Gaussian) has a constant centroid and scores NaN (no
    variance), whatever its mass inside. Maps and masks must be at the same resolution."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} differ in shape")
    pairs = torch.cat([centroids(maps), centroids(masks.float())], 1).T.double()  # [4, N]
    corr = torch.corrcoef(pairs)
    return corr[[0, 1], [2, 3]].float()
