"""Every position's arrays of an inspection, for a text of any length, streamed to disk chunk by chunk:
straight into ``--npz`` (``npz.NpzWriter``: float32 arrays ``layer0.h``, ``layer0.c``, ``layer0.gate.i``,
..., ``probs``), or into an :class:`ArrayStore` (one ``.npy`` per array in a temporary folder) that
``--json`` (the document with the whole text's arrays) and ``--lstmvis DIR`` (LSTMVis's input: states as
HDF5, the character ids, the dictionary and ``lstm.yml``) read back.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..cells import GATE_NAMES
from ..outputs import OutputError, atomic_file
from .npz import float32_bytes, npy_header
from .trace import Trace

MAX_JSON_CHARACTERS = 100_000
"""--json holds every array as text: past this many characters it would be gigabytes (use --npz)."""


def array_names(family: str, num_layers: int, gate_names: list[str]) -> list[str]:
    """``layer0.h``, (``layer0.c``,) ``layer0.gate.<g>`` ... per layer, then ``probs``."""
    names = []
    for k in range(num_layers):
        names += [f"layer{k}.h", *([f"layer{k}.c"] if family == "lstm" else []),
                  *(f"layer{k}.gate.{g}" for g in gate_names)]
    return [*names, "probs"]


def chunk_arrays(part: Trace) -> dict[str, np.ndarray]:
    """A chunk's trace as the arrays of :func:`array_names` (rows of this chunk)."""
    arrays = {}
    for k, layer in enumerate(part.layers):
        arrays[f"layer{k}.h"] = layer.h.numpy()
        if layer.c is not None:
            arrays[f"layer{k}.c"] = layer.c.numpy()
        arrays.update({f"layer{k}.gate.{g}": v.numpy() for g, v in layer.gates.items()})
    arrays["probs"] = part.probs.numpy()
    return arrays


class ArrayStore:
    """Per array name a float32 ``.npy`` file (length, width) in ``folder``, appended chunk by chunk: memory
    stays that of one chunk however long the text."""

    def __init__(self, folder: str | Path, length: int, widths: dict[str, int]) -> None:
        self.folder, self.length, self.widths, self.written = Path(folder), length, dict(widths), 0
        self.files = {}
        for name, width in widths.items():
            handle = open(self.path(name), "wb")
            handle.write(npy_header(length, width))
            self.files[name] = handle

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        """The next rows of every array (:func:`chunk_arrays`)."""
        for name, values in arrays.items():
            self.files[name].write(float32_bytes(values))
        self.written += len(arrays["probs"])

    def release(self) -> None:
        """Close the files (again: harmless)."""
        for handle in self.files.values():
            handle.close()

    def close(self) -> None:
        """Close the files, which must then hold every position."""
        self.release()
        if self.written != self.length:
            raise RuntimeError(f"inspect: {self.written} of {self.length} positions were stored")

    def load(self, name: str) -> np.ndarray:
        """One array, memory-mapped (read back without loading it all)."""
        return np.load(self.path(name), mmap_mode="r")


def array_widths(config, vocab_size: int) -> dict[str, int]:
    """name -> columns of every array an inspection of a model with ``config`` writes."""
    names = array_names(config.family, config.num_layers, list(GATE_NAMES[config.family]))
    return {name: vocab_size if name == "probs" else config.hidden_size for name in names}


def temporary_folder(beside: str | Path) -> tempfile.TemporaryDirectory:
    """Where the arrays wait before they are packed: beside the output (same disk, so no surprise)."""
    try:
        return tempfile.TemporaryDirectory(prefix=".nextchar-inspect-", dir=Path(beside).parent)
    except OSError as error:
        raise OutputError(f"cannot write beside {str(beside)!r}: {error.strerror or error}") from None


def _rows(array: np.ndarray, step: int = 4096):
    for start in range(0, len(array), step):
        for row in np.round(np.asarray(array[start:start + step], dtype=np.float64), 6).tolist():
            yield json.dumps(row)


def _array(out, array: np.ndarray) -> None:
    out.write("[")
    for i, row in enumerate(_rows(array)):
        out.write(("," if i else "") + row)
    out.write("]")


def check_json_length(length: int) -> None:
    if length > MAX_JSON_CHARACTERS:
        raise ValueError(f"inspect: --json holds at most {MAX_JSON_CHARACTERS} characters of text, got "
                         f"{length}; use --npz for a text this long")


