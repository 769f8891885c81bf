"""The paths a command reads and writes, checked before any work starts.

Every command calls :func:`check_paths` first, so a bad path costs nothing: an
output that is one of the inputs (after symbolic links, or the same file under
another name), two outputs naming one file, an existing output that is not a
regular file (a folder, a FIFO, ``/dev/null``), or an output whose folder
cannot be written (a file in the way, ``/proc``, no permission) is refused in
one line naming the option and the path (the CLI exits with code 2). Inputs
that are not regular files are reported as what they are (see the README,
"What is safe").
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Union

from comllm.errors import ComllmError

PathLike = Union[str, "os.PathLike[str]"]
PathArg = Union[PathLike, Iterable[PathLike], None]


class PathError(ComllmError, ValueError):
    """An input or output path that a command cannot use; the message names the option and the path."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def input_problem(path: PathLike, folder: bool = False) -> str | None:
    """Why ``path`` cannot be read as an input file (or folder), as the end of a sentence; ``None`` if it can.

    ``"does not exist"``, ``"is a folder, not a file"``, ``"is a character device, not a regular file"``...
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return "is a broken symbolic link" if p.is_symlink() else "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of the path is a file)"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if folder:
        if stat.S_ISDIR(st.st_mode):
            return None
        return f"is {'a file' if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)}, not a folder"
    if stat.S_ISREG(st.st_mode):
        return None if os.access(p, os.R_OK) else "cannot be read (permission denied)"
    kind = _kind(st.st_mode)
    return f"is {kind}, not a file" if kind == "a folder" else f"is {kind}, not a regular file"


def check_input(option: str, path: PathArg, folder: bool = False) -> None:
    """Raise :class:`PathError` if a path given by ``option`` is not a readable file (a folder if ``folder``)."""
    for p in _items(path):
        problem = input_problem(p, folder)
        if problem:
            raise PathError(f"{option} '{p}' {problem}")


def _items(arg: PathArg) -> list[Path]:
    if arg is None:
        return []
    if isinstance(arg, (str, os.PathLike)):
        return [Path(arg)] if str(arg) != "" else [Path("")]
    return [Path(a) for a in arg if a is not None]


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # also hard links and bind mounts
    except OSError:
        pass
    return os.path.abspath(os.path.realpath(a)) == os.path.abspath(os.path.realpath(b))


def _probe_folder(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (an existing folder); ``None`` if it can."""
    try:
        fd, name = tempfile.mkstemp(prefix=".comllm-probe-", dir=folder)
    except OSError as err:
        return err.strerror or str(err)
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return None


def _output_problem(path: Path, folder: bool) -> str | None:
    if str(path) in ("", "."):
        if not folder:
            return "is empty, not a file name" if str(path) == "" else "is a folder, not a file"
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    except OSError as err:
        return f"cannot be used ({err.strerror or err})"
    if st is not None:
        if folder:
            if not stat.S_ISDIR(st.st_mode):
                kind = "a file" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
                return f"is {kind}, not a folder"
            why = _probe_folder(path)
            return None if why is None else f"cannot be written ({why})"
        if not stat.S_ISREG(st.st_mode):
            kind = _kind(st.st_mode)
            return f"is {kind}, not a regular file: refusing to write over it"
        if not os.access(path, os.W_OK):
            return "is not writable (permission denied)"
    # the nearest existing folder above: files and folders are created under it
    parent = path.absolute().parent
    while True:
        try:
            pst = parent.stat()
            break
        except FileNotFoundError:
            if parent.is_symlink():
                return f"cannot be created: '{parent}' is a broken symbolic link"
            parent = parent.parent
        except NotADirectoryError:
            parent = parent.parent
        except OSError as err:
            return f"cannot be created under '{parent}' ({err.strerror or err})"
    if not stat.S_ISDIR(pst.st_mode):
        return f"cannot be created: '{parent}' is {'a file' if stat.S_ISREG(pst.st_mode) else _kind(pst.st_mode)}, not a folder"
    why = _probe_folder(parent)
    if why is not None:
        return f"cannot be created: cannot write in '{parent}' ({why})"
    return None


def check_paths(
    outputs: Mapping[str, PathArg] | None = None,
    inputs: Mapping[str, PathArg] | None = None,
    folders: Iterable[str] = (),
) -> None:
    """Refuse, before any work, outputs that would destroy something or fail at the end.

    ``outputs`` and ``inputs`` map an option name (``"--json"``) to a path, a list
    of paths or ``None`` (not given); output options named in ``folders`` are
    folders, the others files. Inputs are compared with outputs, not checked
    (see :func:`check_input`). Raises :class:`PathError` naming the option and path.
    """
    folders = set(folders)
    outs = [(opt, p) for opt, arg in (outputs or {}).items() for p in _items(arg)]
    ins = [(opt, p) for opt, arg in (inputs or {}).items() for p in _items(arg)]
    for opt, p in outs:
        problem = _output_problem(p, opt in folders)
        if problem:
            raise PathError(f"{opt} '{p}' {problem}")
        for in_opt, q in ins:
            if str(q) and _same(p, q):
                noun = "folder" if q.is_dir() else "file"
                raise PathError(
                    f"{opt} '{p}' is the {in_opt} {noun}" + (f" '{q}'" if str(q) != str(p) else "")
                    + ": writing it would destroy the input"
                )
    for i, (opt, p) in enumerate(outs):
        for opt2, p2 in outs[i + 1 :]:
            if _same(p, p2):
                first = opt if opt != opt2 else f"{opt} (twice)"
                both = f"{opt} and {opt2} both name" if opt != opt2 else f"{first} names"
                raise PathError(f"{both} '{p}': one output would overwrite the other")


def write_text_output(option: str, path: Path, text: str) -> None:
    """Write an output file whole: a temporary name in the same folder, then renamed; one-line errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink()  # type: ignore[possibly-undefined]
        except (OSError, NameError):
            pass
        raise PathError(f"cannot write {option} '{path}': {err.strerror or err}") from None
