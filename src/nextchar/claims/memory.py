"""Claim 1: is an RNN better than an LSTM at long-term memory? Measured two ways, RNN vs LSTM vs GRU.

(a) Gradient flow: ‖∂(v·h_T)/∂x_{T-k}‖ / ‖∂(v·h_T)/∂x_T‖ vs k — how much of the last step's hidden state
    can still be credited to an input k steps back (the vanishing-gradient picture), at init and trained.
(b) A memory task: the first character is ``a`` or ``b``, then k random filler characters; at the last
    step the model must name the first character. Accuracy vs k, over several seeds, every run reported.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..model import CharModel
from ..step import train_step
from .result import ClaimResult

FAMILIES = ("rnn", "lstm", "gru")
FILLERS = 6
VOCAB = 2 + FILLERS  # 'a', 'b', then the filler characters


@dataclass
class MemoryBudget:
    task_ks: tuple[int, ...] = (5, 20, 50)
    """Gaps k of the memory task."""
    gradient_ks: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
    """Distances k at which the gradient ratio is measured."""
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 800
    """Adam steps per task run (fresh random sequences each step)."""
    batch_size: int = 32
    hidden_size: int = 16
    lr: float = 0.01
    clip: float = 1.0
    forget_bias: float = 5.0
    """LSTM forget-gate bias for the task runs (PyTorch's default is 0); the gradient study reports 0, 1 and this."""
    eval_size: int = 1000


QUICK = MemoryBudget(task_ks=(2, 10), gradient_ks=(1, 5, 20, 50), seeds=(0,), steps=250, batch_size=32)


def memory_batch(k: int, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (k+1, B) of indices: a|b then k fillers; targets (B,): the first character."""
    first = torch.randint(0, 2, (batch_size,), generator=generator)
    filler = torch.randint(2, VOCAB, (k, batch_size), generator=generator)
    return torch.cat([first[None], filler]), first


def new_model(family: str, hidden_size: int, forget_bias: float | None = None) -> CharModel:
    model = CharModel(ModelConfig(VOCAB, family, "module", hidden_size))
    if family == "lstm" and forget_bias is not None:
        set_forget_bias(model, forget_bias)
    return model


@torch.no_grad()
def set_forget_bias(model: CharModel, value: float) -> None:
    """Make the LSTM's forget-gate bias b_if + b_hf equal ``value`` in every layer (gate order i, f, g, o)."""
    hidden = model.config.hidden_size
    for layer in model.layer_weights():
        layer["bias_ih"][hidden:2 * hidden] = value
        layer["bias_hh"][hidden:2 * hidden] = 0.0


def gradient_ratios(model: CharModel, ks: tuple[int, ...], seed: int, batch_size: int = 64) -> dict[int, float]:
    """Median over sequences of ‖∂(v·h_T)/∂x_{T-k}‖ / ‖∂(v·h_T)/∂x_T‖ for each k, on random one-hot inputs."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    steps = max(ks) + 1
    idx = torch.randint(0, VOCAB, (steps, batch_size), generator=generator)
    x = F.one_hot(idx, VOCAB).float().to(device).requires_grad_(True)  # (T, B, V)
    output, _ = model.core(x)  # (T, B, H)
    v = torch.randn(output.shape[-1], generator=generator).to(device)
    (output[-1] * v).sum().backward()
    norms = x.grad.norm(dim=-1)  # (T, B)
    last = norms[-1].clamp_min(1e-30)
    return {k: (norms[-1 - k] / last).median().item() for k in ks}


def train_memory(family: str, k: int, seed: int, budget: MemoryBudget,
                 device: str | torch.device = "cpu") -> tuple[CharModel, float, float]:
    """Train on the k-gap task; returns the model, its held-out accuracy and its last training loss."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(10_000 + seed)
    model = new_model(family, budget.hidden_size, budget.forget_bias).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=budget.lr)
    for step in range(1, budget.steps + 1):
        x, target = (t.to(device) for t in memory_batch(k, budget.batch_size, generator))
        _, loss, _ = train_step(model, x, target, _last_step_loss, opt, clip=budget.clip, where=f"step {step}")
    x, target = (t.to(device) for t in memory_batch(k, budget.eval_size, torch.Generator().manual_seed(99)))
    with torch.no_grad():
        accuracy = (model(x)[0][-1].argmax(-1) == target).float().mean().item()
    return model, accuracy, loss.item()


def _last_step_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Only the last step is asked: cross-entropy of logits[-1] (B, V) against the first character (B,)."""
    return F.cross_entropy(logits[-1], target)


def _gradient_study(budget: MemoryBudget, device: str | torch.device) -> dict[str, dict[int, float]]:
    """At init: rnn, gru, lstm with forget bias 0 (PyTorch's default), 1, and the task's value."""
    variants = {"rnn": ("rnn", None), "gru": ("gru", None), "lstm (forget bias 0)": ("lstm", 0.0),
                "lstm (forget bias 1)": ("lstm", 1.0), f"lstm (forget bias {budget.forget_bias:g})":
                ("lstm", budget.forget_bias)}
    study = {}
    for name, (family, bias) in variants.items():
        per_seed = []
        for seed in budget.seeds:
            torch.manual_seed(seed)
            model = new_model(family, budget.hidden_size, bias).to(device)
            per_seed.append(gradient_ratios(model, budget.gradient_ks, seed))
        study[name] = {k: statistics.median(r[k] for r in per_seed) for k in budget.gradient_ks}
    return study


def claim_long_term_memory(budget: MemoryBudget | None = None, device: str | torch.device = "cpu") -> ClaimResult:
    budget = budget or MemoryBudget()
    at_init = _gradient_study(budget, device)
    runs, trained = [], {}
    longest = max(budget.task_ks)
    for family in FAMILIES:
        for k in budget.task_ks:
            for seed in budget.seeds:
                model, accuracy, loss = train_memory(family, k, seed, budget, device)
                runs.append({"family": family, "k": k, "seed": seed, "accuracy": accuracy, "final_loss": loss})
                if k == longest and seed == budget.seeds[0]:
                    trained[family] = gradient_ratios(model, budget.gradient_ks, seed)
    mean_acc = {f: {k: statistics.mean(r["accuracy"] for r in runs if r["family"] == f and r["k"] == k)
                    for k in budget.task_ks} for f in FAMILIES}
    verdict, explanation = _decide(at_init, mean_acc, budget)
    evidence = {"gradient_ratio_at_init": at_init, f"gradient_ratio_trained_k{longest}": trained,
                "task_runs": runs, "task_mean_accuracy": mean_acc, "budget": asdict(budget)}
    return ClaimResult(1, "An RNN is better than an LSTM at long-term memory.", verdict, evidence, explanation,
                       _figures(at_init, trained, runs, mean_acc, budget))


def _decide(at_init: dict, mean_acc: dict, budget: MemoryBudget) -> tuple[bool, str]:
    """The claim holds only if the RNN keeps more gradient at long range AND wins the task more often."""
    far = max(budget.gradient_ks)
    rnn_grad, lstm_grad = at_init["rnn"][far], at_init["lstm (forget bias 1)"][far]
    margin = 0.1
    rnn_wins = [k for k in budget.task_ks if mean_acc["rnn"][k] > mean_acc["lstm"][k] + margin]
    lstm_wins = [k for k in budget.task_ks if mean_acc["lstm"][k] > mean_acc["rnn"][k] + margin]
    verdict = rnn_grad > lstm_grad and len(rnn_wins) > len(lstm_wins)
    gradient_words = (f"gradient flow at init, k={far}: the LSTM (forget bias 1) keeps {lstm_grad:.1e} of the "
                      f"last step's gradient, the RNN {rnn_grad:.1e}")
    task_words = ("memory task (mean accuracy over seeds, chance 50%): " + "; ".join(
        f"k={k}: rnn {mean_acc['rnn'][k]:.0%}, lstm {mean_acc['lstm'][k]:.0%}, gru {mean_acc['gru'][k]:.0%}"
        for k in budget.task_ks))
    tie = "" if rnn_wins or lstm_wins else " The task results tie between RNN and LSTM at this budget, so the gradient evidence decides."
    decided = ("Decided by: " + gradient_words + f"; the LSTM wins the task at k in {lstm_wins}, the RNN at "
               f"k in {rnn_wins} (a win is a mean accuracy more than {margin:.0%} higher).{tie} " + task_words + ".")
    return verdict, decided


def _figures(at_init, trained, runs, mean_acc, budget) -> dict:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax_grad, ax_task = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, ratios in at_init.items():
        ax_grad.semilogy(list(ratios), [max(v, 1e-30) for v in ratios.values()], marker="o", label=f"{name}, init")
    for name, ratios in trained.items():
        ax_grad.semilogy(list(ratios), [max(v, 1e-30) for v in ratios.values()], ls="--", marker="x",
                         label=f"{name}, trained (k={max(budget.task_ks)})")
    ax_grad.set(xlabel="k (steps back)", ylabel="‖∂h_T/∂x_{T-k}‖ / ‖∂h_T/∂x_T‖", title="(a) gradient flow")
    ax_grad.legend(fontsize=7)
    for family in FAMILIES:
        ks = list(mean_acc[family])
        line, = ax_task.plot(ks, [mean_acc[family][k] for k in ks], marker="o", label=family)
        points = [(r["k"], r["accuracy"]) for r in runs if r["family"] == family]
        ax_task.scatter(*zip(*points), color=line.get_color(), alpha=0.4, s=12)
    ax_task.axhline(0.5, color="gray", ls=":", label="chance")
    ax_task.set(xlabel="k (filler characters)", ylabel="accuracy", ylim=(0, 1.05), title="(b) recall the first char")
    ax_task.legend(fontsize=8)
    fig.tight_layout()
    return {"memory": fig}
