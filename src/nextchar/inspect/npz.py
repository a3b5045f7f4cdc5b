"""An uncompressed ``.npz`` written in one pass while the trace runs, for a text of any length.

An ``.npz`` is a zip of ``.npy`` files, and ``zipfile`` writes one member at a time; the trace produces
every array a chunk at a time. Since the text's length is known before the trace starts, each array's
place in the file is known too, so each chunk of each array is written straight to its place and the
zip's headers (with each member's CRC-32) are written at the end: the arrays reach the disk once, with
no temporary copy (at 1 MB of text and hidden 256 they are 6 GB). The layout is the zip format's
(PKWARE's APPNOTE: stored members, ZIP64 sizes and offsets), which ``numpy.load`` and ``zipfile`` read.
"""
from __future__ import annotations

import io
import struct
import time
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

ZIP64_EXTRA, ZIP64_VERSION, FULL = 0x0001, 45, 0xFFFFFFFF


@dataclass
class _Member:
    name: bytes
    offset: int
    """Where its local header starts."""
    data: int
    """Where its bytes (the .npy header, then the rows) start."""
    size: int
    crc: int
    written: int


def npy_header(rows: int, width: int) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (rows, width)})
    return buffer.getvalue()


def float32_bytes(values) -> memoryview:
    """An array's values as contiguous little-endian float32 bytes, without a copy where they already are."""
    return memoryview(np.ascontiguousarray(values, dtype="<f4")).cast("B")


def _local_header(member: _Member, dos_time: int, dos_date: int) -> bytes:
    extra = struct.pack("<HHQQ", ZIP64_EXTRA, 16, member.size, member.size)
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, ZIP64_VERSION, 0, 0, dos_time, dos_date, member.crc, FULL, FULL,
                       len(member.name), len(extra)) + member.name + extra


def _central_header(member: _Member, dos_time: int, dos_date: int) -> bytes:
    extra = struct.pack("<HHQQQ", ZIP64_EXTRA, 24, member.size, member.size, member.offset)
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, ZIP64_VERSION, ZIP64_VERSION, 0, 0, dos_time, dos_date,
                       member.crc, FULL, FULL, len(member.name), len(extra), 0, 0, 0, 0o644 << 16,
                       FULL) + member.name + extra


class NpzWriter:
    """float32 arrays (rows, width) per name, filled a block of rows at a time in row order, into the
    seekable binary ``handle``; :meth:`finish` writes the zip's headers once every row is there."""

    def __init__(self, handle: BinaryIO, rows: int, widths: dict[str, int]) -> None:
        self.handle, self.rows, self.members = handle, rows, {}
        offset = 0
        for name, width in widths.items():
            filename, header = f"{name}.npy".encode(), npy_header(rows, width)
            data = offset + 30 + len(filename) + 20  # after the local header and its ZIP64 field
            member = _Member(filename, offset, data, len(header) + rows * width * 4, zlib.crc32(header), len(header))
            handle.seek(data)
            handle.write(header)
            self.members[name] = member
            offset = data + member.size
        self.end = offset

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        """The next rows of each array (every array must get the same rows, in order)."""
        for name, values in arrays.items():
            member = self.members[name]
            block = float32_bytes(values)
            self.handle.seek(member.data + member.written)
            self.handle.write(block)
            member.crc = zlib.crc32(block, member.crc)
            member.written += block.nbytes

    def finish(self) -> None:
        short = [m.name.decode() for m in self.members.values() if m.written != m.size]
        if short:
            raise RuntimeError(f"npz: arrays {short} did not get all {self.rows} rows")
        now = time.localtime()
        dos_time = (now.tm_hour << 11) | (now.tm_min << 5) | (now.tm_sec // 2)
        dos_date = ((max(now.tm_year, 1980) - 1980) << 9) | (now.tm_mon << 5) | now.tm_mday
        for member in self.members.values():
            self.handle.seek(member.offset)
            self.handle.write(_local_header(member, dos_time, dos_date))
        self.handle.seek(self.end)
        directory = b"".join(_central_header(m, dos_time, dos_date) for m in self.members.values())
        count = len(self.members)
        zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, ZIP64_VERSION, ZIP64_VERSION, 0, 0, count, count,
                                len(directory), self.end)
        locator = struct.pack("<IIQI", 0x07064B50, 0, self.end + len(directory), 1)
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, FULL, FULL, 0)
        self.handle.write(directory + zip64_end + locator + end)
