"""The shared pieces of every trainer: losses, metrics."""
import torch

from nextchar.step import accuracy, loss_fn


def test_cross_entropy_accepts_indices_or_one_hot_targets():
    logits = torch.randn(5, 2, 4)
    idx = torch.randint(0, 4, (5, 2))
    ce = loss_fn("cross_entropy")
    torch.testing.assert_close(ce(logits, idx), ce(logits, torch.nn.functional.one_hot(idx, 4).float()))
    assert accuracy(logits, idx) == accuracy(logits, torch.nn.functional.one_hot(idx, 4).float())
