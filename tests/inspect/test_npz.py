"""The one-pass npz writer: numpy.load and zipfile read what it writes, rows arriving in blocks, CRCs right."""
import zipfile

import numpy as np
import pytest

from nextchar.inspect.npz import NpzWriter


def test_arrays_written_in_blocks_read_back_with_numpy_and_pass_zipfiles_crc_check(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"layer0.h": rng.random((1000, 7), dtype=np.float32), "layer0.gate.i": rng.random((1000, 3)),
              "probs": rng.random((1000, 1), dtype=np.float32)}
    path = tmp_path / "a.npz"
    with open(path, "wb") as handle:
        writer = NpzWriter(handle, 1000, {name: a.shape[1] for name, a in arrays.items()})
        for start in range(0, 1000, 333):
            writer.append({name: a[start:start + 333] for name, a in arrays.items()})
        writer.finish()
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC-32 matches its bytes
        assert archive.namelist() == ["layer0.h.npy", "layer0.gate.i.npy", "probs.npy"]
    loaded = np.load(path)
    for name, a in arrays.items():
        assert loaded[name].dtype == np.float32 and np.array_equal(loaded[name], a.astype(np.float32))


def test_finishing_before_every_row_arrived_is_an_error(tmp_path):
    with open(tmp_path / "a.npz", "wb") as handle:
        writer = NpzWriter(handle, 10, {"x": 2})
        writer.append({"x": np.zeros((4, 2))})
        with pytest.raises(RuntimeError, match=r"arrays \['x.npy'\] did not get all 10 rows"):
            writer.finish()
