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
