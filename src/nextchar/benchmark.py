"""``nextchar bench``: engines side by side in one run, as ratios to torch's own module.

The JSON's ``engine`` names what is timed: ``module`` (nn.RNN/LSTM/GRU), ``cell`` (a loop over
nn.*Cell), ``scratch`` (a loop over the hand-written cell: the autograd engine), ``fused`` (the
hand-written cell's compiled kernels under autograd, torch's Adam) and, on the exam workload only,
``compiled`` (whole compiled epochs). The minimal workloads time mingru and minlstm's scan (``module``)
against their step loop (``scratch``) and nn.GRU / nn.LSTM, with ``chars_per_s`` (batch x window per
second). ms/epoch is forward + backward + optimizer step, the median over
timed epochs after warm-up; the kernels' numba compile time is measured apart (cold: empty cache;
warm: cache filled), each in a fresh process. Absolute times on a shared machine are noisy; ratios
within one run are the result.

Threads: the exam workload runs on one torch thread (fastest for its tiny matmuls, measured); the
stream workloads on torch's default (all cores), unless ``threads`` is given.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .cells import FAMILIES, detach_state
from .config import ModelConfig
from .device import resolve_device
from .engines import COMPILED, CPU_ONLY, model_engine
from .model import CharModel
from .sequence import protocol as exam
from .sequence.data import exam_data
from .sequence.fitting import fit
from .step import loss_fn, train_step

CONTENDERS = ("module", "cell", "scratch", "fused", "compiled")
"""What a bench record's ``engine`` field names; ``compiled`` runs the exam workload only."""


@dataclass(frozen=True)
class Workload:
    name: str
    batch_size: int
    seq_len: int
    hidden_size: int
    vocab_size: int


WINDOWS = (Workload("streams-32x128-h64", 32, 128, 64, 100), Workload("streams-64x128-h256", 64, 128, 256, 100))
MINIMAL = (Workload("minimal-32x128-h256", 32, 128, 256, 100), Workload("minimal-32x1024-h256", 32, 1024, 256, 100))
"""The minimal families' parallel scan against their own step loop and torch's GRU and LSTM, same sizes."""
MINIMAL_ROWS = (("mingru", "module"), ("mingru", "scratch"), ("minlstm", "module"), ("minlstm", "scratch"),
                ("gru", "module"), ("lstm", "module"))
"""(family, engine) of a minimal workload: module is mingru/minlstm's scan (scan.py) or nn.GRU / nn.LSTM;
scratch the sequential cell under the autograd engine's loop."""
TINY = Workload("streams-tiny", 4, 8, 8, 10)
"""For the smoke test: ``nextchar bench --workload streams-tiny``."""
MANY_MODELS, MANY_MODELS_QUICK = 256, 32
"""K of the exam-many workload: models trained together by the many engine (the second with --quick)."""
GPU_MANY_MODELS, GPU_MANY_MODELS_QUICK = 1024, 64
"""A second K for the GPU trainer (one model per thread: 256 threads fill few of an H200's 132 multiprocessors)."""
WORKLOADS = ("exam", "exam-many", *(w.name for w in (*WINDOWS, *MINIMAL)), TINY.name)


def _config(family: str, contender: str, vocab_size: int, hidden_size: int) -> ModelConfig:
    """The model a contender times: kind module / cell, or the hand-written cell on an engine."""
    if contender in ("module", "cell"):
        return ModelConfig(vocab_size, family, contender, hidden_size)
    engine = "autograd" if contender == "scratch" else contender
    return ModelConfig(vocab_size, family, "scratch", hidden_size, engine=engine)


