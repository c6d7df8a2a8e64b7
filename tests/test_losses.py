"""Losses: the mixed cross-entropy equals the dense soft-target one and the hand formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit.batch import MixedBatch


def test_mixed_cross_entropy_hand_computed():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    out = MixedBatch(torch.zeros(2, 1, 1, 1), torch.tensor([[0, 1], [1, 0]]),
                     torch.tensor([[0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 2]), None)
    logp = F.log_softmax(logits, 1)
    expected = -(0.7 * logp[0, 0] + 0.3 * logp[0, 2] + 0.4 * logp[1, 2] + 0.6 * logp[1, 0]) / 2
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out), expected)
    s = 0.2
    smooth = (1 - s) * out.targets(3) + s / 3
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out, smoothing=s),
                               -(smooth * logp).sum(1).mean())
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out, reduction="none").sum(),
                               expected * 2)


def test_unmixed_batch_is_plain_cross_entropy():
    logits, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    out = MixedBatch.identity(torch.zeros(5, 1, 1, 1), y)
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out), F.cross_entropy(logits, y))
    torch.testing.assert_close(mixkit.mixed_cross_entropy(logits, out, smoothing=0.1),
                               F.cross_entropy(logits, y, label_smoothing=0.1))


def test_loss_errors():
    out = MixedBatch.identity(torch.zeros(2, 1, 1, 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(B=2, N\)"):
        mixkit.mixed_cross_entropy(torch.randn(3, 4), out)
    with pytest.raises(ValueError, match="expected reduction in"):
        mixkit.mixed_cross_entropy(torch.randn(2, 4), out, reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        mixkit.soft_target_cross_entropy(torch.randn(2, 4), torch.rand(2, 3))
