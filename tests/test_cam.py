"""Attribute activation maps, FashionSearchNet / ASEN++ boxes and ROI crops (fgfs_lib.cam)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fgfs_lib import cam


# --------------------------------------------------------------------------- maps (eq. 2)


def test_cam_equals_hand_computation():
    # two channels on a 2x2 grid, three classes
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [2.0, 0.5]]]])  # [1,2,2,2]
    weight = torch.tensor([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]])  # [3 classes, 2 channels]
    # class 1: 0.5 * ch0 + 2 * ch1
    expected = torch.tensor([[[0.5 + 0.0, 1.0 - 2.0], [1.5 + 4.0, 2.0 + 1.0]]])
    got = cam.class_activation_maps(features, weight, torch.tensor([1]))
    assert torch.allclose(got, expected)
    every = cam.class_activation_maps(features, weight)
    assert every.shape == (1, 3, 2, 2)
    assert torch.allclose(every[:, 2], torch.tensor([[[-1.0, -3.0], [-1.0, -3.5]]]))


class _TinyGapClassifier(nn.Module):
    """conv -> GAP -> one linear head per attribute, the shape CAM needs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.heads = nn.ModuleList([nn.Linear(4, 3), nn.Linear(4, 2)])

    def features(self, images):
        return torch.relu(self.conv(images))

    def forward(self, images):
        pooled = self.features(images).mean(dim=(2, 3))
        return [head(pooled) for head in self.heads]


def test_cam_spatial_mean_plus_bias_is_the_logit():
    torch.manual_seed(0)
    model = _TinyGapClassifier()
    images = torch.randn(5, 3, 6, 7)
    logits = model(images)
    maps, classes = cam.attribute_activation_maps(model, images, upsample=False)
    assert maps.shape == (5, 2, 6, 7) and classes.shape == (5, 2)
    for a, head in enumerate(model.heads):
        assert torch.equal(classes[:, a], logits[a].argmax(1))
        chosen_logit = logits[a].gather(1, classes[:, a : a + 1]).squeeze(1)
        assert torch.allclose(maps[:, a].mean(dim=(1, 2)) + head.bias[classes[:, a]], chosen_logit, atol=1e-5)


def test_cam_chosen_class_and_upsampling():
    torch.manual_seed(1)
    model = _TinyGapClassifier()
    images = torch.randn(2, 3, 8, 8)
    chosen = torch.tensor([[2, -1], [0, 1]])  # -1: keep the predicted class
    maps, classes = cam.attribute_activation_maps(model, images, classes=chosen)
    assert maps.shape == (2, 2, 8, 8)
    assert classes[0, 0] == 2 and classes[1, 0] == 0 and classes[1, 1] == 1
    assert classes[0, 1] == model(images)[1][0].argmax()
    small, _ = cam.attribute_activation_maps(model, images, classes=chosen, upsample=False)
    assert torch.allclose(maps, cam.upsample_maps(small, 8))


def test_upsample_constant_and_size():
    maps = torch.full((2, 3, 4, 4), 2.5)
    up = cam.upsample_maps(maps, (16, 12))
    assert up.shape == (2, 3, 16, 12) and torch.allclose(up, torch.full_like(up, 2.5))


# --------------------------------------------------------------------------- boxes


def _blob(H, W, y0, y1, x0, x1, value=1.0):
    m = torch.zeros(H, W)
    m[y0:y1, x0:x1] = value
    return m


def test_fsn_box_one_blob():
    m = _blob(16, 16, 3, 7, 5, 12)
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([5.0, 3.0, 12.0, 7.0]))


def test_fsn_box_keeps_the_largest_of_two_blobs():
    m = _blob(20, 20, 1, 3, 1, 3, value=1.0) + _blob(20, 20, 10, 18, 8, 16, value=0.5)
    # the small blob is brighter but the large one is larger: FashionSearchNet keeps it
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([8.0, 10.0, 16.0, 18.0]))
    # a blob below 20% of the maximum is background
    faint = _blob(20, 20, 1, 3, 1, 3, value=1.0) + _blob(20, 20, 10, 18, 8, 16, value=0.15)
    assert torch.equal(cam.fsn_boxes(faint), torch.tensor([1.0, 1.0, 3.0, 3.0]))
    # a lower threshold lets it back in
    assert torch.equal(cam.fsn_boxes(faint, threshold=0.1), torch.tensor([8.0, 10.0, 16.0, 18.0]))


