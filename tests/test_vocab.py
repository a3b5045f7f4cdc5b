import pytest
import torch

from nextchar.sequence.data import EXAM_MAPPING, exam_data
from nextchar.vocab import Vocab, next_char_pairs


def test_exam_mapping_order_is_kept_not_sorted():
    vocab = Vocab.from_mapping(EXAM_MAPPING)
    assert vocab.chars == ("!", "?", "h", "i", "e", "l", "o")
    assert vocab.mapping == EXAM_MAPPING


def test_from_text_sorts_distinct_characters():
    assert Vocab.from_text("hello").chars == ("e", "h", "l", "o")


def test_encode_decode_round_trip():
    vocab = Vocab.from_mapping(EXAM_MAPPING)
    assert vocab.encode("hi?").tolist() == [2, 3, 1]
    assert vocab.decode(vocab.encode("hello!!")) == "hello!!"


def test_exam_data_shapes_and_one_hot():
    vocab, x, y = exam_data()
    assert x.shape == y.shape == (999, 7) and x.dtype == torch.float32
    assert torch.equal(x[1:], y[:-1])
    assert x[0].argmax().item() == EXAM_MAPPING["h"] and y[0].argmax().item() == EXAM_MAPPING["i"]


def test_unknown_characters_are_named():
    vocab = Vocab.from_text("abc")
    with pytest.raises(ValueError, match=r"\['x', 'y'\]"):
        vocab.encode("axyx")


@pytest.mark.parametrize("text", ["", "a"])
def test_too_short_text_is_rejected(text):
    with pytest.raises(ValueError, match="at least 2 characters"):
        next_char_pairs(text, Vocab.from_text("ab"))


def test_empty_text_cannot_build_a_vocab():
    with pytest.raises(ValueError, match="empty text"):
        Vocab.from_text("")


@pytest.mark.parametrize("mapping", [{"a": 0, "b": 2}, {"a": 1, "b": 2}, {"a": 0, "b": 0}])
def test_mapping_indices_must_be_0_to_v_minus_1(mapping):
    with pytest.raises(ValueError, match="0..1"):
        Vocab.from_mapping(mapping)


def test_multi_character_entries_are_rejected():
    with pytest.raises(ValueError, match="single character"):
        Vocab(("ab", "c"))


def test_decode_out_of_range():
    with pytest.raises(ValueError, match="0..1"):
        Vocab.from_text("ab").decode([0, 5])
