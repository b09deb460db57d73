"""Secret files (credentials, password files, keys) written private from their first byte.

`write_private` creates a temporary file beside the target with mkstemp (mode 0600 at
creation, O_EXCL, so no other file and no symlink is ever written through), sets the final
mode on the open descriptor before any byte is written, fsyncs and renames it over the
target: there is no moment at which the secret sits in a file others can read, and a crash
never leaves half a file. `private_dir` makes (or tightens) a folder to 0700.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: str | Path) -> Path:
    """The folder, created 0700 (parents as usual), or an existing one tightened to 0700."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        p.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if not p.is_dir():
            raise
    os.chmod(p, PRIVATE_DIR)  # the umask (or an older set-up) must not loosen it
    return p


def write_private(path: str | Path, data: bytes | str, mode: int = PRIVATE) -> Path:
    """Write `data` atomically with `mode` (0600 unless a public file is asked for)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".partial")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def copy_private(src: str | Path, dst: str | Path, mode: int = PRIVATE) -> Path:
    """Copy a secret file (shutil.copy2 creates the copy with the umask's mode first)."""
    return write_private(dst, Path(src).read_bytes(), mode)
