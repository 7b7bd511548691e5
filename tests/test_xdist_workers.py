"""`-n auto` starts one test process per core this process may use: its CPU set and cgroup quota."""

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location("tinylm_tests_conftest", Path(__file__).parent / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def test_auto_counts_the_cpu_set_and_the_quota_not_the_host(monkeypatch, tmp_path):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(conftest, "CGROUP_CPU_MAX", tmp_path / "absent")
    assert conftest.pytest_xdist_auto_num_workers(None) == 6
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(conftest, "CGROUP_CPU_MAX", quota)
    quota.write_text("250000 100000\n")  # 2.5 cores: two processes
    assert conftest.pytest_xdist_auto_num_workers(None) == 2
    quota.write_text("50000 100000\n")  # half a core: still one
    assert conftest.pytest_xdist_auto_num_workers(None) == 1
    quota.write_text("max 100000\n")
    assert conftest.pytest_xdist_auto_num_workers(None) == 6
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert conftest.pytest_xdist_auto_num_workers(None) == 3
