"""Do the formulations of a family compute the same thing on the same weights?

The sequence module's initial weights are copied into the cell loop and the hand-written cell;
then logits at init, every parameter's gradient, and the fitted probabilities after training are
compared. The built-in module uses different kernels (oneDNN for the LSTM), so these agree to
float32 round-off, not bit for bit; the hand-written cell equals the cell loop exactly on the CPU.
A minimal family (mingru, minlstm) has two formulations: its parallel scan (kind module) and its
hand-written sequential cell, which agree to float32 round-off as well (``scan.py`` sums in float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..cells import ALL_FAMILIES, MIN_FAMILIES
from ..config import KINDS, MIN_KINDS, ModelConfig
from ..model import CharModel, copy_weights
from ..sequence import protocol as exam
from ..sequence.data import exam_data
from ..sequence.fitting import fit
from ..step import loss_fn

EPOCHS, SEED = 10, 0
"""verify's defaults: training epochs before the probabilities are compared, and the shared seed."""
# Relative to the largest magnitude of the reference tensor; probabilities are absolute.
TOLERANCES = {"logits": 1e-5, "grads": 1e-5, "probs": 1e-4}


@dataclass
class FamilyReport:
    family: str
    diffs: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{'cell': {'logits': ..., 'grads': ..., 'probs': ...}, 'scratch': {...}}`` (a minimal family: scratch)"""
    tolerances: dict[str, float] = field(default_factory=lambda: dict(TOLERANCES))

    @property
    def passed(self) -> bool:
        return all(d[k] <= self.tolerances[k] for d in self.diffs.values() for k in d)

    def to_json(self) -> dict:
        return {"family": self.family, "passed": self.passed, "diffs": self.diffs, "tolerances": self.tolerances}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def verify_family(family: str, epochs: int = EPOCHS, seed: int = SEED, hidden_size: int = 8,
                  device: str = "cpu") -> FamilyReport:
    """Compare ``family``'s cell loop and hand-written cell with its sequence module (a minimal family: its
    sequential cell with its parallel scan)."""
    _, x, y = exam_data()
    torch.manual_seed(seed)
    minimal = family in MIN_FAMILIES
    kinds = MIN_KINDS if minimal else KINDS
    models = {kind: CharModel(ModelConfig(exam.VOCAB_SIZE, family, kind, hidden_size)) for kind in kinds}
    for kind in kinds[1:]:
        copy_weights(models["module"], models[kind])
    report = FamilyReport(family)
    criterion = loss_fn("cross_entropy")
    grads, logits = {}, {}
    for kind, model in models.items():
        out, _ = model(x)
        criterion(out, y).backward()
        logits[kind] = out.detach()
        grads[kind] = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
    probs = {kind: fit(model, x, y, epochs=epochs, device=device).probs for kind, model in models.items()}
    for kind in kinds[1:]:
        report.diffs[kind] = {
            "logits": _relative(logits[kind], logits["module"]),
            "grads": max(_relative(g, r) for g, r in zip(grads[kind], grads["module"])),
            "probs": (probs[kind] - probs["module"]).abs().max().item(),
        }
    return report


def verify(families: tuple[str, ...] = ALL_FAMILIES, **kwargs) -> list[FamilyReport]:
    return [verify_family(family, **kwargs) for family in families]


def verify_json(reports: list[FamilyReport], epochs: int, seed: int) -> dict:
    """What ``verify --json`` writes (and ``nextchar report`` reads)."""
    return {"families": [r.to_json() for r in reports], "epochs": epochs, "seed": seed}
