"""How closely the minimal families' parallel form (``scan.py``: the CPU's linear scan, and Heinsen's
log-space scan that GPUs run) meets their sequential cell: max abs and relative differences of the logits,
the last state and every gradient (parameters and the carried state), over T steps (default 2,048), batch
3, hidden 16, two layers, both dtypes, on the same weights.

    python bench/scan_accuracy.py [--steps 2048]

Prints a table and one JSON line ({"scan_accuracy": [...]}); relative = max |difference| / max |sequential|.
"""
import argparse
import json

import torch
import torch.nn.functional as F

import nextchar.scan as scan_module
from nextchar.cells import MIN_FAMILIES
from nextchar.config import ModelConfig
from nextchar.model import CharModel
from nextchar.scan import log_coefficients, log_scan

KINDS = {"linear": scan_module.scan,
         "log": lambda family, gi, h0=None: log_scan(*log_coefficients(family, gi), h0)}
"""The scan each row runs (on the CPU the model runs the linear one; here each is put in its place)."""


def differences(family: str, dtype: torch.dtype, steps: int, hidden: int = 16, batch: int = 3) -> dict:
    torch.manual_seed(1)
    parallel = CharModel(ModelConfig(7, family, "module", hidden, num_layers=2)).to(dtype)
    sequential = CharModel(ModelConfig(7, family, "scratch", hidden, num_layers=2)).to(dtype)
    sequential.load_state_dict(parallel.state_dict())
    x, y = torch.randint(0, 7, (steps, batch)), torch.randint(0, 7, (steps, batch))
    state = torch.rand(2, batch, hidden, dtype=dtype) + 0.1
    out = []
    for model in (parallel, sequential):
        start = state.clone().requires_grad_()
        logits, last = model(x, start)
        F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1)).backward()
        out.append({"logits": logits.detach(), "last state": last.detach(), "state gradient": start.grad,
                    **{f"gradient {name}": p.grad for name, p in model.named_parameters()}})
    row = {}
    for what in out[0]:
        a, b = out[0][what], out[1][what]
        row[what] = {"abs": (a - b).abs().max().item(), "rel": ((a - b).abs().max() / b.abs().max()).item()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2048)
    args = parser.parse_args()
    rows = []
    for kind, run in KINDS.items():
        scan_module.scan = run
        for family in MIN_FAMILIES:
            for dtype in (torch.float32, torch.float64):
                diffs = differences(family, dtype, args.steps)
                forward = max(diffs[k]["rel"] for k in ("logits", "last state"))
                grads = max(v["rel"] for k, v in diffs.items() if "gradient" in k)
                forward_abs = max(diffs[k]["abs"] for k in ("logits", "last state"))
                grads_abs = max(v["abs"] for k, v in diffs.items() if "gradient" in k)
                print(f"{kind:6s} {family:7s} {str(dtype):13s} T={args.steps}: forward max abs {forward_abs:.1e} "
                      f"rel {forward:.1e}; gradients max abs {grads_abs:.1e} rel {grads:.1e}", flush=True)
                rows.append({"scan": kind, "family": family, "dtype": str(dtype), "steps": args.steps,
                             "diffs": diffs})
    print(json.dumps({"scan_accuracy": rows}))


if __name__ == "__main__":
    main()
