"""Triplet samplers for attribute-conditioned training, all seeded by an explicit generator.

Introduced in ``notebooks/02_triplets_and_metrics.py``.

Row convention (shared by every sampler that returns ``[T, 4]``):
``(anchor, positive, negative, attribute)`` where anchor and positive have the same value
of ``attribute`` and the negative a different one.

Styles of :func:`sample_triplets`, as in the papers' released code:

``"asen"`` (ASEN v1)
    attribute uniform, value ``v`` uniform, anchor and positive two distinct images with
    ``v``, negative any image annotated with another value, so the *negative's value
    follows the value frequencies*.
``"asen++"`` (ASEN++ / ASEN_v2)
    attribute uniform, two distinct values uniform, anchor and positive from the first,
    negative from the second: every pair of values is contrasted equally often.

Values with fewer than two images cannot give an anchor-positive pair: they are
**skipped with a warning** (never a crash inside the loop); an attribute with no usable
value, or no other value to draw negatives from, is skipped the same way. If nothing is
usable a ``ValueError`` says so. Label ``-1`` (not applicable) is never sampled.

"Refreshed each epoch": call :func:`sample_triplets` again with the same generator, which
continues the generator's stream, so epoch ``e`` of a run with seed ``s`` is reproducible
(the training loop's epoch plan does this, :mod:`fgfs_lib.batches`).

Also here: :func:`in_batch_triplets` (every valid triplet inside a batch),
:func:`sample_from_triplet_list` (Zappos50k/CSN lists ``i j k c``) and
:func:`manipulation_triplets` (FashionSearchNet's global ranking triplets).
"""

from __future__ import annotations

import warnings
from typing import Literal, Sequence

import torch

Style = Literal["asen", "asen++"]


def _as_long(labels) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 2:
        raise ValueError(f"labels must be [N, A] (one column per attribute), got shape {tuple(labels.shape)}")
    return labels.long().cpu()


