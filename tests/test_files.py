"""files.exclusive: one process at a time may hold a folder; the hold ends with the block or the process,
and leaves nothing behind in the folder."""

import errno
import os
import subprocess
import sys

import pytest

from lifelong import files
from lifelong.errors import ConfigError, FolderBusy
from lifelong.files import exclusive

HOLD = """
import sys, time
from lifelong.files import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    with exclusive(tmp_path):
        with pytest.raises(FolderBusy, match=f"another lifelong process is writing to {tmp_path}"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # free again
        pass
    with pytest.raises(RuntimeError):
        with exclusive(tmp_path):
            raise RuntimeError("the block failed")
    with exclusive(tmp_path):  # an error in the block frees it too
        pass
    assert not any(tmp_path.iterdir())
    assert issubclass(FolderBusy, ConfigError)  # the CLI prints it on one line and exits 2


def test_another_process_holds_it_until_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy):
            with exclusive(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive(tmp_path):  # a killed holder frees the folder at once, with no stale lock to clean up
        pass
    assert not any(tmp_path.iterdir())


def test_a_file_system_that_cannot_lock_warns_and_runs_unlocked(tmp_path, monkeypatch):
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(files.fcntl, "flock", refuse)
    ran = []
    with pytest.warns(UserWarning, match=f"cannot lock {tmp_path} .*no other lifelong process writes there"):
        with exclusive(tmp_path):
            ran.append(1)
    assert ran == [1]


def test_without_fcntl_the_block_runs_unlocked(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "fcntl", None)  # Windows
    with exclusive(tmp_path), exclusive(tmp_path):
        pass