def test_fsn_box_diagonal_neighbours_are_one_region():
    m = torch.zeros(8, 8)
    for i in range(4):  # a diagonal line: 8-connected, 4 separate pixels under 4-connectivity
        m[2 + i, 1 + i] = 1.0
    m[7, 7] = 1.0
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([1.0, 2.0, 5.0, 6.0]))


def test_boxes_for_a_blob_at_the_border():
    m = _blob(16, 16, 0, 4, 13, 16)  # touches the top and right edges, 4 rows x 3 cols
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([13.0, 0.0, 16.0, 4.0]))
    # ASEN++: side 4, centred box would stick out on the right -> shifted inside
    assert torch.equal(cam.asen_boxes(m), torch.tensor([12.0, 0.0, 16.0, 4.0]))


def test_empty_and_constant_maps_give_the_whole_frame():
    whole = torch.tensor([0.0, 0.0, 10.0, 8.0])
    for m in (torch.zeros(8, 10), torch.full((8, 10), -3.0)):
        assert torch.equal(cam.fsn_boxes(m), whole)
        assert torch.equal(cam.asen_boxes(m), whole)
    with pytest.raises(ValueError, match="NaN"):
        cam.fsn_boxes(torch.full((4, 4), float("nan")))


def test_negative_cam_is_normalised_before_thresholding():
    m = torch.full((10, 10), -5.0)
    m[2:4, 6:9] = -1.0  # all negative, but clearly peaked
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([6.0, 2.0, 9.0, 4.0]))


def test_asen_box_covers_all_foreground_and_is_square():
    m = _blob(32, 32, 4, 8, 4, 8) + _blob(32, 32, 10, 12, 20, 26, value=0.5)
    box = cam.asen_boxes(m)
    # tight box over both blobs: x 4..26, y 4..12 (22 x 8) -> square side 22, centred in y
    assert torch.equal(box, torch.tensor([4.0, 0.0, 26.0, 22.0]))  # centred y0 = -3, shifted to 0
    m2 = _blob(32, 32, 10, 14, 12, 18)  # 4 rows x 6 cols in the middle: grows 1 up, 1 down
    assert torch.equal(cam.asen_boxes(m2), torch.tensor([12.0, 9.0, 18.0, 15.0]))
    m3 = _blob(32, 32, 10, 13, 12, 18)  # 3 x 6: the odd extra row goes down
    assert torch.equal(cam.asen_boxes(m3), torch.tensor([12.0, 9.0, 18.0, 15.0]))


def test_asen_box_threshold_is_on_the_min_max_normalised_map():
    m = torch.full((16, 16), 10.0)
    m[5:9, 5:9] = 20.0
    m[0, 0] = 11.5  # normalised 0.15 > 0.1: foreground for ASEN++ (all pixels count)
    assert torch.equal(cam.asen_boxes(m), torch.tensor([0.0, 0.0, 9.0, 9.0]))
    assert torch.equal(cam.fsn_boxes(m), torch.tensor([5.0, 5.0, 9.0, 9.0]))  # 0.15 < 0.2


def test_asen_box_side_is_clipped_to_a_non_square_frame():
    m = _blob(8, 20, 2, 5, 1, 19)  # 18 wide in an 8-high frame
    x0, y0, x1, y1 = cam.asen_boxes(m).tolist()
    assert (x1 - x0, y1 - y0) == (8.0, 8.0) and y0 == 0.0 and 0 <= x0 and x1 <= 20


def test_box_functions_are_batched():
    maps = torch.stack([_blob(16, 16, 3, 7, 5, 12), _blob(16, 16, 0, 4, 13, 16), torch.zeros(16, 16)])
    maps = maps.reshape(3, 1, 16, 16).expand(3, 2, 16, 16)
    fsn, asen = cam.fsn_boxes(maps), cam.asen_boxes(maps)
    assert fsn.shape == asen.shape == (3, 2, 4)
    for i in range(3):
        assert torch.equal(fsn[i, 1], cam.fsn_boxes(maps[i, 1]))
        assert torch.equal(asen[i, 0], cam.asen_boxes(maps[i, 0]))


