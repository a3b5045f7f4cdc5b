"""The texts everyone compares on, by name: ``--corpus tiny-shakespeare``, ``linux-kernel``, ``python-stdlib``.

- ``tiny-shakespeare``: karpathy/char-rnn's 1,115,394 characters, downloaded once into the data folder
  (``$NEXTCHAR_DATA``, else the platform's user cache folder) by pooch, which writes a temporary file and
  renames it only once its SHA-256 matches; a file already there with the right size and checksum is used
  without any network. nanoGPT's ``shakespeare_char`` splits it 90% / 10%, as ``--val-fraction 0.1`` does.
- ``linux-kernel``: the C sources of Debian's ``linux-source-6.1`` package (Karpathy et al. 2015 trained
  on the kernel's source): every ``.c`` and ``.h`` file under ``kernel/``, ``mm/`` and ``fs/`` in sorted
  path order, read from the package's tar.xz with the standard library and cut at ``--corpus-bytes``.
- ``python-stdlib``: the standard library's own source, on every machine with Python.
"""
from __future__ import annotations

import hashlib
import os
import sysconfig
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CORPORA = ("tiny-shakespeare", "linux-kernel", "python-stdlib")
CORPUS_BYTES = 1_000_000
"""How much of a cut corpus (linux-kernel, python-stdlib) is used unless asked otherwise (--corpus-bytes)."""
DATA_ENV = "NEXTCHAR_DATA"
"""The environment variable naming the data folder (else the platform's user cache folder)."""


@dataclass(frozen=True)
class RemoteText:
    """A text file with a public address, fetched once and checked by size and SHA-256."""

    file_name: str
    url: str
    size: int
    sha256: str


TINY_SHAKESPEARE = RemoteText(
    file_name="tiny-shakespeare.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    size=1_115_394,
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)
LINUX_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
"""What ``apt-get install linux-source-6.1`` installs (Debian 12)."""
LINUX_FOLDERS = ("kernel/", "mm/", "fs/")


def data_folder() -> Path:
    """``$NEXTCHAR_DATA``, else the platform's user cache folder for nextchar."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nextchar"))


def _matches(path: Path, remote: RemoteText) -> bool:
    if not path.is_file() or path.stat().st_size != remote.size:
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == remote.sha256


def fetch(remote: RemoteText, folder: str | Path | None = None, url: str | None = None,
          timeout: float = 30.0) -> Path:
    """The local copy of ``remote`` in ``folder`` (default :func:`data_folder`), downloaded from ``url``
    (default its public address) when absent or wrong. Offline, cut off or a bad checksum: one ValueError
    naming the address, the folder and the file name to put there; nothing is left half-written."""
    folder = Path(folder) if folder is not None else data_folder()
    path = folder / remote.file_name
    if _matches(path, remote):  # no network at all
        return path
    url = url or remote.url
    import pooch
    import requests

    try:
        pooch.retrieve(url, known_hash=f"sha256:{remote.sha256}", fname=remote.file_name, path=folder,
                       downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=False))
    except (requests.RequestException, ValueError, OSError) as error:
        reason = "no connection to its server" if isinstance(error, requests.ConnectionError) else _reason(error)
        raise ValueError(f"data: could not fetch {remote.file_name} from {url} ({reason}); download it "
                         f"by hand and put it in {str(folder)!r} as {remote.file_name!r} (or point {DATA_ENV} at the "
                         "folder that holds it)") from None
    if not _matches(path, remote):  # pooch checked the hash; the size is checked here too
        raise ValueError(f"data: {str(path)!r} is not the expected {remote.size:,}-byte {remote.file_name}; "
                         f"replace it with the file from {url}")
    return path


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "hash" in text.lower():
        return "its SHA-256 is not the expected one"
    return text[:160]


def tiny_shakespeare(folder: str | Path | None = None, url: str | None = None) -> str:
    """The 1,115,394 characters of tiny-shakespeare (fetched on first use)."""
    return fetch(TINY_SHAKESPEARE, folder, url).read_text(encoding="utf-8")


def linux_kernel_corpus(max_bytes: int = CORPUS_BYTES, archive: str | Path = LINUX_SOURCE) -> str:
    """Every ``.c`` and ``.h`` file under ``kernel/``, ``mm/`` and ``fs/`` of the kernel source archive, in
    sorted path order, concatenated and cut at ``max_bytes`` characters. A tar.xz can only be read front to
    back, so one pass keeps the bytes of every matching file (~80 MB for 6.1) and the sort comes after."""
    archive = Path(archive)
    if not archive.is_file():
        raise ValueError(f"data: the linux-kernel corpus reads {str(archive)!r}, which is missing; install it with "
                         "'apt-get install linux-source-6.1' (Debian 12)")
    with tarfile.open(archive, "r:*") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile() and _is_kernel_source(m.name)}
    corpus = _joined_until((files[name].decode("utf-8", errors="replace") for name in sorted(files)), max_bytes)
    if not corpus:
        raise ValueError(f"data: {str(archive)!r} holds no .c or .h file under {', '.join(LINUX_FOLDERS)}")
    return corpus


def _is_kernel_source(name: str) -> bool:
    """``linux-source-6.1/kernel/fork.c`` and the like: below the archive's top folder."""
    _, _, inside = name.partition("/")
    return inside.startswith(LINUX_FOLDERS) and inside.endswith((".c", ".h"))


def python_stdlib_corpus(max_bytes: int = CORPUS_BYTES) -> str:
    """The Python standard library's own source: its top-level ``*.py`` files in sorted name order, then
    those one package level down, each preceded by a ``# file: NAME`` line, cut at ``max_bytes`` characters.

    Deterministic for a given Python version; tests, ``test``-named and site-packages folders are skipped.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    top = sorted(root.glob("*.py"))
    nested = sorted(p for p in root.glob("*/*.py")
                    if not any(part.startswith(("test", "site-packages", "idle"))
                               for part in p.relative_to(root).parts))
    pieces = (f"# file: {path.relative_to(root).as_posix()}\n{path.read_text(encoding='utf-8', errors='replace')}\n"
              for path in top + nested)
    corpus = _joined_until(pieces, max_bytes)
    if not corpus:
        raise ValueError(f"data: found no Python sources under {str(root)!r}")
    return corpus


def _joined_until(pieces: Iterable[str], max_chars: int) -> str:
    """The pieces in order, joined and cut at ``max_chars`` characters; no piece past the one that reaches
    the cut is read (each is a file)."""
    taken, size = [], 0
    for piece in pieces:
        taken.append(piece)
        size += len(piece)
        if size >= max_chars:
            break
    return "".join(taken)[:max_chars]


def load_corpus(name: str, max_bytes: int = CORPUS_BYTES) -> str:
    """A built-in corpus by name; ``max_bytes`` cuts linux-kernel and python-stdlib (tiny-shakespeare is
    always whole, so its split is nanoGPT's)."""
    if name == "tiny-shakespeare":
        return tiny_shakespeare()
    if name == "linux-kernel":
        return linux_kernel_corpus(max_bytes)
    if name == "python-stdlib":
        return python_stdlib_corpus(max_bytes)
    raise ValueError(f"data: corpus must be one of {CORPORA}, got {name!r}")