def _now(device: torch.device) -> float:
    """A timestamp after the device's queued work has finished (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def time_exam(family: str, engine: str, epochs: int, warmup: int = 2, device: str = "cpu") -> float:
    """Median ms per epoch of the exam's protocol (999 steps, Adam at the exam's lr) for one engine."""
    device = resolve_device(device)
    _, x, y = exam_data()
    torch.manual_seed(0)
    model = CharModel(_config(family, model_engine(engine), exam.VOCAB_SIZE, exam.HIDDEN_SIZE[family]))
    if engine == COMPILED:  # one compiled call runs every epoch: time the call, per epoch
        fit(model, x, y, epochs=warmup, lr=exam.LR, trainer=COMPILED)
        start = time.perf_counter()
        fit(model, x, y, epochs=epochs, lr=exam.LR, trainer=COMPILED)
        return 1000 * (time.perf_counter() - start) / epochs
    stamps = [_now(device)]
    fit(model, x, y, epochs=warmup + epochs, lr=exam.LR, device=device,
        callback=lambda *_: stamps.append(_now(device)))
    durations = [b - a for a, b in zip(stamps, stamps[1:])][warmup:]
    return 1000 * statistics.median(durations)


def time_windows(family: str, engine: str, work: Workload, steps: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median ms per training step of ``work`` (one window of B streams, state carried, Adam)."""
    device = resolve_device(device)
    torch.manual_seed(0)
    model = CharModel(_config(family, engine, work.vocab_size, work.hidden_size)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    criterion = loss_fn("cross_entropy")
    data = torch.randint(0, work.vocab_size, (work.seq_len + 1, work.batch_size)).to(device)
    state, durations = None, []
    for _ in range(warmup + steps):
        start = _now(device)
        _, _, state = train_step(model, data[:-1], data[1:], criterion, opt, state=state)
        state = detach_state(state)
        durations.append(_now(device) - start)
    return 1000 * statistics.median(durations[warmup:])


_COMPILE_SNIPPET = (
    "import time, numba, torch, nextchar.fused.core, nextchar.fused.compiled\n"
    "from nextchar.fused.warmup import first_calls\n"
    "t = time.perf_counter(); first_calls(); print(time.perf_counter() - t)\n"
)


def compile_seconds(cold: bool) -> float:
    """Seconds a fresh process spends in the first calls of all fused kernels (float32 and float64),
    after the imports: compiling them (cold: empty cache) or loading them from numba's cache (warm)."""
    with tempfile.TemporaryDirectory(prefix="nextchar-numba-") as empty_cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": empty_cache} if cold else dict(os.environ)
        out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, check=True, capture_output=True,
                             text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_bench(quick: bool = False, families: tuple[str, ...] = FAMILIES, threads: int | None = None,
              workloads: tuple[str, ...] = WORKLOADS[:-1], compile_timing: bool = True, log=print,
              device: str = "cpu") -> dict:
    """Time every contender on each workload and family; ``threads`` None: 1 for the exam, torch's default
    for the streams. Returns the JSON payload: ``records`` (one per workload, family and engine) and more.
    On ``device`` cuda the GPU rows: the torch contenders (the numba engines run on the CPU only) and the
    exam-many workload on the stacked engine and, where numba.cuda finds the GPU, the GPU trainer (many)."""
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"bench: workload must be one of {WORKLOADS}, got {unknown}")
    device = str(resolve_device(device))
    contenders = CONTENDERS if device == "cpu" else tuple(c for c in CONTENDERS if c not in CPU_ONLY)
    default_threads = torch.get_num_threads()
    records = []

    def add(workload: str, family: str, engine: str, hidden: int, ms: float) -> None:
        records.append({"workload": workload, "family": family, "engine": engine, "hidden_size": hidden,
                        "ms_per_epoch": ms, "threads": torch.get_num_threads(), "device": device})
        log(f"{workload:22s} {family:7s} {engine:8s} {ms:10.3f} ms")

    if "exam" in workloads:
        torch.set_num_threads(threads or 1)
        _bench_exam(quick, families, add, contenders, device)
    if "exam-many" in workloads:
        torch.set_num_threads(threads or 1)
        records.extend(_bench_many(quick, families, records, log, device))
    torch.set_num_threads(threads or default_threads)
    for work in (w for w in (*WINDOWS, TINY) if w.name in workloads):
        big = work.hidden_size > 64
        for family in families:
            for engine in (c for c in contenders if c != "compiled"):  # compiled runs the exam's protocol only
                if quick and big and engine in ("cell", "scratch"):
                    continue  # the step-by-step loops at hidden 256 take seconds per step
                steps = 2 if quick or engine in ("cell", "scratch") else 5
                add(work.name, family, engine, work.hidden_size, time_windows(family, engine, work, steps,
                                                                              device=device))
    for work in (w for w in MINIMAL if w.name in workloads):
        for family, engine in MINIMAL_ROWS:
            if quick and engine == "scratch" and work.seq_len > 128:
                continue  # 1,024 steps of the loop at hidden 256: seconds per step
            ms = time_windows(family, engine, work, 2 if quick or engine == "scratch" else 5, device=device)
            add(work.name, family, engine, work.hidden_size, ms)
            records[-1]["chars_per_s"] = work.batch_size * work.seq_len / (ms / 1000)
    module_ms = {(r["workload"], r["family"]): r["ms_per_epoch"] for r in records if r["engine"] == "module"}
    for r in records:
        if "models" not in r:  # exam-many's ratio is per model-epoch, set by _bench_many
            r["speedup_vs_module"] = module_ms[(r["workload"], r["family"])] / r["ms_per_epoch"]
    compile_info = ({"cold_s": compile_seconds(cold=True), "warm_cache_s": compile_seconds(cold=False)}
                    if compile_timing and device == "cpu" else None)
    many = MANY_MODELS_QUICK if quick else MANY_MODELS
    workload_info = {"exam": f"{len(exam.TEXT) - 1} steps, batch 1, one-hot V={exam.VOCAB_SIZE}, Adam lr {exam.LR}",
                     "exam-many": f"the exam's protocol for {many} models at once (seeds 0..K-1)",
                     **{w.name: asdict(w) for w in (*WINDOWS, *MINIMAL, TINY)}}
    return {"records": records, "compile": compile_info, "threads": threads, "quick": quick, "device": device,
            "torch": torch.__version__, "machine": machine_description(),
            "workloads": {name: workload_info[name] for name in workloads}}


