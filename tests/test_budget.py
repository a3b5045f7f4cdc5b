"""The memory budget is the smallest of physical memory, the cgroup's limit and what RLIMIT_AS leaves (issue
29, item 10), and train refuses a text too big to encode before reading it."""
import subprocess
import sys

from click.testing import CliRunner

from nextchar.budget import cgroup_memory, current_limit, physical_memory
from nextchar.cli import main
from tests.helpers import assert_one_error


def test_a_cgroup_v2_limit_is_read_from_the_process_cgroup_and_its_ancestors(tmp_path):
    (tmp_path / "app" / "worker").mkdir(parents=True)
    (tmp_path / "app" / "memory.max").write_text("2147483648\n")
    (tmp_path / "app" / "worker" / "memory.max").write_text("max\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/app/worker\n")
    assert cgroup_memory(tmp_path, membership) == 2**31
    membership.write_text("0::/\n")
    assert cgroup_memory(tmp_path, membership) is None


def test_a_cgroup_v1_limit_and_a_namespaced_mount_are_read(tmp_path):
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("1073741824\n")  # the container's own, as the root
    membership = tmp_path / "cgroup"
    membership.write_text("5:cpu:/\n4:memory:/docker/abc\n0::/\n")
    assert cgroup_memory(tmp_path, membership) == 2**30


def test_the_budget_takes_the_cgroup_limit_when_it_is_below_physical_memory(monkeypatch):
    import nextchar.budget as budget

    monkeypatch.delenv("NEXTCHAR_MEMORY_GB", raising=False)
    monkeypatch.setattr(budget, "cgroup_memory", lambda: 2**30)
    limit = current_limit()
    assert limit.bytes == 2**29 and "cgroup" in limit.why
    monkeypatch.setattr(budget, "cgroup_memory", lambda: physical_memory() * 4)
    assert current_limit().bytes == physical_memory() // 2


def test_ulimit_v_caps_the_budget_at_what_it_leaves():
    """Under ulimit -v the budget read physical RAM only, so it did not protect."""
    script = ("import resource; from nextchar.budget import address_space_left, current_limit\n"
              "mapped = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
              "resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**28, resource.RLIM_INFINITY))\n"
              "limit = current_limit(); print(limit.bytes, limit.why)")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    left, why = out.stdout.split(" ", 1)
    assert 0 < int(left) <= 2**28 and "ulimit -v" in why


def test_train_refuses_a_text_too_big_to_encode_before_reading_it(tmp_path):
    """A 1 GB sparse file reached 2.3 GB of memory before failing; its size is known before reading."""
    sparse = tmp_path / "sparse.txt"
    with sparse.open("wb") as handle:
        handle.truncate(2**40)  # a terabyte of holes: reading it would take hours, refusing takes nothing
    out = CliRunner().invoke(main, ["train", str(sparse), "--out", str(tmp_path / "run"), "--no-progress"])
    assert_one_error(out, "train on a shorter part of it")
    assert "1,099,511,627,776 characters" in out.output and not (tmp_path / "run" / "last.safetensors").exists()


def test_the_python_api_refuses_a_text_beyond_the_budget(tmp_path, monkeypatch):
    import pytest

    from nextchar.budget import MemoryBudgetError
    from nextchar.run.trainer import train

    monkeypatch.setenv("NEXTCHAR_MEMORY_GB", "0.001")
    with pytest.raises(MemoryBudgetError, match="NEXTCHAR_MEMORY_GB"):
        train("ab" * 50_000, {"hidden_size": 4}, {"max_steps": 1}, tmp_path / "run", progress=False)
