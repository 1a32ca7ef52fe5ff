"""The query network (paper eq. 2): frozen backbone features -> Linear -> L2 normalisation."""

import torch

from memopainter.data.preprocess import backbone_input
from memopainter.memory import ColorMemory, QueryHead
from memopainter.networks.backbones import load_backbone


def test_query_keys_are_unit_rows_of_the_linear_map():
    torch.manual_seed(0)
    head = QueryHead(descriptor_dim=6, key_dim=4)
    features = torch.randn(5, 6)
    q = head(features)
    assert q.shape == (5, 4)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(5))
    expected = head.linear(features)
    torch.testing.assert_close(q, expected / expected.norm(dim=1, keepdim=True))


def test_only_the_linear_layer_learns_from_the_triplet_loss():
    torch.manual_seed(0)
    backbone = load_backbone("tiny")
    head = QueryHead(backbone.feature_dim, key_dim=8)
    memory = ColorMemory(size=4, key_dim=8, feature="rgb", threshold=5.0, margin=0.5, top_k=4, seed=0)
    red, blue = torch.tensor([1.0, 0.0, 0.0]).repeat(10), torch.tensor([0.0, 0.0, 1.0]).repeat(10)
    images = torch.rand(4, 3, 32, 32)
    features = backbone(torch.stack([backbone_input(img, None, backbone.input_size) for img in images]))
    with torch.no_grad():
        memory.update(head(features[:2]), torch.stack([red, blue]))
    loss = memory.triplet_loss(head(features[2:]), torch.stack([red, blue]))
    loss.backward()
    assert loss.item() > 0
    assert head.linear.weight.grad is not None and head.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training  # frozen BatchNorm statistics stay ImageNet's


def test_backbone_input_is_gray_and_square_whatever_the_aspect_ratio():
    rgb = torch.zeros(3, 10, 30)
    rgb[0] = 1.0  # pure red
    alpha = torch.ones(10, 30)
    alpha[:, :5] = 0.0  # a transparent strip: white for the backbone
    x = backbone_input(rgb, alpha, 64)
    assert x.shape == (3, 64, 64)
    # a = b = 0 is gray to 1e-4: scikit-image's matrix maps D65 white to (100, -0.0025, 0.0047).
    torch.testing.assert_close(x[0], x[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(x[1], x[2], atol=1e-4, rtol=0)
    assert x[:, 0, 0].min() > 0.99  # padding is white
    assert 0.3 < x[0, 32, 40] < 0.7  # red's lightness (L 53) as gray
