"""The compiled trainer of another revision against this tree's, interleaved in one process: one model
(``fit(..., trainer="compiled")``) and 256 at once (``fit_many``), and the fused engine under torch's Adam
(``fit`` of a fused model), each family at the exam's sizes.

    python bench/ab_revisions.py 0cf0d7b [--rounds 21] [--json FILE]

The revision's ``src/nextchar`` is exported (``git archive``) into a temporary folder as the package
``nextchar_then`` and imported beside ``nextchar``; each round times both, alternating which goes first.
Per model-epoch: (the least disturbed call of 21 epochs - the least disturbed call of 1) / 20; ``call``:
what the call costs besides. Both sides compile first (numba caches by file: the exported copy compiles
cold once). A revision from before the trainer was asked for by name (``ModelConfig.engine="compiled"``)
is driven that way. Prints a table and one JSON line ({"ab": [...]}).
"""
import argparse
import importlib
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
MODELS = 256


def export(revision: str, into: Path) -> None:
    """The revision's package as ``into/nextchar_then``."""
    archive = subprocess.run(["git", "archive", revision, "src/nextchar"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "src" / "nextchar").rename(into / "nextchar_then")


def runner(package, engine: str, family: str, x, y, lr: float, hidden: int):
    """A function training ``n`` epochs of one model or of MODELS, by ``package``'s own API."""
    by_name = "trainer" in inspect.signature(package.fit).parameters

    def model(seed: int, engine: str = "fused" if by_name else "compiled"):
        torch.manual_seed(seed)
        return package.CharModel(package.ModelConfig(7, family, "scratch", hidden, engine=engine))

    if engine == "fused":
        fused = model(0, "fused")
        return lambda n: package.fit(fused, x, y, epochs=n, lr=lr)
    if engine == "compiled":
        one = model(0)
        extra = {"trainer": "compiled"} if by_name else {}
        return lambda n: package.fit(one, x, y, epochs=n, lr=lr, **extra)
    many = [model(seed) for seed in range(MODELS)]
    fit_many = getattr(package, "fit_many", None) or importlib.import_module(f"{package.__name__}.many").fit_many
    return lambda n: fit_many(many, x, y, epochs=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="nextchar-ab-") as folder:
        export(args.revision, Path(folder))
        sys.path.insert(0, folder)
        then, now = importlib.import_module("nextchar_then"), importlib.import_module("nextchar")
        from nextchar.sequence import protocol as exam
        from nextchar.sequence.data import exam_data

        _, x, y = exam_data()
        cases = [(engine, family) for engine in ("compiled", "many", "fused") for family in ("rnn", "lstm", "gru")]
        runs = {(side, *case): runner(package, *case, x, y, exam.LR, exam.HIDDEN_SIZE[case[1]])
                for side, package in (("then", then), ("now", now)) for case in cases}
        for run in runs.values():
            run(2)  # compile (or load) first
        calls = {key: {1: [], 21: []} for key in runs}
        for round_ in range(args.rounds):
            for case in cases:
                for side in (("then", "now") if round_ % 2 == 0 else ("now", "then")):
                    for epochs in (1, 21):
                        start = time.perf_counter()
                        runs[(side, *case)](epochs)
                        calls[(side, *case)][epochs].append(time.perf_counter() - start)
    rows = []
    for engine, family in cases:
        row = {"engine": engine, "family": family, "revision": args.revision}
        for side in ("then", "now"):
            timed = calls[(side, engine, family)]
            per_epoch = (min(timed[21]) - min(timed[1])) / 20
            row[f"{side}_us_per_model_epoch"] = 1e6 * per_epoch / (MODELS if engine == "many" else 1)
            row[f"{side}_call_ms"] = 1e3 * (min(timed[1]) - per_epoch)
        row["ratio"] = row["now_us_per_model_epoch"] / row["then_us_per_model_epoch"]
        rows.append(row)
        print(f"{engine:8s} {family:4s}  {args.revision} {row['then_us_per_model_epoch']:8.2f} us  now "
              f"{row['now_us_per_model_epoch']:8.2f} us per model-epoch  now/then {row['ratio']:.3f}  (+ a call: "
              f"{row['then_call_ms']:.2f} ms, {row['now_call_ms']:.2f} ms)", flush=True)
    payload = {"ab": rows, "rounds": args.rounds}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1))
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
