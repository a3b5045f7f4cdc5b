"""The built-in corpora: the download of tiny-shakespeare (from a loopback HTTP server: success, a wrong
checksum, a cut connection, no server), its split, and the linux-kernel reader on a small tar.xz."""
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.corpora import (
    DATA_ENV,
    TINY_SHAKESPEARE,
    RemoteText,
    data_folder,
    fetch,
    linux_kernel_corpus,
    load_corpus,
)
from nextchar.data import split_text

SHARED_COPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiny-shakespeare.txt"
BODY = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40).encode()
SMALL = RemoteText("small.txt", "", len(BODY), hashlib.sha256(BODY).hexdigest())


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "whole"
    requests = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.mode == "whole":
            self.wfile.write(BODY)
        elif self.mode == "wrong":
            self.wfile.write(BODY[:-1] + b"?")
        else:  # "cut": half the promised bytes, then the connection closes
            self.wfile.write(BODY[: len(BODY) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A loopback HTTP server for one test; yields (set_mode, url)."""
    handler = type("Handler", (_Handler,), {"mode": "whole", "requests": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def set_mode(mode):
        handler.mode = mode

    try:
        yield set_mode, f"http://127.0.0.1:{httpd.server_port}/input.txt", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_download_is_checked_kept_and_used_again_without_the_network(server, tmp_path):
    _, url, handler = server
    path = fetch(SMALL, tmp_path / "data", url=url)
    assert path == tmp_path / "data" / "small.txt" and path.read_bytes() == BODY
    assert fetch(SMALL, tmp_path / "data", url="http://127.0.0.1:9/nothing") == path  # no request made
    assert handler.requests == 1


@pytest.mark.parametrize("mode", ["wrong", "cut"])
def test_a_wrong_checksum_or_a_cut_connection_leaves_nothing_and_says_where_to_put_the_file(server, tmp_path, mode):
    set_mode, url, _ = server
    set_mode(mode)
    with pytest.raises(ValueError) as error:
        fetch(SMALL, tmp_path, url=url)
    message = str(error.value)
    assert url in message and str(tmp_path) in message and "'small.txt'" in message
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_no_server_is_one_line_naming_the_address_the_folder_and_the_file(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/input.txt"
    with pytest.raises(ValueError, match="could not fetch small.txt") as error:
        fetch(SMALL, tmp_path, url=url, timeout=5)
    assert url in str(error.value) and str(tmp_path) in str(error.value) and "\n" not in str(error.value)


def test_a_damaged_local_copy_is_fetched_again(server, tmp_path):
    _, url, handler = server
    (tmp_path / "small.txt").write_bytes(BODY[:-3])
    assert fetch(SMALL, tmp_path, url=url).read_bytes() == BODY and handler.requests == 1


def test_the_data_folder_is_nextchar_data_else_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_folder() == tmp_path
    monkeypatch.delenv(DATA_ENV)
    assert "nextchar" in str(data_folder())


@pytest.mark.skipif(not SHARED_COPY.is_file(), reason="the tiny-shakespeare copy in ../shared/data is absent")
def test_tiny_shakespeare_is_the_known_file_and_splits_as_nanogpt_does(monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(SHARED_COPY.parent))
    text = load_corpus("tiny-shakespeare")
    assert len(text) == TINY_SHAKESPEARE.size == 1_115_394 and text.startswith("First Citizen:")
    train, val = split_text(text, 0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)  # nanoGPT's int(n * 0.9)
    assert train == text[: int(len(text) * 0.9)]


def _kernel_archive(path: Path) -> Path:
    files = {"kernel/sched/core.c": "int sched;\n", "kernel/fork.c": "int fork;\n", "mm/mmap.c": "int mmap;\n",
             "fs/open.c": "int open;\n", "fs/inode.h": "#define INODE\n", "drivers/x.c": "int driver;\n",
             "kernel/Makefile": "obj-y += fork.o\n", "fs/README": "not C\n", "include/linux/mm.h": "int mm;\n"}
    with tarfile.open(path, "w:xz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"linux-source-6.1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_kernel_corpus_is_the_c_sources_of_kernel_mm_and_fs_in_sorted_order(tmp_path):
    archive = _kernel_archive(tmp_path / "linux.tar.xz")
    # sorted paths: fs/inode.h, fs/open.c, kernel/fork.c, kernel/sched/core.c, mm/mmap.c
    assert linux_kernel_corpus(10_000, archive) == "#define INODE\nint open;\nint fork;\nint sched;\nint mmap;\n"
    assert linux_kernel_corpus(20, archive) == "#define INODE\nint open;\nint fork;\n"[:20]


def test_the_kernel_corpus_is_cut_in_characters_not_bytes(tmp_path):
    """A file of multi-byte characters has fewer characters than bytes: the cut still takes max_bytes
    characters when the archive holds them (counting bytes stopped a file too early)."""
    wide = "/* é */\n" * 4  # 32 characters, 36 bytes
    with tarfile.open(tmp_path / "linux.tar.xz", "w:xz") as tar:
        for name, text in {"fs/a.c": wide, "fs/b.c": "int b;\n"}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"linux-source-6.1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert linux_kernel_corpus(34, tmp_path / "linux.tar.xz") == (wide + "int b;\n")[:34]


def test_a_missing_kernel_package_is_one_line_naming_it(tmp_path):
    with pytest.raises(ValueError, match="apt-get install linux-source-6.1"):
        linux_kernel_corpus(1000, tmp_path / "absent.tar.xz")


def test_train_takes_the_corpus_by_name_and_an_offline_fetch_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr("nextchar.corpora.TINY_SHAKESPEARE", replace(TINY_SHAKESPEARE, url="http://127.0.0.1:9/x.txt"))
    out = CliRunner().invoke(main, ["train", "--corpus", "tiny-shakespeare", "--out", str(tmp_path / "run")])
    assert out.exit_code == 1 and "could not fetch tiny-shakespeare.txt" in out.output
    assert "tiny-shakespeare.txt" in out.output and str(tmp_path / "empty") in out.output
    assert not (tmp_path / "run").exists()
