"""Claims 2 and 3: parameter counts of Embedding(2, 1) vs Linear(1, 1), and ``net(x)`` vs ``net.forward(x)``."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...step import param_count
from .result import ClaimResult


def claim_parameter_counts(seed: int = 0) -> ClaimResult:
    """Count trainable parameters, and show an embedding lookup is one-hot times a bias-free weight."""
    torch.manual_seed(seed)
    embedding, linear = nn.Embedding(num_embeddings=2, embedding_dim=1), nn.Linear(in_features=1, out_features=1)
    counts = {"Embedding(2, 1)": param_count(embedding), "Linear(1, 1)": param_count(linear)}
    shapes = {"Embedding(2, 1)": {n: list(p.shape) for n, p in embedding.named_parameters()},
              "Linear(1, 1)": {n: list(p.shape) for n, p in linear.named_parameters()}}
    idx = torch.tensor([0, 1, 1, 0])
    lookup = embedding(idx)  # (4, 1)
    as_matmul = F.one_hot(idx, 2).float() @ embedding.weight  # (4, 2) @ (2, 1): a Linear(2, 1, bias=False)
    same = torch.equal(lookup, as_matmul)
    verdict = counts["Embedding(2, 1)"] == counts["Linear(1, 1)"]
    return ClaimResult(
        2, "nn.Embedding(num_embeddings=2, embedding_dim=1) and nn.Linear(1, 1) have the same number of "
           "trainable parameters.", verdict,
        {"counts": counts, "shapes": shapes, "embedding_equals_one_hot_matmul": same},
        f"Embedding(2, 1) holds a 2x1 table ({counts['Embedding(2, 1)']} parameters); Linear(1, 1) a 1x1 weight "
        f"and a bias ({counts['Linear(1, 1)']}). An embedding lookup equals one-hot input times a bias-free "
        f"Linear(2, 1) weight: {same}.")


def claim_call_vs_forward(n: int = 16, seed: int = 0) -> ClaimResult:
    """``net(x)`` and ``net.forward(x)`` agree; only ``__call__`` runs hooks; ``forword`` does not exist."""
    torch.manual_seed(seed)
    net = nn.Linear(1, 1)
    x = torch.randn(n, 1)
    calls = []
    handle = net.register_forward_hook(lambda module, args, output: calls.append("hook"))
    via_call = net(x)
    hooks_after_call = len(calls)
    via_forward = net.forward(x)
    hooks_after_forward = len(calls) - hooks_after_call
    handle.remove()
    try:
        net.forword(x)
        misspelling = "no error"
    except AttributeError as error:
        misspelling = f"AttributeError: {error}"
    equal = torch.equal(via_call, via_forward)
    return ClaimResult(
        3, "For net = nn.Linear(1, 1) and any (n, 1) tensor x, net(x) and net.forward(x) give the same output.",
        equal,
        {"n": n, "outputs_equal": equal, "max_abs_diff": (via_call - via_forward).abs().max().item(),
         "forward_hook_runs_under_call": hooks_after_call == 1,
         "forward_hook_runs_under_forward": hooks_after_forward == 1, "forword": misspelling},
        f"The outputs are equal ({equal}). net(x) is Module.__call__, which runs hooks around forward "
        f"(a forward hook ran {hooks_after_call}x under net(x), {hooks_after_forward}x under net.forward(x)); "
        f"the exam's spelling net.forword(x) raises {misspelling.split(':')[0]}.")
