"""The server's memory tools: library pages are handed back without losing a byte, and only the files asked for."""
from __future__ import annotations

import hashlib
import mmap
import os
import shutil
from pathlib import Path

import pytest

from serving import memory

MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1 /usr/bin/python3.11
7f1000000000-7f1015a45000 r-xp 0c000000 fd:01 2 /venv/site-packages/tensorflow/libtensorflow_cc.so.2
7f1015a45000-7f1016000000 r--p 21a45000 fd:01 2 /venv/site-packages/tensorflow/libtensorflow_cc.so.2
7f1016000000-7f1016100000 rw-p 00000000 00:00 0
7f1017000000-7f1017001000 r--p 00000000 fd:01 3 /data/my tensorflow notes/a file.bin
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_file_mappings_selects_only_the_files_asked_for():
    """Anonymous memory, the stack and other libraries are never advised; paths with spaces still parse."""
    assert memory.file_mappings(MAPS, memory.TENSORFLOW_LIBRARIES) == [
        (0x7F1000000000, 0x7F1015A45000), (0x7F1015A45000, 0x7F1016000000)]
    assert memory.file_mappings(MAPS, "/my tensorflow notes/") == [(0x7F1017000000, 0x7F1017001000)]
    assert memory.file_mappings(MAPS, "/nothing/") == []


@pytest.fixture
def disk_dir():
    """A directory on the repository's disk: /tmp may be tmpfs, whose pages no swap-less kernel can reclaim."""
    path = Path(__file__).resolve().parents[2] / "build" / "test-memory"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def mapping_rss_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path`, from /proc/self/smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):
            inside = line.rstrip().endswith(str(path))
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
def test_page_out_hands_a_mapped_files_pages_back_and_keeps_every_byte(disk_dir):
    """What the server does to TensorFlow's library after loading: RSS drops, the content reads back the same."""
    path = disk_dir / "libfake.so"
    data = hashlib.sha256(b"seed").digest() * (32 * 1024 * 1024 // 32)  # 32 MiB
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # clean pages: the kernel may drop them without writing anything
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        digest = hashlib.sha256(m).hexdigest()  # reads, so faults in, every page
        before = mapping_rss_kib(path)
        assert before > 24 * 1024, before
        if memory.page_out_libraries(str(path)) == 0:
            pytest.skip("this kernel refuses madvise(MADV_PAGEOUT) (Linux < 5.4 or a filtering sandbox)")
        after = mapping_rss_kib(path)
        assert after < before / 4, (before, after)
        assert hashlib.sha256(m).hexdigest() == digest
        assert hashlib.sha256(data).hexdigest() == digest


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc/self/status")
def test_status_fields_read_in_mib_and_only_those_asked_for():
    """What the server's log line and the benchmark's RSS figures read: the named fields, kB turned into MiB."""
    kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in Path("/proc/self/status").read_text().splitlines()
          if ln.startswith(("VmHWM:", "RssAnon:"))}
    got = memory.status_mib("self", ("VmHWM", "RssAnon"))
    assert set(got) == {"VmHWM", "RssAnon"}
    assert got["VmHWM"] >= got["RssAnon"] > 0
    assert got["VmHWM"] == pytest.approx(kb["VmHWM"] / 1024, abs=1.0)  # the peak can only grow between reads
    assert 0 < memory.resident_mib() <= memory.status_mib("self", ("VmHWM",))["VmHWM"]
