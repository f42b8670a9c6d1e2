"""Atomic file output: every file nemm writes appears whole or not at all, at the user's path.

Guarantees of :func:`atomic_open` (Linux and other POSIX systems):

- The data go *to* the path the user named: a symlink is followed and its final target is
  replaced, the link itself is kept.
- Only regular files are ever replaced. A directory, FIFO, socket or device node at the path
  is refused with an ``OSError`` before anything is written (and without opening it, so a
  FIFO never blocks).
- An existing file keeps its permission bits (and, where allowed, its owner and group); a
  new file gets the ordinary ``0o666 & ~umask``.
- Readers see the old file or the new one, never a mix: the new file is written beside the
  target, fsynced, renamed over it, and the directory is fsynced.
- Hard links are *not* preserved: the rename gives the path a new inode, so other names of
  the old file keep the old content. This is the price of atomicity (writing in place could
  leave a torn file after a crash).
- A killed writer leaves nothing behind. On Linux the data are written to an unnamed
  ``O_TMPFILE`` that vanishes with the process; it gets a name only for the instant between
  ``linkat`` and ``rename``. Elsewhere, or on file systems without ``O_TMPFILE``, the
  temporary name is ``.{name}.nemm-tmp-{pid}-{random}``; every later save to the same path
  removes such files whose process ``pid`` no longer runs (a temp file whose pid was reused
  by a live process stays until that process ends). Where the system refuses to link an
  unnamed file (``/proc/self/fd`` and ``AT_EMPTY_PATH`` both fail), its bytes are copied to
  such a named file once and later saves use named files directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "writable_target", "check_readable"]

_TMP_TAG = ".nemm-tmp-"
# Whether to try O_TMPFILE at all (tests switch it off to exercise the named fallback).
_USE_O_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def writable_target(path: str | os.PathLike[str]) -> tuple[Path, os.stat_result | None]:
    """The file that writing to ``path`` will replace, and its current status (None if new).

    Symlinks are resolved (a dangling link resolves to the file it names, which is then
    created). Nothing is opened, so a FIFO never blocks.

    Raises
    ------
    IsADirectoryError
        If the path is a directory.
    OSError
        If the path is any other non-regular file (FIFO, device node, socket), or a parent
        is not a directory.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        shown = str(path) if Path(path) == target else f"{path} (-> {target})"
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(
                errno.EISDIR, f"refusing to write: {shown} is a directory; give a file name"
            )
        raise OSError(
            errno.EINVAL,
            f"refusing to write: {shown} is {kind}, not a regular file; nemm only replaces regular files",
        )
    return target, st


def check_readable(path: str | os.PathLike[str]) -> None:
    """Refuse, before opening it, an input that is a FIFO, a device node or a socket.

    Every reader of model files, data files and configurations calls this first: opening a
    FIFO for reading blocks until some writer comes, perhaps for good, and a device or socket
    is no file of nemm's either. The path is only stat-ed (symlinks followed), never opened. A
    missing path or a directory passes: the caller reports it in its own words (or reads the
    directory, where it takes one).

    Raises
    ------
    OSError
        If ``path`` is a FIFO, device node or socket.
    """
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return
    kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
    raise OSError(errno.EINVAL, f"refusing to read {os.fspath(path)}: it is {kind}, not a regular file")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Remove ``.{name}.nemm-tmp-{pid}-*`` files beside ``target`` left by processes that died."""
    pattern = re.compile(re.escape(f".{target.name}{_TMP_TAG}") + r"(\d+)-[0-9a-f]+\Z")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / name)


def _temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}{_TMP_TAG}{os.getpid()}-{secrets.token_hex(6)}"


def _open_unnamed(directory: Path, mode: int) -> int | None:
    """An O_TMPFILE descriptor in ``directory``, or None where the file system lacks it."""
    if not _USE_O_TMPFILE:
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def _link_unnamed(fd: int, dst: Path) -> bool:
    """Give the O_TMPFILE file ``fd`` the name ``dst`` (linkat); False where the system refuses.

    The portable way goes through ``/proc/self/fd``; some kernels and sandboxes refuse it
    (EXDEV), and then ``linkat(fd, "", ..., AT_EMPTY_PATH)`` may work (it needs privileges).
    """
    try:
        os.link(f"/proc/self/fd/{fd}", dst, follow_symlinks=True)
        return True
    except OSError:
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, at_empty_path = -100, 0x1000
        return libc.linkat(fd, b"", at_fdcwd, os.fsencode(dst), at_empty_path) == 0
    except (OSError, AttributeError):
        return False


def _fsync_dir(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        with contextlib.suppress(OSError):  # e.g. EINVAL on file systems without directory fsync
            os.fsync(fd)
    finally:
        os.close(fd)


def _copy_to_named(fd: int, dst: Path) -> None:
    """Where no unnamed file can be linked: copy it into a named temporary file, and stop trying."""
    global _USE_O_TMPFILE
    _USE_O_TMPFILE = False
    st = os.fstat(fd)
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(PermissionError):
            os.fchown(out, st.st_uid, st.st_gid)
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
        os.fsync(out)
    finally:
        os.close(out)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a new file that replaces ``path`` (or its symlink target) when the block succeeds.

    See the module docstring for the guarantees. On any error, the old file is left as it
    was and no temporary file remains.

    Parameters
    ----------
    path : path-like
        Where to write. Missing parent directories are created.
    mode : str
        ``"wb"`` or ``"w"`` (anything :func:`os.fdopen` takes for writing).

    Raises
    ------
    IsADirectoryError, OSError
        If ``path`` is a directory or another non-regular file (see :func:`writable_target`).
    """
    target, st = writable_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    # A new file: 0o666 and the kernel applies the umask. An existing one: start private and
    # copy its mode below, so a 0600 model never passes through a readable state.
    create_mode = 0o666 if st is None else 0o600
    fd = _open_unnamed(target.parent, create_mode)
    tmp: Path | None = None
    if fd is None:
        tmp = _temp_name(target)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), create_mode)
    try:
        if st is not None:
            if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):  # only root may give files away
                    os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        with os.fdopen(fd, mode, closefd=False) as fh:
            yield fh
            fh.flush()
        os.fsync(fd)
        if tmp is None:  # give the unnamed file a (fresh, unique) name, then rename it over
            tmp = _temp_name(target)
            if not _link_unnamed(fd, tmp):
                _copy_to_named(fd, tmp)
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    finally:
        os.close(fd)
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
