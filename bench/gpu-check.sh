#!/usr/bin/env bash
# The CUDA path end to end, in about 5 minutes on a machine with a GPU (the device tool's H200: torch 2.11
# and the project's dependencies are there, so the project is installed over them without dependencies):
#   1. tests/test_gpu.py                         (skipped everywhere else)
#   2. nextchar exam --device cuda               tables equal the CPU's to 3 decimals
#   3. nextchar train --device cuda, a few steps, the checkpoint loaded and used on the CPU
#   4. nextchar sweep --device cuda              (the stacked engine) against the CPU's many engine
#   5. nextchar bench --device cuda              the GPU rows
# and prints one summary (also $OUT/summary.json when OUT is set, else gpu-check/summary.json).
# DEVICE=cpu QUICK=1 bash bench/gpu-check.sh runs the same steps on the CPU, for checking the script itself.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
device=${DEVICE:-cuda}
epochs=()
[ "${QUICK:-0}" = 1 ] && epochs=(--epochs 5)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# into a folder of its own, over the machine's packages: the environment itself stays as it was
if python3 -m pip install -q --no-deps --no-build-isolation --target "$out/site" . >"$out/install.log" 2>&1; then
    export PYTHONPATH=$PWD/$out/site
else
    export PYTHONPATH=$PWD/src
fi
nc() { python3 -m nextchar "$@"; }
status=()
step() {  # name, command...: run it, time it, remember how it ended
    local name=$1; shift
    local start=$SECONDS
    "$@" >"$out/$name.log" 2>&1
    local rc=$?
    status+=("$name:$rc:$((SECONDS - start))")
    echo "== $name: exit $rc in $((SECONDS - start)) s"
    tail -n 3 "$out/$name.log"
}
if [ "$device" = cuda ]; then
    step gpu-tests python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "not exam_tables"
fi
step exam-cpu nc exam --device cpu --jobs 6 "${epochs[@]}" --out "$out/exam-cpu" --json "$out/exam-cpu.json"
step exam-device nc exam --device "$device" "${epochs[@]}" --out "$out/exam-$device" --json "$out/exam-device.json"
step train nc train --corpus python-stdlib --corpus-bytes 200000 --max-steps 60 --eval-every 30 --hidden-size 128 \
    --device "$device" --no-progress --out "$out/run" --overwrite
step load-on-cpu nc generate "$out/run/last.safetensors" --device cpu --prompt "def " --length 200 --seed 0
step predict-on-cpu nc predict "$out/run/last.safetensors" --device cpu --text "import os" --png "$out/predict.png"
step sweep-cpu nc sweep --device cpu --problem 2 --seeds 64 --epochs 50 --no-progress --json "$out/sweep-cpu.json"
step sweep-device nc sweep --device "$device" --problem 2 --seeds 64 --epochs 50 --no-progress \
    --json "$out/sweep-device.json"
step bench nc bench --device "$device" --quick --no-compile-timing --workload exam --workload exam-many \
    --workload streams-64x128-h256 --json "$out/bench-device.json"
python3 - "$out" "${status[@]}" <<'PY'
import json, sys
from pathlib import Path

out, steps = Path(sys.argv[1]), [s.split(":") for s in sys.argv[2:]]
summary = {"steps": {name: {"exit": int(rc), "seconds": int(s)} for name, rc, s in steps}}

def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None

cpu, dev = load("exam-cpu.json"), load("exam-device.json")
if cpu and dev:
    diffs = {n: max(abs(a - b) for ra, rb in zip(p["probs_head"], dev["problems"][n]["probs_head"])
                    for a, b in zip(ra, rb)) for n, p in cpu["problems"].items()}
    summary["exam_max_table_diff"] = diffs
    summary["exam_tables_equal_to_3_decimals"] = all(d <= 0.0015 for d in diffs.values())
s_cpu, s_dev = load("sweep-cpu.json"), load("sweep-device.json")
if s_cpu and s_dev:
    pairs = [(a["final_loss"], b["final_loss"]) for a, b in zip(s_cpu["runs"], s_dev["runs"])]
    summary["sweep_max_final_loss_diff"] = max(abs(a - b) for a, b in pairs)
bench = load("bench-device.json")
if bench:
    summary["bench"] = [{k: r.get(k) for k in ("workload", "family", "engine", "ms_per_epoch", "us_per_model_epoch",
                                                "speedup_vs_module")} for r in bench["records"]]
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
failed = [name for name, rc, _ in steps if rc != "0"]
print("gpu-check:", "FAILED " + ", ".join(failed) if failed else "all steps passed",
      "| exam tables equal to 3 decimals:", summary.get("exam_tables_equal_to_3_decimals"))
PY