def write_json(document: dict, store: ArrayStore, text: str, path: str | Path) -> Path:
    """The document with every position's arrays (read back from ``store``), streamed to ``path``."""
    check_json_length(len(text))
    header = {**document, "text": text, "start": 0}
    arrays = ("probs", "layers")
    with atomic_file(path) as out:
        out.write("{")
        for key, value in header.items():
            if key not in arrays:
                out.write(f"{json.dumps(key)}: {json.dumps(value, allow_nan=False)}, ")
        out.write('"probs": ')
        _array(out, store.load("probs"))
        out.write(', "layers": [')
        for k, layer in enumerate(document["layers"]):
            out.write(("," if k else "") + '{"h": ')
            _array(out, store.load(f"layer{k}.h"))
            if "c" in layer:
                out.write(', "c": ')
                _array(out, store.load(f"layer{k}.c"))
            out.write(', "gates": {')
            for j, gate in enumerate(layer["gates"]):
                out.write(("," if j else "") + f'"{gate}": ')
                _array(out, store.load(f"layer{k}.gate.{gate}"))
            out.write("}}")
        out.write("]}\n")
    return Path(path)


WHITESPACE_NAMES = {" ": "<space>", "\n": "<newline>", "\t": "<tab>", "\r": "<cr>"}


def _dictionary_label(char: str) -> str:
    """A character as one whitespace-free word of LSTMVis's dictionary (its lines are ``word id``)."""
    return WHITESPACE_NAMES.get(char) or (f"<U+{ord(char):04X}>" if char.isspace() else char)


def require_h5py():
    """h5py, or the one-line error that names the extra to install."""
    try:
        import h5py
    except ImportError:
        raise ValueError("inspect: --lstmvis needs h5py; install the extra: pip install 'nextchar[lstmvis]'") from None
    return h5py


LSTMVIS_FILES = ("states.hdf5", "train.hdf5", "words.dict", "lstm.yml")


def write_lstmvis(document: dict, store: ArrayStore, text: str, folder: str | Path) -> Path:
    """LSTMVis's project folder: ``states.hdf5`` (per layer ``states<k>`` the cell state c of an LSTM, else
    h, and ``output<k>`` the hidden state h; k from 1), ``train.hdf5`` (``words``: the character ids, from
    1), ``words.dict`` (``character id`` per line) and ``lstm.yml``."""
    folder = Path(folder)
    with temporary_folder(folder) as staging:  # all four written, then moved in: never half a project
        try:
            _write_lstmvis_files(document, store, text, Path(staging))
        except OSError as error:  # h5py's disk-full error names no file
            raise OutputError(f"--lstmvis {str(folder)!r}: cannot write LSTMVis's files: "
                              f"{error.strerror or error}") from None
        folder.mkdir(parents=True, exist_ok=True)
        for name in LSTMVIS_FILES:
            os.replace(Path(staging) / name, folder / name)
    return folder


def _write_lstmvis_files(document: dict, store: ArrayStore, text: str, folder: Path) -> None:
    h5py = require_h5py()
    vocab = document["vocab"]
    index = {c: i + 1 for i, c in enumerate(vocab)}
    types = []
    with h5py.File(folder / "states.hdf5", "w") as states:
        for k in range(document["num_layers"]):
            inner = f"layer{k}.c" if document["family"] == "lstm" else f"layer{k}.h"
            states.create_dataset(f"states{k + 1}", data=store.load(inner))
            states.create_dataset(f"output{k + 1}", data=store.load(f"layer{k}.h"))
            types += [f"{{type: state, layer: {k + 1}, path: states{k + 1}}}",
                      f"{{type: output, layer: {k + 1}, path: output{k + 1}}}"]
    with h5py.File(folder / "train.hdf5", "w") as train:
        train.create_dataset("words", data=np.array([index[c] for c in text], dtype=np.int64))
    (folder / "words.dict").write_text("".join(f"{_dictionary_label(c)} {index[c]}\n" for c in vocab), encoding="utf-8")
    name = json.dumps(f"nextchar {document['family']} {document['checkpoint'] or ''}".strip())
    (folder / "lstm.yml").write_text(
        f"name: {name}\ndescription: \"nextchar inspect: {document['family']}, {document['num_layers']} layer(s), "
        f"hidden {document['hidden_size']}, {len(text)} characters\"\n\n"
        "files:\n  states: states.hdf5\n  train: train.hdf5\n  words: words.dict\n\n"
        "word_sequence:\n  file: train\n  path: words\n  dict_file: words\n\n"
        "states:\n  file: states\n  types: [\n    " + ",\n    ".join(types) + "\n  ]\n", encoding="utf-8")
