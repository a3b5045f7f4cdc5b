"""nextchar bench and the bench/ scripts, on tiny workloads: they run and write what they promise."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nextchar.benchmark import TINY
from nextchar.cli import main
from nextchar.sequence.protocol import HIDDEN_SIZE

pytestmark = pytest.mark.slow  # end to end: run by CI, left out of the fast tier (-m "not slow")

ROOT = Path(__file__).parent.parent


def test_bench_quick_reports_fused_and_compiled_as_separate_engines(tmp_path):
    path = tmp_path / "new_folder" / "bench.json"
    out = CliRunner().invoke(main, ["bench", "--quick", "--family", "rnn", "--workload", "exam", "--workload",
                                    "streams-tiny", "--workload", "exam-many", "--no-compile-timing", "--json",
                                    str(path)])
    assert out.exit_code == 0, out.output
    records = json.loads(path.read_text())["records"]
    exam = {r["engine"]: r for r in records if r["workload"] == "exam"}
    assert sorted(exam) == ["cell", "compiled", "fused", "module", "scratch"]
    tiny = {r["engine"] for r in records if r["workload"] == "streams-tiny"}
    assert tiny == {"module", "cell", "scratch", "fused"}  # the compiled epoch runs the exam's protocol only
    (many,) = [r for r in records if r["workload"] == "exam-many"]
    assert many["engine"] == "many" and many["models"] == 32 and math.isfinite(many["call_ms"])
    # the table prints the figures the JSON holds
    assert f"({many['models']} models, {many['us_per_model_epoch']:.1f} us per model-epoch)" in out.output
    assert abs(many["us_per_model_epoch"] - 1000 * many["ms_per_epoch"] / 32) < 1e-9
    assert abs(many["speedup_vs_module"] - 1000 * exam["module"]["ms_per_epoch"] / many["us_per_model_epoch"]) < 1e-6
    records = [r for r in records if r["engine"] != "many"]
    for r in records:
        assert r["family"] == "rnn" and r["hidden_size"] == {"exam": HIDDEN_SIZE["rnn"],
                                                             TINY.name: TINY.hidden_size}[r["workload"]]
        module = next(m for m in records if m["workload"] == r["workload"] and m["engine"] == "module")
        assert abs(r["speedup_vs_module"] - module["ms_per_epoch"] / r["ms_per_epoch"]) < 1e-9
    assert exam["module"]["threads"] == 1  # exam-size models run on one thread
    assert "compiled" in out.output and "vs module" in out.output



def test_the_minimal_workload_times_the_scan_the_step_loop_and_torchs_gru_and_lstm(monkeypatch):
    from nextchar import benchmark
    from nextchar.benchmark import Workload, run_bench

    small = Workload("minimal-32x128-h256", 2, 12, 8, 10)  # the name the flag takes, a size that runs at once
    monkeypatch.setattr(benchmark, "MINIMAL", (small,))
    result = run_bench(workloads=(small.name,), compile_timing=False, log=lambda _: None)
    rows = {(r["family"], r["engine"]): r for r in result["records"]}
    assert sorted(rows) == sorted(benchmark.MINIMAL_ROWS)
    for (family, _), r in rows.items():
        assert abs(r["chars_per_s"] - 2 * 12 / (r["ms_per_epoch"] / 1000)) < 1e-6 * r["chars_per_s"]
        assert abs(r["speedup_vs_module"] - rows[(family, "module")]["ms_per_epoch"] / r["ms_per_epoch"]) < 1e-9
    assert "chars/s" in benchmark.format_table(result)

def test_bench_unknown_workload_is_a_flag_error():
    out = CliRunner().invoke(main, ["bench", "--workload", "huge"])
    assert out.exit_code == 2 and "huge" in out.output


def test_train_reference_script_prints_one_json_object():
    script = ROOT / "bench" / "train_reference.py"
    done = subprocess.run([sys.executable, str(script), "--steps", "2", "--corpus-bytes", "60000", "--family", "gru",
                           "--threads", "1"], capture_output=True, text=True, check=True, timeout=900)
    result = json.loads(done.stdout)
    gru = result["families"]["gru"]
    assert result["steps"] == 2 and set(gru) >= {"reference", "nextchar"}
    assert gru["nextchar"]["speed_vs_reference"] == gru["nextchar"]["chars_per_sec"] / gru["reference"]["chars_per_sec"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_bench_on_a_device_without_cuda_is_a_flag_error():
    out = CliRunner().invoke(main, ["bench", "--device", "cuda"])
    assert out.exit_code == 2 and "CUDA is not available" in out.output


def test_trainer_phases_script_prints_every_phase_and_one_json_line():
    script = ROOT / "bench" / "trainer_phases.py"
    done = subprocess.run([sys.executable, str(script), "--family", "gru", "--lanes", "1", "--lanes", "32", "--epochs",
                           "1", "--reps", "1"], capture_output=True, text=True, check=True, timeout=900)
    (one, block) = json.loads(done.stdout.splitlines()[-1])["phases"]
    assert (one["family"], one["lanes"], block["lanes"]) == ("gru", 1, 32)
    for row in (one, block):
        assert set(row["us_per_model_epoch"]) == {"forward", "head + loss", "backward", "gradients", "adam"}
        assert row["total"] == sum(row["us_per_model_epoch"].values()) and row["total"] > 0
