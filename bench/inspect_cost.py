"""What ``nextchar inspect`` costs against ``nextchar predict`` over the same text, in one run: wall time and
peak RSS of each command (a fresh process each), for a short and a long text, with a hidden-256 LSTM.

    python bench/inspect_cost.py                 # 10 KB and 1 MB, hidden 256 (several GB of npz on disk)
    python bench/inspect_cost.py --quick         # 10 KB and 100 KB

Prints one JSON object: per text size, predict's and inspect's seconds and peak RSS (MB), and the ratios.
Run it alone: two CPU-heavy processes on these 2 cores slow each other many times over.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEAK = ("import resource, sys; from nextchar.cli import main\n"
        "try: main(sys.argv[1:])\nexcept SystemExit as e: code = e.code\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def run(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``nextchar ARGS`` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "PEAK" not in done.stdout:
        raise SystemExit(f"nextchar {' '.join(args[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, float(done.stdout.rsplit("PEAK", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hidden-size", type=int, default=256)
    args = parser.parse_args()
    corpus = (ROOT / "README.md").read_text(encoding="utf-8")
    sizes = [10_000, 100_000] if args.quick else [10_000, 1_000_000]
    records = []
    with tempfile.TemporaryDirectory(prefix="nextchar-inspect-bench-", dir=ROOT) as folder:
        folder = Path(folder)
        corpus_file = folder / "corpus.txt"
        corpus_file.write_text(corpus, encoding="utf-8")
        train = ["train", str(corpus_file), "--hidden-size", str(args.hidden_size), "--max-steps", "2",
                 "--eval-every", "2", "--no-progress", "--device", "cpu", "--out", str(folder / "run")]
        run(train)
        checkpoint = str(folder / "run" / "last.safetensors")
        for size in sizes:
            text_file = folder / f"text{size}.txt"
            text_file.write_text((corpus * (size // len(corpus) + 1))[:size], encoding="utf-8")
            common = ["--text-file", str(text_file), "--device", "cpu"]
            predict = run(["predict", checkpoint, *common, "--png", str(folder / "p.png")])
            inspect_page = run(["inspect", checkpoint, *common, "--html", str(folder / "i.html")])
            inspect_npz = run(["inspect", checkpoint, *common, "--html", str(folder / "i.html"), "--npz",
                               str(folder / "i.npz")])
            npz_mb = (folder / "i.npz").stat().st_size / 2**20
            (folder / "i.npz").unlink()
            records.append({"characters": size, "predict_s": round(predict[0], 2), "predict_peak_mb": round(predict[1]),
                            "inspect_s": round(inspect_page[0], 2), "inspect_peak_mb": round(inspect_page[1]),
                            "inspect_npz_s": round(inspect_npz[0], 2), "inspect_npz_peak_mb": round(inspect_npz[1]),
                            "npz_mb": round(npz_mb), "inspect_vs_predict": round(inspect_page[0] / predict[0], 2),
                            "inspect_npz_vs_predict": round(inspect_npz[0] / predict[0], 2)})
            print(json.dumps(records[-1]), file=sys.stderr)
    small, large = records[0], records[-1]
    print(json.dumps({"hidden_size": args.hidden_size, "family": "lstm", "records": records,
                      "npz_peak_growth_mb": large["inspect_npz_peak_mb"] - small["inspect_npz_peak_mb"],
                      "command": "python bench/inspect_cost.py" + (" --quick" if args.quick else "")}, indent=1))


if __name__ == "__main__":
    main()
