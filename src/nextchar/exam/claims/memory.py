"""Claim 1: is an RNN better than an LSTM at long-term memory? Measured two ways, RNN vs LSTM vs GRU (and, on
the task, the minimal families mingru and minlstm: "were RNNs all we needed?").

(a) Gradient flow: ‖∂(v·h_T)/∂x_{T-k}‖ / ‖∂(v·h_T)/∂x_T‖ vs k — how much of the last step's hidden state
    can still be credited to an input k steps back (the vanishing-gradient picture), at init and trained.
(b) A memory task: the first character is ``a`` or ``b``, then k random filler characters; at the last
    step the model must name the first character. Accuracy vs k over many seeds (32 by default), all
    seeds of a (family, k) trained together as stacked models (``sequence/stacked.py``), every run reported, with
    the mean's 95% interval. The verdict is the RNN's against the LSTM's; the minimal families are compared
    with the LSTM and the GRU by their intervals, k by k.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ...cells import ALL_FAMILIES, MIN_FAMILIES
from ...config import ModelConfig
from ...model import CharModel
from ...sequence.stacked import StackedAdam, StackedRecurrent, clip_per_model
from ...step import train_step
from .result import ClaimResult

FILLERS = 6
VOCAB = 2 + FILLERS  # 'a', 'b', then the filler characters


@dataclass
class MemoryBudget:
    task_ks: tuple[int, ...] = (5, 20, 50, 100)
    """Gaps k of the memory task."""
    gradient_ks: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
    """Distances k at which the gradient ratio is measured."""
    seeds: tuple[int, ...] = tuple(range(32))
    """Each seed draws one model's initial weights; a (family, k)'s seeds train together."""
    steps: int = 700
    """Adam steps per task run (fresh random sequences each step)."""
    batch_size: int = 16
    """Sequences per model and step (the cost is K x B x (k+1) cell steps per step: compute-bound)."""
    hidden_size: int = 16
    lr: float = 0.01
    clip: float = 1.0
    forget_bias: float = 5.0
    """LSTM forget-gate bias for the task runs (PyTorch's default is 0); the gradient study reports 0, 1 and this."""
    eval_size: int = 500


QUICK = MemoryBudget(task_ks=(2, 10), gradient_ks=(1, 5, 20, 50), seeds=tuple(range(8)), steps=250, batch_size=32)


def memory_batch(k: int, batch_size: int, generator: torch.Generator,
                 models: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (k+1, B) of indices: a|b then k fillers; targets (B,): the first character. With ``models``
    K: inputs (k+1, K, B) and targets (K, B), each model its own sequences."""
    shape = (batch_size,) if models is None else (models, batch_size)
    first = torch.randint(0, 2, shape, generator=generator)
    filler = torch.randint(2, VOCAB, (k, *shape), generator=generator)
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


def train_memory(family: str, k: int, budget: MemoryBudget,
                 device: str | torch.device = "cpu") -> tuple[StackedRecurrent, list[float], list[float]]:
    """Train one model per seed on the k-gap task, all together; returns the stacked models, each one's
    held-out accuracy and last training loss."""
    models = []
    for seed in budget.seeds:
        torch.manual_seed(seed)
        models.append(new_model(family, budget.hidden_size, budget.forget_bias))
    stacked = StackedRecurrent.from_models(models).to(device)
    opt = StackedAdam(stacked.parameters(), budget.lr)
    generator = torch.Generator().manual_seed(10_000 + k)
    K = len(budget.seeds)
    for step in range(1, budget.steps + 1):
        x, target = (t.to(device) for t in memory_batch(k, budget.batch_size, generator, K))
        _, loss, _ = train_step(stacked, x, target, _last_step_loss, opt, clip=budget.clip, clip_grads=clip_per_model,
                                where=f"step {step}")
    x, target = (t.to(device) for t in memory_batch(k, budget.eval_size, torch.Generator().manual_seed(99), K))
    with torch.no_grad():
        logits, _ = stacked(x)
        accuracy = (logits[-1].argmax(-1) == target).float().mean(1)  # (K,)
        final = _per_model_loss(logits, target)
    return stacked, accuracy.tolist(), final.tolist()


def _per_model_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the last step, logits (T, K, B, V) vs the first character (K, B), per model (K,)."""
    last = logits[-1]
    return F.cross_entropy(last.flatten(0, 1), target.flatten(), reduction="none").view(target.shape).mean(1)


def _last_step_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Only the last step is asked. Summed over models: each model gets the gradient of its own mean."""
    return _per_model_loss(logits, target).sum()


def _model_of(stacked: StackedRecurrent, index: int, family: str, hidden_size: int) -> CharModel:
    """Model ``index`` of a stack, as a CharModel (for the gradient study)."""
    return stacked.copy_to(index, new_model(family, hidden_size).to(stacked.weight_ih.device))


def interval95(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% interval (normal approximation, 1.96 standard errors), clipped to [0, 1]."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    half = 1.96 * statistics.stdev(values) / n ** 0.5
    return mean, max(0.0, mean - half), min(1.0, mean + half)


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
    runs, trained, task = [], {}, []
    longest = max(budget.task_ks)
    for family in ALL_FAMILIES:
        for k in budget.task_ks:
            stacked, accuracies, losses = train_memory(family, k, budget, device)
            runs += [{"family": family, "k": k, "seed": seed, "accuracy": a, "final_loss": loss}
                     for seed, a, loss in zip(budget.seeds, accuracies, losses)]
            mean, low, high = interval95(accuracies)
            task.append({"family": family, "k": k, "seeds": len(accuracies), "accuracy_mean": mean,
                         "ci95": [low, high]})
            if k == longest:
                model = _model_of(stacked, 0, family, budget.hidden_size)
                trained[family] = gradient_ratios(model, budget.gradient_ks, budget.seeds[0])
    mean_acc = {f: {t["k"]: t["accuracy_mean"] for t in task if t["family"] == f} for f in ALL_FAMILIES}
    verdict, explanation = _decide(at_init, mean_acc, budget)
    explanation += " " + minimal_comparison(task, budget.task_ks)
    evidence = {"gradient_ratio_at_init": at_init, f"gradient_ratio_trained_k{longest}": trained,
                "task": task, "task_runs": runs, "task_mean_accuracy": mean_acc, "budget": asdict(budget)}
    return ClaimResult(1, "An RNN is better than an LSTM at long-term memory.", verdict, evidence, explanation,
                       _figures(at_init, trained, runs, task, budget))


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
    tie = "" if rnn_wins or lstm_wins else (" The task results tie between RNN and LSTM at this budget, so the "
                                            "gradient evidence decides.")
    decided = ("Decided by: " + gradient_words + f"; the LSTM wins the task at k in {lstm_wins}, the RNN at "
               f"k in {rnn_wins} (a win is a mean accuracy more than {margin:.0%} higher).{tie} " + task_words + ".")
    return verdict, decided


def minimal_comparison(task: list[dict], ks: tuple[int, ...]) -> str:
    """How mingru and minlstm fare on the memory task against the LSTM and the GRU, k by k: each mean with its
    95% interval, and where the intervals do not overlap, who is ahead."""
    entry = {(t["family"], t["k"]): t for t in task}

    def shown(family: str, k: int) -> str:
        t = entry[(family, k)]
        return f"{family} {t['accuracy_mean']:.0%} [{t['ci95'][0]:.0%}, {t['ci95'][1]:.0%}]"

    apart = []
    for k in ks:
        for minimal in MIN_FAMILIES:
            for classic in ("lstm", "gru"):
                (low, high), (c_low, c_high) = entry[(minimal, k)]["ci95"], entry[(classic, k)]["ci95"]
                if low > c_high or high < c_low:
                    apart.append(f"{minimal} {'above' if low > c_high else 'below'} {classic} at k={k}")
    where = "; ".join(apart) if apart else "no interval lies apart from the LSTM's or the GRU's: they tie here"
    return ("The minimal families on the memory task (mean accuracy over seeds, 95% interval): " + "; ".join(
        f"k={k}: " + ", ".join(shown(f, k) for f in (*MIN_FAMILIES, "lstm", "gru")) for k in ks)
            + f". Intervals apart: {where}.")


def _figures(at_init, trained, runs, task, budget) -> dict:
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
    for family in ALL_FAMILIES:
        rows = [t for t in task if t["family"] == family]
        ks = [t["k"] for t in rows]
        line, = ax_task.plot(ks, [t["accuracy_mean"] for t in rows], marker="o",
                             label=f"{family} (mean of {rows[0]['seeds']} seeds, 95% band)")
        ax_task.fill_between(ks, [t["ci95"][0] for t in rows], [t["ci95"][1] for t in rows], color=line.get_color(),
                             alpha=0.2)
        points = [(r["k"], r["accuracy"]) for r in runs if r["family"] == family]
        ax_task.scatter(*zip(*points), color=line.get_color(), alpha=0.25, s=8)
    ax_task.axhline(0.5, color="gray", ls=":", label="chance")
    ax_task.set(xlabel="k (filler characters)", ylabel="accuracy", ylim=(0, 1.05), title="(b) recall the first char")
    ax_task.legend(fontsize=8)
    fig.tight_layout()
    return {"memory": fig}
