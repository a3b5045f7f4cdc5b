"""Generation: seeded, greedy is the argmax, the state is carried like one pass, bad prompts are named."""
import pytest

from nextchar.data import read_text_file
from nextchar.generate import generate, predict
from nextchar.run.trainer import train
from tests.helpers import FIXTURE, SMALL_24, train_config
from tests.helpers import train_small as _train


def test_generation_is_deterministic_for_a_seed_and_greedy_is_argmax(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=20), tmp_path, progress=False)
    model, vocab = result.model, result.vocab
    a = generate(model, vocab, "def ", 40, seed=3)
    assert a == generate(model, vocab, "def ", 40, seed=3) and a[:4] == "def " and len(a) == 44
    assert a != generate(model, vocab, "def ", 40, seed=4) and not vocab.unknown(a[4:])  # the seed picks the sample
    assert generate(model, vocab, "def ", 40, seed=4, top_k=1) == generate(model, vocab, "def ", 40, greedy=True)
    greedy = generate(model, vocab, "def ", 5, greedy=True)
    probs = predict(model, vocab, greedy[:-1])
    assert vocab.decode(probs.argmax(-1))[3:] == greedy[4:]


def test_generation_carries_state_like_one_pass(tmp_path):
    """Character-by-character generation with the carried state equals re-reading the whole text."""
    result = train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=4), tmp_path, progress=False)
    text = generate(result.model, result.vocab, "for ", 10, greedy=True)
    probs = predict(result.model, result.vocab, text[:-1])
    assert result.vocab.decode(probs[3:].argmax(-1)) == text[4:]


def test_prompt_with_unknown_characters_is_named(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"\['Z', '€'\]"):
        generate(result.model, result.vocab, "Z€Z", 5)


def test_a_tiny_temperature_is_greedy_not_nan(tmp_path):
    result = _train(tmp_path, max_steps=2, eval_every=2)
    sample = generate(result.model, result.vocab, "def ", 10, temperature=1e-310, seed=0)
    assert sample == generate(result.model, result.vocab, "def ", 10, greedy=True)


def _tiny(tmp_path, **options):
    from tests.helpers import model_checkpoint

    return model_checkpoint(tmp_path / "m.safetensors", **{"hidden_size": 6, "seed": 2, **options})


def test_many_samples_are_independent_streams_with_their_log_probabilities(tmp_path, monkeypatch):
    import nextchar.generate as generation
    from nextchar.generate import logprob_of, sample, sample_many

    model, vocab = _tiny(tmp_path, family="gru")
    samples = sample_many(model, vocab, "hi", 40, 5, temperature=1.3, seed=7)
    assert len({s.text for s in samples}) > 1 and all(len(s.text) == 40 for s in samples)
    for s in samples:  # each logprob is the model's own, recomputed in one pass over prompt + sample
        assert s.logprob == pytest.approx(logprob_of(model, vocab, "hi", s.text), rel=1e-6)  # float32 logits
    assert samples[0].text == "".join(sample(model, vocab, "hi", 40, temperature=1.3, seed=7))  # stream 0 = seed
    monkeypatch.setattr(generation, "SAMPLE_BATCH", 2)  # batches of 2 draw the same samples
    assert [s.text for s in sample_many(model, vocab, "hi", 40, 5, temperature=1.3,
                                        seed=7)] == [s.text for s in samples]


def test_a_sample_stops_at_the_first_stop_string(tmp_path):
    from nextchar.generate import sample, sample_many

    model, vocab = _tiny(tmp_path)
    for s in sample_many(model, vocab, "h", 300, 6, temperature=2.0, seed=1, stop="e"):
        assert s.text.count("e") <= 1 and (s.text.endswith("e") or len(s.text) == 300)
    streamed = "".join(sample(model, vocab, "h", 300, temperature=2.0, seed=1, stop="e"))
    assert streamed.endswith("e") and streamed.count("e") == 1


def test_beam_search_is_never_below_greedy_and_exhaustive_when_it_can_be(tmp_path):
    import itertools

    from nextchar.generate import beam_search, logprob_of, sample_many

    for family in ("rnn", "lstm", "gru"):
        model, vocab = _tiny(tmp_path, family=family)
        greedy = sample_many(model, vocab, "hi", 12, 1, greedy=True)[0]
        for beam in (1, 2, 5):
            best = beam_search(model, vocab, "hi", 12, beam)
            assert best.logprob >= greedy.logprob - 1e-12
            assert best.logprob == pytest.approx(logprob_of(model, vocab, "hi", best.text), rel=1e-6)
            assert beam_search(model, vocab, "hi", 12, beam) == best  # deterministic
    model, vocab = _tiny(tmp_path, text="abc", hidden_size=3)
    length = 4
    every = max(("".join(s) for s in itertools.product(vocab.chars, repeat=length)),
                key=lambda s: logprob_of(model, vocab, "a", s))
    found = beam_search(model, vocab, "a", length, beam=len(vocab) ** (length - 1))
    assert found.text == every and found.logprob == pytest.approx(logprob_of(model, vocab, "a", every), rel=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda m, v: __import__("nextchar.generate").generate.sample_many(m, v, "hi", 5, 0), "--num-samples must be"),
    (lambda m, v: __import__("nextchar.generate").generate.sample_many(m, v, "hi", 5, 10**9), "--num-samples must be"),
    (lambda m, v: __import__("nextchar.generate").generate.beam_search(m, v, "hi", 5, 0), "--beam must be"),
    (lambda m, v: __import__("nextchar.generate").generate.sample_many(m, v, "hé", 5, 2), "not in the model's"),
    (lambda m, v: __import__("nextchar.generate").generate.sample_many(m, v, "hi", 5, 2, stop=""), "stop string"),
])
def test_bad_generation_arguments_are_named_before_any_work(tmp_path, call, message):
    model, vocab = _tiny(tmp_path)
    with pytest.raises(ValueError, match=message):
        call(model, vocab)