def machine_description() -> str:
    """Cores, the CPU's model name and the OS, for a benchmark's record (``platform.processor()`` is empty
    on most Linux machines, so the model name is read from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or platform.machine())
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"


def _bench_exam(quick: bool, families: tuple[str, ...], add, contenders: tuple[str, ...], device: str) -> None:
    """The exam's protocol for every contender, each timed over about the same wall time."""
    exam_epochs = 3 if quick else 10
    budget_s = 0.5 if quick else 2.0  # per engine: fast engines get many epochs, so their median is steady
    for family in families:
        for engine in contenders:
            probe_ms = time_exam(family, engine, epochs=1, warmup=1, device=device)
            epochs = min(max(exam_epochs, int(1000 * budget_s / probe_ms)), 2000)
            add("exam", family, engine, exam.HIDDEN_SIZE[family], time_exam(family, engine, epochs, device=device))


def _bench_many(quick: bool, families: tuple[str, ...], records: list[dict], log, device: str) -> list[dict]:
    """K exam models (seeds 0..K-1) trained together by the many engine (on CUDA the stacked engine and the GPU
    trainer); the ratio compares one module epoch (the exam record of this run, or timed here) with one
    model-epoch of the steady state (a call of 1 + E epochs less a call of 1, over E); ``call_ms``: what a
    call costs besides."""
    import numba.cuda

    K, epochs = (MANY_MODELS_QUICK, 3) if quick else (MANY_MODELS, 40)
    runs = [("many", K)] if device == "cpu" else [("stacked", K)]
    if device != "cpu" and numba.cuda.is_available():  # the GPU trainer, also at the K that fills the GPU better
        runs += [("many", K), ("many", GPU_MANY_MODELS_QUICK if quick else GPU_MANY_MODELS)]
    _, x, y = exam_data()
    out = []
    for family in families:
        module = next((r["ms_per_epoch"] for r in records if r["workload"] == "exam" and r["family"] == family
                       and r["engine"] == "module"), None) or time_exam(family, "module", epochs=3, warmup=1,
                                                                          device=device)
        for engine, models_k in runs:
            out.append(_time_many(engine, family, models_k, epochs, module, x, y, device, log))
    return out


