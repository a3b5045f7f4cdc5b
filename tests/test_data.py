"""Text files, the python-stdlib corpus, parallel streams and their windows."""
import pytest
import torch

from nextchar.corpora import python_stdlib_corpus
from nextchar.data import batchify, read_text_file, window


@pytest.mark.parametrize("content,match", [(b"", "is empty"), (b"\xff\xfe\x00binary", "not UTF-8")])
def test_bad_text_files(tmp_path, content, match):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_text_file(path)


def test_windows_are_contiguous_per_stream():
    streams = batchify(torch.arange(100), 4, 5)  # (25, 4): stream b is 25b .. 25b+24
    x0, y0 = window(streams, 0, 5)
    x1, _ = window(streams, 1, 5)
    assert streams[:, 1].tolist() == list(range(25, 50))
    assert torch.equal(y0, x0 + 1) and torch.equal(x1[0], x0[-1] + 1)


def test_stdlib_corpus_is_deterministic_python():
    corpus = python_stdlib_corpus(50_000)
    assert len(corpus) == 50_000 and corpus == python_stdlib_corpus(50_000)
    assert corpus.startswith("# file: ") and "def " in corpus and "import " in corpus