def _nucleus_by_hand(logits, temperature, top_k, top_p):
    """Nucleus sampling's distribution computed directly, one character at a time in plain Python."""
    import math

    values = [v / temperature for v in logits]
    if top_k is not None:
        kth = sorted(values, reverse=True)[top_k - 1]
        values = [v if v >= kth else -math.inf for v in values]
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    probs = [w / sum(weights) for w in weights]
    kept, mass = [0.0] * len(probs), 0.0
    for i in sorted(range(len(probs)), key=lambda i: (-probs[i], i)):
        if mass >= top_p:
            break
        kept[i], mass = probs[i], mass + probs[i]
    return [k / sum(kept) for k in kept]


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, 0.5), (0.7, None, 0.9), (1.3, 4, 0.8),
                                                        (1.0, None, 1.0), (1.0, None, 1e-9)])
def test_top_p_keeps_the_nucleus_as_a_direct_computation_does(temperature, top_k, top_p):
    import torch

    from nextchar.generate import Sampling

    logits = torch.tensor([2.0, -1.0, 0.5, 3.1, 0.5, -4.0, 1.7, 0.0])
    got = Sampling(temperature, top_k, top_p).distribution(logits)
    want = _nucleus_by_hand(logits.double().tolist(), temperature, top_k, top_p)
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert (got > 0).sum() >= 1 and got.sum().item() == pytest.approx(1.0)


def test_top_p_draws_only_from_the_nucleus_one_sample_or_a_batch(tmp_path):
    import torch

    from nextchar.generate import Sampling, prompt_indices, sample, sample_many

    model, vocab = _tiny(tmp_path, family="lstm")
    text = "".join(sample(model, vocab, "hi", 60, temperature=1.5, top_p=0.6, seed=1))
    many = sample_many(model, vocab, "hi", 60, 3, temperature=1.5, top_p=0.6, seed=1)
    assert many[0].text == text  # sample 0 of a batch is the single sample of that seed
    for s in many:  # every character was inside its step's nucleus
        logits = model(prompt_indices(vocab, "hi" + s.text, "t"))[0].detach()
        for t, char in enumerate(s.text):
            allowed = Sampling(1.5, None, 0.6).distribution(logits[1 + t]) > 0
            assert allowed[vocab.encode(char)[0]], (s.text, t)
    assert torch.equal(Sampling(top_p=1e-9).distribution(logits[0]) > 0, torch.nn.functional.one_hot(
        logits[0].argmax(), len(vocab)).bool())


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_a_top_p_outside_0_to_1_is_refused_before_any_work(tmp_path, value):
    from click.testing import CliRunner

    from nextchar.cli import main

    _tiny(tmp_path)
    out = CliRunner().invoke(main, ["generate", str(tmp_path / "m.safetensors"), "--top-p", value])
    assert out.exit_code == 2 and "--top-p" in out.output
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        __import__("nextchar.generate").generate.Sampling(top_p=float(value)).check()


@pytest.mark.parametrize("value", ["-inf", "1e308", "nan", "inf", "11"])
def test_a_length_penalty_outside_a_finite_range_is_one_line_before_any_work(tmp_path, value):
    """-inf and 1e308 gave tracebacks, nan and inf ranked beams by NaN and then failed to write --json after
    printing (issue 29, item 6)."""
    from click.testing import CliRunner

    from nextchar.cli import main

    _tiny(tmp_path)
    out = CliRunner().invoke(main, ["generate", str(tmp_path / "m.safetensors"), "--beam", "3", "--length", "5",
                                    "--length-penalty", value, "--json", str(tmp_path / "s.json")])
    assert out.exit_code == 1 and "--length-penalty must be a finite number in [-10, 10]" in out.output
    assert "Traceback" not in out.output and not (tmp_path / "s.json").exists()
    ok = CliRunner().invoke(main, ["generate", str(tmp_path / "m.safetensors"), "--beam", "3", "--length", "5",
                                   "--length-penalty", "-2.5"])
    assert ok.exit_code == 0, ok.output