class _ValueIndex:
    """Images annotated with one attribute, grouped by value: a contiguous block per value."""

    def __init__(self, column: torch.Tensor):
        known = torch.nonzero(column >= 0).squeeze(1)
        values = column[known]
        order = torch.argsort(values, stable=True)
        self.images = known[order]  # image ids sorted by value
        sorted_values = values[order]
        num_values = int(sorted_values.max()) + 1 if len(sorted_values) else 0
        self.counts = torch.bincount(sorted_values, minlength=num_values)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.total = len(self.images)

    def draw_in_value(self, values: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Block positions of uniform images with the given values (``u`` uniform in [0, 1))."""
        counts = self.counts[values]
        return self.offsets[values] + (u * counts).long().clamp_max(counts - 1)

    def draw_other_position(self, values: torch.Tensor, skip: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """A uniform position in the block of ``values`` other than ``skip``."""
        counts = self.counts[values]
        r = (u * (counts - 1)).long().clamp_max(counts - 2)
        pos = self.offsets[values] + r
        return pos + (pos >= skip).long()

    def draw_not_value(self, values: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """A uniform annotated image whose value differs from ``values`` (skip their block)."""
        counts = self.counts[values]
        room = self.total - counts
        r = (u * room).long().clamp_max(room - 1)
        start = self.offsets[values]
        return r + (r >= start).long() * counts


def sample_triplets(
    labels,
    num_triplets: int,
    generator: torch.Generator,
    style: Style = "asen",
    attributes: Sequence[int] | None = None,
) -> torch.LongTensor:
    """Draw ``num_triplets`` rows ``(anchor, positive, negative, attribute)`` from ``labels [N, A]``.

    ``attributes`` restricts the attributes drawn from (default: all). See the module
    docstring for the two styles and for how rare values are handled.
    """
    if style not in ("asen", "asen++"):
        raise ValueError(f"style must be 'asen' or 'asen++', got {style!r}")
    labels = _as_long(labels)
    attrs = list(range(labels.shape[1])) if attributes is None else [int(a) for a in attributes]
    usable: list[tuple[int, _ValueIndex, torch.Tensor]] = []
    for a in attrs:
        index = _ValueIndex(labels[:, a])
        pair_values = torch.nonzero(index.counts >= 2).squeeze(1)
        rare = torch.nonzero((index.counts == 1)).squeeze(1)
        if len(rare):
            warnings.warn(
                f"attribute {a}: values {rare.tolist()} have a single image and are never used as "
                "anchor/positive (they can still be negatives)",
                stacklevel=2,
            )
        present = int((index.counts > 0).sum())
        if len(pair_values) == 0 or present < 2:
            warnings.warn(
                f"attribute {a} skipped: it needs one value with >= 2 images and another value "
                f"(has {present} values present, {len(pair_values)} with >= 2 images)",
                stacklevel=2,
            )
            continue
        usable.append((a, index, pair_values))
    if not usable:
        raise ValueError(
            "no attribute can form a triplet: each needs a value with at least 2 images and a "
            "second value; check that the labels are [N, A] value ids with -1 for unknown"
        )
    if num_triplets <= 0:
        return torch.empty(0, 4, dtype=torch.long)

    which = torch.randint(len(usable), (num_triplets,), generator=generator)
    u = torch.rand(num_triplets, 4, generator=generator, dtype=torch.float64)
    out = torch.empty(num_triplets, 4, dtype=torch.long)
    for slot, (a, index, pair_values) in enumerate(usable):
        rows = torch.nonzero(which == slot).squeeze(1)
        if len(rows) == 0:
            continue
        ur = u[rows]
        if style == "asen":
            v = pair_values[(ur[:, 0] * len(pair_values)).long().clamp_max(len(pair_values) - 1)]
            anchor = index.draw_in_value(v, ur[:, 1])
            positive = index.draw_other_position(v, anchor, ur[:, 2])
            negative = index.draw_not_value(v, ur[:, 3])
        else:
            present = torch.nonzero(index.counts > 0).squeeze(1)
            v = pair_values[(ur[:, 0] * len(pair_values)).long().clamp_max(len(pair_values) - 1)]
            # the second value: uniform among the other present values
            where_v = torch.searchsorted(present, v)
            r = (ur[:, 3] * (len(present) - 1)).long().clamp_max(len(present) - 2)
            w = present[r + (r >= where_v).long()]
            anchor = index.draw_in_value(v, ur[:, 1])
            positive = index.draw_other_position(v, anchor, ur[:, 2])
            negative = index.draw_in_value(w, torch.rand(len(rows), generator=generator, dtype=torch.float64))
        out[rows, 0] = index.images[anchor]
        out[rows, 1] = index.images[positive]
        out[rows, 2] = index.images[negative]
        out[rows, 3] = a
    return out


def in_batch_triplets(labels) -> torch.LongTensor:
    """Every valid triplet inside a batch: ``[K, 4]`` rows ``(anchor, positive, negative, attribute)``
    with batch-local indices; the same set :func:`fgfs_lib.losses.batch_all_triplet_loss` sums over.
    """
    from .losses import valid_triplet_mask

    labels = torch.as_tensor(labels)
    a, i, j, k = torch.nonzero(valid_triplet_mask(labels.long()), as_tuple=True)
    return torch.stack([i, j, k, a], dim=1)


def value_frequencies(labels, attribute: int) -> torch.Tensor:
    """Images per value of one attribute (``-1`` ignored)."""
    column = _as_long(labels)[:, attribute]
    return torch.bincount(column[column >= 0])


# ----------------------------------------------------------------------------- Zappos50k / CSN


def csn_rows_to_triplets(rows) -> torch.LongTensor:
    """CSN triplet-list rows ``(i, j, k, condition)`` ("i is closer to k than to j") to the
    common ``(anchor, positive, negative, attribute)`` = ``(i, k, j, condition)``."""
    rows = torch.as_tensor(rows).long()
    if rows.dim() != 2 or rows.shape[1] != 4:
        raise ValueError(f"CSN rows must be [T, 4] (i, j, k, condition), got shape {tuple(rows.shape)}")
    return rows[:, [0, 2, 1, 3]]


def sample_from_triplet_list(rows, num_triplets: int, generator: torch.Generator) -> torch.LongTensor:
    """An epoch's triplets drawn without replacement from fixed CSN lists (rows ``i j k c``).

    CSN trains on a fresh subset of its 200k training triplets each epoch. Returns
    ``(anchor, positive, negative, attribute)`` rows; all rows (shuffled) when
    ``num_triplets`` exceeds the list.
    """
    triplets = csn_rows_to_triplets(rows)
    if len(triplets) == 0:
        raise ValueError("the triplet list is empty")
    order = torch.randperm(len(triplets), generator=generator)[: min(num_triplets, len(triplets))]
    return triplets[order]


def relation_triplet_list(labels, num_triplets: int, generator: torch.Generator) -> torch.LongTensor:
    """Zappos50k-style rows ``(i, j, k, condition)`` (i closer to k than to j) from labels,
    for a triplet-relation test on data that only has attribute values."""
    t = sample_triplets(labels, num_triplets, generator, style="asen")
    return t[:, [0, 2, 1, 3]]


# ----------------------------------------------------------------------------- manipulation


def manipulation_triplets(labels, num_triplets: int, generator: torch.Generator) -> torch.LongTensor:
    """FashionSearchNet's global-ranking triplets for search with attribute manipulation.

    Each row is ``(query, positive, negative, attribute, value)``: the query's label vector
    with ``attribute`` set to ``value`` equals the positive's label vector *exactly* (``-1``
    entries must match too); the negative's vector differs from that target. Only
    manipulations whose target exists among the images are drawn: attribute uniform among
    those with a possible manipulation, then the query uniform among images that have one,
    then the target value uniform among the values reachable for that query.
    """
    labels = _as_long(labels)
    N, A = labels.shape
    _, vector_class = torch.unique(labels, dim=0, return_inverse=True)
    class_size = torch.bincount(vector_class)
    if len(class_size) < 2:
        raise ValueError("all images share one label vector: no manipulation has a different target")
    by_class = torch.argsort(vector_class, stable=True)
    class_offset = torch.cumsum(class_size, 0) - class_size

    per_attr = []
    for a in range(A):
        masked = labels.clone()
        masked[:, a] = -2
        _, group = torch.unique(masked, dim=0, return_inverse=True)  # same vector except at a
        # distinct (group, class) pairs = the values present in each group; class ids sort by group
        pairs = torch.unique(group * len(class_size) + vector_class)
        pair_group, pair_class = pairs // len(class_size), pairs % len(class_size)
        classes_in_group = torch.bincount(pair_group, minlength=int(group.max()) + 1)
        first_pair = torch.cumsum(classes_in_group, 0) - classes_in_group
        # targets must set a real value (>= 0)
        target_ok = labels[by_class[class_offset[pair_class]], a] >= 0
        ok_in_group = torch.bincount(pair_group, weights=target_ok.double(), minlength=len(classes_in_group))
        has_target = ok_in_group[group] - (labels[:, a] >= 0).double() >= 1
        queries = torch.nonzero(has_target).squeeze(1)
        if len(queries):
            per_attr.append((a, group, pair_class, target_ok, classes_in_group, first_pair, queries))
    if not per_attr:
        raise ValueError("no image has a manipulation whose target label vector exists in the data")

    which = torch.randint(len(per_attr), (num_triplets,), generator=generator)
    out = torch.empty(num_triplets, 5, dtype=torch.long)
    for slot, (a, group, pair_class, target_ok, classes_in_group, first_pair, queries) in enumerate(per_attr):
        rows = torch.nonzero(which == slot).squeeze(1)
        n = len(rows)
        if n == 0:
            continue
        # rejection: draw query and target class until the target sets a real value
        q = torch.empty(n, dtype=torch.long)
        target = torch.empty(n, dtype=torch.long)
        todo = torch.arange(n)
        for _ in range(1000):
            u = torch.rand(len(todo), 2, generator=generator, dtype=torch.float64)
            qq = queries[(u[:, 0] * len(queries)).long().clamp_max(len(queries) - 1)]
            g = group[qq]
            m = classes_in_group[g]
            # position of the query's own class inside its group's block of pairs
            own = _position_in_block(pair_class, first_pair[g], m, vector_class[qq]) - first_pair[g]
            r = (u[:, 1] * (m - 1)).long().clamp_max(m - 2)
            pick = first_pair[g] + r + (r >= own).long()
            ok = target_ok[pick]
            q[todo[ok]] = qq[ok]
            target[todo[ok]] = pair_class[pick[ok]]
            todo = todo[~ok]
            if len(todo) == 0:
                break
        if len(todo):
            raise ValueError(f"attribute {a}: could not draw a manipulation with a real target value")
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        size = class_size[target]
        positive = by_class[class_offset[target] + (u[:, 0] * size).long().clamp_max(size - 1)]
        room = N - size
        r = (u[:, 1] * room).long().clamp_max(room - 1)
        negative = by_class[r + (r >= class_offset[target]).long() * size]
        out[rows, 0] = q
        out[rows, 1] = positive
        out[rows, 2] = negative
        out[rows, 3] = a
        out[rows, 4] = labels[positive, a]
    return out


def _position_in_block(sorted_values: torch.Tensor, start: torch.Tensor, length: torch.Tensor,
                       wanted: torch.Tensor) -> torch.Tensor:
    """Index of ``wanted`` in ``sorted_values[start : start + length]`` (must be present)."""
    # pairs are sorted by group then class, so within a block classes are ascending
    lo, hi = start.clone(), start + length
    for _ in range(int(length.max()).bit_length() + 1):
        mid = (lo + hi) // 2
        go_right = sorted_values[mid.clamp_max(len(sorted_values) - 1)] < wanted
        lo = torch.where(go_right & (lo < hi), mid + 1, lo)
        hi = torch.where(~go_right & (lo < hi), mid, hi)
    return lo