def test_mask_to_box_and_largest_region():
    mask = torch.zeros(2, 6, 6, dtype=torch.bool)
    mask[0, 1:3, 2:5] = True
    mask[0, 5, 5] = True
    assert torch.equal(cam.mask_to_box(mask[0]), torch.tensor([2.0, 1.0, 6.0, 6.0]))
    kept = cam.largest_region(mask)
    assert kept[0].sum() == 6 and not kept[0, 5, 5] and kept[1].sum() == 0
    assert torch.equal(cam.mask_to_box(kept)[1], torch.tensor([0.0, 0.0, 6.0, 6.0]))


# --------------------------------------------------------------------------- ROI features


def test_roi_align_crops_exactly_what_the_box_says():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 20, 24)
    boxes = torch.tensor([[2.0, 3.0, 10.0, 11.0], [0.0, 0.0, 24.0, 20.0], [14.0, 12.0, 24.0, 20.0]])
    for b in range(3):
        x0, y0, x1, y1 = boxes[b].int().tolist()
        crops = cam.roi_features(images, boxes, (20, 24), (y1 - y0, x1 - x0), sampling_ratio=1)
        assert torch.allclose(crops[b], images[b, :, y0:y1, x0:x1], atol=1e-6)


def test_roi_features_on_a_downsampled_feature_map():
    # image 32 px, feature map 8 px (stride 4)
    feature_map = torch.zeros(2, 2, 8, 8)
    feature_map[:, 0, 2:4, 5:7] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # a block at cells y 2..3, x 5..6
    # channel 1 = continuous x coordinate of each cell's centre (cell x covers [x, x + 1))
    feature_map[:, 1] = torch.arange(8.0).view(1, 8) + 0.5
    # box 0 = the block's cells in image pixels; one sample per bin lands on cell centres
    boxes = torch.tensor([[20.0, 8.0, 28.0, 16.0], [0.0, 0.0, 8.0, 8.0]])
    out = cam.roi_features(feature_map, boxes, 32, 2, sampling_ratio=1)
    assert out.shape == (2, 2, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.allclose(out[1, 0], torch.zeros(2, 2))  # box 1 misses the block
    # bilinear sampling of a linear ramp is exact inside the map: each output bin holds
    # the x coordinate of its own centre (box x 4..20 px = cells 1..5, four bins of one cell)
    ramp = cam.roi_features(feature_map, torch.tensor([[4.0, 4.0, 20.0, 20.0]] * 2), 32, 4)
    assert torch.allclose(ramp[0, 1, 2], torch.tensor([1.5, 2.5, 3.5, 4.5]))


def test_roi_features_rejects_bad_shapes():
    with pytest.raises(ValueError, match="boxes must be"):
        cam.roi_features(torch.zeros(2, 1, 8, 8), torch.zeros(3, 4), 8, 2)
    with pytest.raises(ValueError, match="uniform rescale"):
        cam.roi_features(torch.zeros(1, 1, 8, 4), torch.zeros(1, 4), 8, 2)


# --------------------------------------------------------------------------- baselines


def test_baseline_boxes_and_centre_gaussian():
    assert torch.equal(cam.whole_image_boxes(2, (8, 10)), torch.tensor([[0.0, 0, 10, 8]] * 2))
    assert torch.equal(cam.centre_boxes(1, 16), torch.tensor([[4.0, 4.0, 12.0, 12.0]]))
    g = cam.centre_gaussian_maps(3, 16)
    assert g.shape == (3, 16, 16)
    flat_argmax = g[0].flatten().argmax()
    assert int(flat_argmax) // 16 in (7, 8) and int(flat_argmax) % 16 in (7, 8)
    assert torch.allclose(g[0], g[0].flip(0)) and torch.allclose(g[0], g[0].T)


def test_localisation_scores_on_hand_made_maps():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 4:8, 4:12] = True  # region: 4 rows x 8 cols = 1/8 of the image
    gt = torch.tensor([[4.0, 4.0, 12.0, 8.0]] * 2)
    maps = torch.zeros(2, 16, 16)
    maps[0, 4:8, 4:12] = 1.0  # exactly the region
    maps[1, 12:16, 0:4] = 1.0  # elsewhere
    maps[1, 5, 5] = 0.5  # a weaker bump inside the region
    s = cam.localisation_scores(maps, masks, gt)
    assert s["pointing"].tolist() == [1.0, 0.0]
    assert s["mass"][0] == 1.0 and s["mass"][1] == pytest.approx(0.5 / 16.5)
    assert s["fsn_iou"][0] == 1.0 and s["fsn_iou"][1] == 0.0
    assert s["asen_iou"][0] == pytest.approx(32 / 64)  # squared to 8 x 8: region covers half
    assert s["area"].tolist() == [0.125, 0.125]