def _time_many(engine: str, family: str, K: int, epochs: int, module_ms: float, x, y, device: str, log) -> dict:
    """One exam-many record: K models (seeds 0..K-1) of ``family`` by ``engine`` (many or stacked)."""
    import numba

    from .sequence.many import fit_many, fit_stacked

    models = []
    for seed in range(K):
        torch.manual_seed(seed)
        models.append(CharModel(_config(family, "cell", exam.VOCAB_SIZE, exam.HIDDEN_SIZE[family])))
    train = (lambda ms, e: fit_many(ms, x, y, epochs=e, device=device)) if engine == "many" else (
        lambda ms, e: fit_stacked(ms, x, y, epochs=e, device=device))
    # compile / load the kernels (or warm CUDA) first, for these K models: the many engine compiles a block
    # width per lane count (one lane for a few models, 32 for more: compiled.lane_width), so fewer would warm another
    train(models, 2)
    calls = []  # one epoch, then `epochs` more: the difference is the steady state, the first the call's own cost
    for n in (1, 1 + epochs):
        start = _now(resolve_device(device))
        train(models, n)
        calls.append(_now(resolve_device(device)) - start)
    ms = 1000 * (calls[1] - calls[0]) / epochs
    if ms <= 0:  # a noisy machine: the longer call's mean, then
        ms = 1000 * calls[1] / (1 + epochs)
    call_ms = 1000 * calls[0] - ms  # copying K models in and out, Adam's scalars, thread start
    per_model_us = 1000 * ms / K
    threads = numba.get_num_threads() if engine == "many" and device == "cpu" else torch.get_num_threads()
    log(f"{'exam-many':22s} {family:5s} {engine:8s} {ms:10.3f} ms for {K} models: {per_model_us:.1f} us/model-epoch "
        f"(+ {call_ms:.0f} ms a call)")
    return {"workload": "exam-many", "family": family, "engine": engine, "hidden_size": exam.HIDDEN_SIZE[family],
            "models": K, "ms_per_epoch": ms, "us_per_model_epoch": per_model_us, "call_ms": call_ms,
            "speedup_vs_module": 1000 * module_ms / per_model_us, "device": device, "threads": threads}


def format_table(result: dict) -> str:
    lines = [f"{'workload':22s} {'family':7s} {'engine':8s} {'hidden':>6s} {'ms/epoch':>10s} {'vs module':>10s}"]
    for r in result["records"]:
        many = f"  ({r['models']} models, {r['us_per_model_epoch']:.1f} us per model-epoch)" if "models" in r else \
            f"  ({r['chars_per_s']:,.0f} chars/s)" if "chars_per_s" in r else ""
        lines.append(f"{r['workload']:22s} {r['family']:7s} {r['engine']:8s} {r['hidden_size']:6d} "
                     f"{r['ms_per_epoch']:10.3f} {r['speedup_vs_module']:9.1f}x{many}")
    c = result["compile"]
    if c is not None:
        lines.append(f"fused/compiled kernels' first calls: cold compile {c['cold_s']:.2f} s, "
                     f"warm cache {c['warm_cache_s']:.2f} s")
    threads = result["threads"]
    lines.append(f"torch threads: {threads if threads else '1 for the exam, torch default for the streams'}")
    return "\n".join(lines)
