"""Atomic output (nemm._io): files are written to the user's path, never destroy what is there,
keep their mode, and a killed writer leaves nothing behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nemm._io as nio
from nemm import Machine, load
from nemm._io import atomic_open

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file semantics")


@pytest.fixture(params=[True, False], ids=["O_TMPFILE", "named-temp"])
def tmpfile_mode(request, monkeypatch):
    """Run a test with unnamed O_TMPFILE files (where the system has them) and with named temps."""
    if request.param and not nio._USE_O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(nio, "_USE_O_TMPFILE", request.param, raising=False)
    return request.param


def small_machine() -> Machine:
    rng = np.random.default_rng(0)
    D, L = 6, 3
    return Machine.from_params(rng.normal(size=(D, L)), np.zeros(D), rng.normal(size=(L, D)), np.zeros(L))


def write(path: Path, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


def test_writes_and_replaces(tmp_path, tmpfile_mode):
    path = tmp_path / "out.bin"
    write(path, b"first")
    write(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    write(tmp_path / "sub" / "dir" / "f.txt", b"x")  # parents are created
    assert (tmp_path / "sub" / "dir" / "f.txt").read_bytes() == b"x"


def test_text_mode(tmp_path, tmpfile_mode):
    with atomic_open(tmp_path / "t.txt", "w") as fh:
        fh.write("héllo\n")
    assert (tmp_path / "t.txt").read_text() == "héllo\n"


def test_symlink_is_kept_and_its_target_updated(tmp_path, tmpfile_mode):
    m = small_machine()
    real = tmp_path / "models" / "real.npz"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    assert m.save(link) == link
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(load(real).w_, m.w_)
    # a chain of links, and a relative one, end at the same file
    link2 = tmp_path / "link2.npz"
    link2.symlink_to("link.npz")
    write(link2, b"via two links")
    assert link2.is_symlink() and link.is_symlink() and real.read_bytes() == b"via two links"
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.npz"]


def test_dangling_symlink_creates_its_target(tmp_path, tmpfile_mode):
    link = tmp_path / "link.bin"
    link.symlink_to(tmp_path / "new.bin")
    write(link, b"data")
    assert link.is_symlink() and (tmp_path / "new.bin").read_bytes() == b"data"


def test_fifo_is_refused_without_blocking(tmp_path, tmpfile_mode):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            small_machine().save(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():  # unblock the writer before failing
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("save blocked on a FIFO")
    assert isinstance(outcome[0], OSError) and "FIFO" in str(outcome[0]), outcome
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.npz"]


def test_device_nodes_are_refused(tmp_path, tmpfile_mode):
    # Through a link to os.devnull: safe to try even where a broken save would replace the
    # target (it would replace the link, never the real device).
    link = tmp_path / "null.npz"
    link.symlink_to(os.devnull)
    devnull_before = os.stat(os.devnull)
    with pytest.raises(OSError, match="character device"):
        small_machine().save(link)
    after = os.stat(os.devnull)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == devnull_before.st_ino
    assert link.is_symlink()
    # A device node of our own, where we may make one.
    node = tmp_path / "dev.npz"
    try:
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        return
    with pytest.raises(OSError, match="character device"):
        write(node, b"data")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_directory_is_refused_before_any_work(tmp_path, tmpfile_mode):
    d = tmp_path / "model.npz"
    d.mkdir()
    (d / "inside").write_bytes(b"keep")
    ran = []
    with pytest.raises(IsADirectoryError, match="is a directory; give a file name"):
        with atomic_open(d) as fh:
            ran.append(True)  # the check comes first: nothing is computed or written
            fh.write(b"x")
    assert not ran
    assert d.is_dir() and (d / "inside").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_existing_mode_is_kept_and_new_files_follow_the_umask(tmp_path, tmpfile_mode):
    m = small_machine()
    private = m.save(tmp_path / "private.npz")
    os.chmod(private, 0o600)
    m.save(private)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    shared = tmp_path / "shared.npz"
    write(shared, b"x")
    os.chmod(shared, 0o664)
    write(shared, b"y")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o664
    old = os.umask(0o027)
    try:
        write(tmp_path / "new.bin", b"z")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o640  # 0o666 & ~0o027, not 0o600


def test_hard_links_are_not_preserved(tmp_path, tmpfile_mode):
    # The documented choice: atomic replacement by rename gives the path a new file; other
    # names of the old file keep the old content.
    path = tmp_path / "a.bin"
    write(path, b"old")
    os.link(path, tmp_path / "b.bin")
    write(path, b"new")
    assert path.read_bytes() == b"new" and (tmp_path / "b.bin").read_bytes() == b"old"
    assert os.stat(path).st_nlink == 1


def test_error_leaves_old_file_and_no_temp(tmp_path, tmpfile_mode):
    path = tmp_path / "f.bin"
    write(path, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(path) as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_stale_temps_of_dead_processes_are_removed(tmp_path, tmpfile_mode):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.npz.nemm-tmp-{dead_pid}-0123456789ab"
    mine = tmp_path / f".m.npz.nemm-tmp-{os.getpid()}-0123456789ab"  # a live writer's: kept
    other = tmp_path / f".other.npz.nemm-tmp-{dead_pid}-0123456789ab"  # another file's: kept
    for p in (stale, mine, other):
        p.write_bytes(b"partial")
    small_machine().save(tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, "m.npz"])


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temp"])
def test_killed_save_loop_leaves_nothing_after_next_save(tmp_path, unnamed):
    if unnamed and not nio._USE_O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import nemm._io as nio
        from nemm import Machine
        nio._USE_O_TMPFILE = sys.argv[2] == "1"
        rng = np.random.default_rng(0)
        D, L = 400, 300  # a ~2 MB file, so that kills land inside writes
        m = Machine.from_params(rng.normal(size=(D, L)), np.zeros(D), rng.normal(size=(L, D)), np.zeros(L))
        print("ready", flush=True)
        while True:
            m.save(sys.argv[1])
        """
    )
    path = tmp_path / "m.npz"
    rng = np.random.default_rng(1)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(path), "1" if unnamed else "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 30
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(float(rng.uniform(0.0, 0.2)))
        finally:  # killed in any case: a failed check must not leave the save loop running
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        load(path)  # whatever was killed, the model file is whole
    small_machine().save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    np.testing.assert_array_equal(load(path).w_, small_machine().w_)


def test_unlinkable_unnamed_file_is_copied_to_a_named_one(tmp_path, monkeypatch):
    # Systems that refuse to link an O_TMPFILE (both /proc/self/fd and AT_EMPTY_PATH) still save,
    # through one copy, and switch to named temporary files afterwards.
    if not nio._USE_O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(nio, "_USE_O_TMPFILE", True)
    monkeypatch.setattr(nio, "_link_unnamed", lambda fd, dst: False)
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    data = bytes(range(256)) * 5000  # more than one copy chunk
    write(path, data)
    assert path.read_bytes() == data and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert nio._USE_O_TMPFILE is False
    write(path, b"again")
    assert path.read_bytes() == b"again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