def test_position_prior_is_the_share_of_regions_covering_each_pixel():
    masks = torch.zeros(4, 6, 6, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True  # every image: the same 2 x 2 block
    masks[0, 4, 4] = True  # one image in four also covers (4, 4)
    prior = cam.position_prior(masks)
    assert prior[1, 1] == 1.0 and prior[4, 4] == 0.25 and prior[0, 0] == 0.0
    # a fixed map puts mass inside a region it never looked for: here 4 / 4.25 of it
    s = cam.localisation_scores(prior.expand(4, 6, 6), masks, torch.zeros(4, 4))
    assert s["mass"][1] == pytest.approx(4 / 4.25)
    with pytest.raises(ValueError):
        cam.position_prior(torch.zeros(0, 6, 6, dtype=torch.bool))


def test_centroids_by_hand_and_their_correlation_with_the_regions():
    maps = torch.zeros(3, 8, 8)
    maps[0, 2, 3] = 1.0  # one pixel: its centre (2.5, 3.5)
    maps[1, 0:2, 0:4] = 1.0  # rows 0-1, columns 0-3: centre (1.0, 2.0)
    maps[2, 6, 6] = 1.0
    maps[2, 6, 7] = 3.0  # columns 6 and 7 weighted 1:3 -> column 7.25
    assert cam.centroids(maps).tolist() == [[2.5, 3.5], [1.0, 2.0], [6.5, 7.25]]
    assert torch.isnan(cam.centroids(torch.zeros(1, 4, 4))).all()
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    for k, (r, c) in enumerate([(1, 1), (3, 2), (5, 6)]):
        masks[k, r:r + 2, c:c + 2] = True
    follows = torch.zeros(3, 8, 8)
    follows[masks] = 1.0  # each map is its own region, shifted with it: correlation 1
    assert torch.allclose(cam.centroid_correlation(follows, masks), torch.ones(2))
    fixed = cam.position_prior(masks).expand(3, 8, 8)  # the same map for every image
    assert torch.isnan(cam.centroid_correlation(fixed, masks)).all()
    with pytest.raises(ValueError):
        cam.centroid_correlation(follows[:, :4], masks)


def test_map_figures_draw_what_they_are_given():
    import numpy as np

    from fgfs_lib.viz import maps as viz_maps

    images = torch.rand(2, 3, 16, 16)
    maps = torch.rand(2, 3, 16, 16)
    nan = float("nan")
    boxes = torch.tensor([[[1.0, 1, 8, 8], [nan] * 4, [0, 0, 16, 16]]] * 2)
    fig = viz_maps.overlay_maps(images, maps[:, 0], titles=["a", "b"], boxes={"ground truth": boxes[:, 0]})
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    np.testing.assert_allclose(panels[1].images[0].get_array(), images[1].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(panels[1].images[1].get_array(), maps[1, 0].numpy())
    box = panels[0].patches[0]  # pixel x covers [x - 0.5, x + 0.5]: the box starts half a pixel left
    assert box.get_xy() == (0.5, 0.5) and (box.get_width(), box.get_height()) == (7.0, 7.0)

    fig = viz_maps.attribute_overlays(images, maps, ["x", "y", "z"], gt_boxes=boxes, pred_boxes=boxes)
    grid = np.array(fig.axes[:8]).reshape(2, 4)  # the plain image, then one column per attribute
    assert len(grid[0, 1].images) == 2 and len(grid[0, 1].patches) == 2  # map, ground truth and predicted box
    faded = grid[1, 2]  # attribute y does not apply (NaN box): faded image, no map, no box
    assert len(faded.images) == 1 and faded.images[0].get_alpha() == 0.35 and not faded.patches

    fig = viz_maps.threshold_curves([0.1, 0.2], {"m": [0.3, 0.4]}, marks={"paper": 0.2}, baselines={"b": 0.1})
    lines = fig.axes[0].lines
    assert lines[0].get_ydata().tolist() == [0.3, 0.4]
    assert [0.1, 0.1] in [list(line.get_ydata()) for line in lines]  # the baseline
    assert [0.2, 0.2] in [list(line.get_xdata()) for line in lines]  # the mark

    fig = viz_maps.metric_bars({"m": [0.1, nan, 0.3]}, ["x", "y", "z"], "IoU")
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights[0] == 0.1 and np.isnan(heights[1]) and heights[2] == 0.3