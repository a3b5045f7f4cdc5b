"""The CUDA path end to end: exam, verify, train, generate, claims. Skipped without CUDA (CI has none)."""
import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.exam.problems import run_exam
from nextchar.exam.verify import verify_family
from nextchar.generate import generate, predict
from nextchar.run.checkpoint import load_checkpoint
from nextchar.run.trainer import TrainConfig, train
from tests.helpers import FIXTURE
from tests.helpers import SMALL_24 as SMALL

from .conftest import requires_cuda

pytestmark = [pytest.mark.gpu, requires_cuda]


def test_exam_tables_on_cuda_equal_cpu_to_3_decimals():
    cpu = run_exam([2, 3, 5, 6], device="cpu", jobs=2)
    cuda = run_exam([2, 3, 5, 6], device="cuda")
    for number in (2, 3, 5, 6):
        assert cuda.results[number].probs_head == cpu.results[number].probs_head, number
    for check in cuda.checks().values():
        assert check["tables_identical"]


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_verify_on_cuda(family):
    assert verify_family(family, epochs=5, device="cuda").passed


def test_train_on_cuda_then_load_and_generate_on_cpu(tmp_path):
    text = FIXTURE.read_text()
    result = train(text, SMALL, TrainConfig(seq_len=16, batch_size=4, max_steps=20, eval_every=10, device="cuda"),
                   tmp_path, progress=False)
    assert next(result.model.parameters()).is_cuda
    ckpt = load_checkpoint(tmp_path / "best.safetensors")
    cpu_model = ckpt.build_model("cpu")
    probe = "def scale(values):"
    torch.testing.assert_close(predict(cpu_model, ckpt.vocab, probe), predict(result.model, result.vocab, probe),
                               atol=1e-4, rtol=0)
    sample = generate(cpu_model, ckpt.vocab, "def ", 30, seed=0)[len("def "):]  # generate returns prompt + sample
    assert len(sample) == 30 and not ckpt.vocab.unknown(sample)
    resumed = train(text, SMALL, TrainConfig(seq_len=16, batch_size=4, max_steps=24, eval_every=10, device="cuda"),
                    tmp_path, resume=True, progress=False)
    assert len(resumed.step_losses) == 24


def test_cli_generate_and_claims_on_cuda(tmp_path):
    train(FIXTURE.read_text(), SMALL, TrainConfig(seq_len=16, batch_size=4, max_steps=4, device="cuda"), tmp_path,
          progress=False)
    gen = CliRunner().invoke(main, ["generate", str(tmp_path / "last.safetensors"), "--device", "cuda", "--length",
                                    "10"])
    assert gen.exit_code == 0, gen.output
    claims = CliRunner().invoke(main, ["claims", "--claim", "4", "--claim", "5", "--quick", "--device", "cuda",
                                       "--out", str(tmp_path)])
    assert claims.exit_code == 0 and claims.output.count("verdict: FALSE") == 2, claims.output


def test_fused_engine_on_cuda_is_a_clear_error():
    from nextchar.config import ModelConfig
    from nextchar.model import CharModel

    model = CharModel(ModelConfig(5, "lstm", "scratch", 4, engine="fused")).cuda()
    with pytest.raises(ValueError, match="CPU only"):
        model(torch.zeros(3, dtype=torch.long, device="cuda"))


def test_bench_has_gpu_rows_for_the_torch_contenders_the_stacked_engine_and_the_gpu_trainer(tmp_path):
    import json

    from numba import cuda

    path = tmp_path / "bench.json"
    out = CliRunner().invoke(main, ["bench", "--device", "cuda", "--quick", "--family", "rnn", "--workload", "exam",
                                    "--workload", "exam-many", "--no-compile-timing", "--json", str(path)])
    assert out.exit_code == 0, out.output
    records = json.loads(path.read_text())["records"]
    gpu_trainer = {"many"} if cuda.is_available() else set()
    assert {r["engine"] for r in records} == {"module", "cell", "scratch", "stacked"} | gpu_trainer
    assert all(r["device"].startswith("cuda") for r in records)


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_gpu_trainer_equals_the_cpu_many_engine_to_round_off(family):
    """fit_many on the GPU (numba.cuda, one model per thread) against the CPU trainer, 40 models (two warps)."""
    from numba import cuda

    from nextchar.config import ModelConfig
    from nextchar.model import CharModel
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.many import fit_many

    if not cuda.is_available():
        pytest.skip("numba.cuda finds no GPU")
    _, x, y = exam_data()

    def models():
        out = []
        for seed in range(40):
            torch.manual_seed(seed)
            out.append(CharModel(ModelConfig(7, family, "cell", 8)))
        return out

    cpu_models, gpu_models = models(), models()
    cpu = fit_many(cpu_models, x, y, epochs=20, lrs=[0.01 + 0.002 * k for k in range(40)])
    gpu = fit_many(gpu_models, x, y, epochs=20, lrs=[0.01 + 0.002 * k for k in range(40)], device="cuda")
    for a, b, ma, mb in zip(cpu, gpu, cpu_models, gpu_models):
        assert abs(a.history[-1]["loss"] - b.history[-1]["loss"]) < 1e-4
        torch.testing.assert_close(b.probs, a.probs, atol=1e-4, rtol=0)
        for pa, pb in zip(ma.parameters(), mb.parameters()):
            torch.testing.assert_close(pb, pa, atol=1e-4, rtol=1e-4)


def test_sweep_on_cuda_equals_the_cpu_many_engine_to_round_off():
    from nextchar.exam.sweep import parse_seeds, sweep

    cpu = sweep(parse_seeds("8"), problem=2, epochs=20)
    cuda = sweep(parse_seeds("8"), problem=2, epochs=20, device="cuda")
    assert cuda.engine == "stacked"
    for a, b in zip(cpu.runs, cuda.runs):
        assert abs(a.final_loss - b.final_loss) < 1e-4, (a.seed, a.final_loss, b.final_loss)
