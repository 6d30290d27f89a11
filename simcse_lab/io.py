"""What simcse-lab writes to disk, and the rules it follows doing so. Every file and directory the
tool produces goes through here, so the rules hold everywhere:

- **Atomic**: a file or a directory is written under a hidden temporary name beside its target
  (``.NAME.tmp-PID-HOST-xxxx``), fsynced, then renamed into place: a reader never sees it half
  written, and an older version is replaced only by a complete new one. A directory that already
  exists is swapped in one step (Linux ``renameat2(RENAME_EXCHANGE)``); where that is not available,
  in two renames whose interruption is repaired by the next run.
- **Permissions**: what lands in place has the modes the user's umask asks for (``0o666 & ~umask``
  for files, ``0o777 & ~umask`` for directories), not the private 0600/0700 of temporary files; a
  replaced file or directory keeps its own mode.
- **Crash leftovers**: the temporary names carry the writer's process id and host, so the next run
  can tell a dead writer's leftovers from a live one's: a dead writer's temporary file or directory
  is deleted, and a previous version it had set aside (``.NAME.old-PID-HOST-xxxx``) is restored if
  the target is missing, deleted otherwise. Only these names are touched.
- **Ownership**: simcse-lab writes into a directory only if it made it, and replaces a directory
  only if that directory holds a previous simcse-lab output of the same kind and nothing else. A
  directory it made carries the marker file ``.simcse-lab.json`` (kind, version, and for outputs
  that are replaced whole, the entries it wrote). Directories from versions without the marker are
  recognised by their own files (see ``_legacy_kind``). Anything else is refused with one line.
- **One writer**: a command that writes into a directory for its whole run (``train``) holds an exclusive
  lock on it (``fcntl.flock`` on ``DIR/.simcse-lab.lock``, released when the process ends, however it
  ends): a second run into the same directory is refused with one line and touches nothing.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from simcse_lab.errors import UserError, first_line


# -- permissions -------------------------------------------------------------------------------------
def umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by setting it back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


# -- temporary names and the leftovers of killed runs ----------------------------------------------------
@lru_cache(maxsize=1)
def _host() -> str:
    # a short fixed-width tag: host names may contain the '-' that separates the fields of a leftover name
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _owner_tag() -> str:
    return f"{os.getpid()}-{_host()}"


# .NAME.tmp-PID-HOST-RANDOM[suffix] and .NAME.old-PID-HOST-RANDOM; .NAME.old-PID as written by 0.1.0
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<what>tmp|old)-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-.+$")
_LEGACY_OLD = re.compile(r"^\.(?P<name>.+)\.(?P<what>old)-(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def clean_leftovers(parent, name: str | None = None) -> list[str]:
    """Repair what killed simcse-lab processes left in ``parent`` (for target ``name`` only, if given):
    delete their temporary files and directories, and restore a set-aside previous version whose
    target is missing (delete it when the target is there). Leftovers of live processes and of other
    hosts are left alone. Returns a description of each action."""
    parent = Path(parent)
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    done = []
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if m is None and entry.is_dir(follow_symlinks=False):  # 0.1.0 set aside directories only
            m = _LEGACY_OLD.match(entry.name)
        if m is None or (name is not None and m["name"] != name):
            continue
        if m.groupdict().get("host") not in (None, _host()) or _pid_alive(int(m["pid"])):
            continue
        path, target = Path(entry.path), parent / m["name"]
        if m["what"] == "old" and entry.is_dir(follow_symlinks=False) and not os.path.lexists(target):
            os.replace(path, target)
            done.append(f"restored {target} from {path.name} (left by a killed run)")
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path} (left by a killed run)")
        else:
            path.unlink(missing_ok=True)
            done.append(f"removed {path} (left by a killed run)")
    return done


def make_temp_dir(target) -> Path:
    """A new empty directory beside ``target`` to build it in (then :func:`replace_dir_atomically`);
    earlier leftovers for ``target`` are cleaned first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target.parent, target.name)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{_owner_tag()}-"))


# -- durability --------------------------------------------------------------------------------------
def _fsync_path(path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as err:
        if not directory or err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise  # some file systems cannot fsync a directory; a file must always be synced
    finally:
        os.close(fd)


def _settle_tree(root: Path) -> None:
    """Before a directory is renamed into place: give every file and directory in it the umask's mode
    (temporary directories are 0700, and some writers, e.g. safetensors, create 0600 files) and fsync them."""
    fmode, dmode = file_mode(), dir_mode()
    for current, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                os.chmod(path, fmode)
                _fsync_path(path)
        for name in dirs:
            if not os.path.islink(os.path.join(current, name)):
                os.chmod(os.path.join(current, name), dmode)
        _fsync_path(current, directory=True)
    os.chmod(root, dmode)


def sha256_file(path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks (memory does not grow with the file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- atomic files ------------------------------------------------------------------------------------
@contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; write it, and it replaces ``path`` only if the block succeeds
    (fsynced, with the mode of the file it replaces or the umask's, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{_owner_tag()}-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = file_mode()
        os.chmod(tmp, mode)
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


# -- atomic directories ------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir_atomically(tmp: Path, output_dir: Path, kind: str | None = None) -> None:
    """Move the complete directory ``tmp`` to ``output_dir``; an old ``output_dir`` is removed only afterwards.

    With ``kind`` (an output replaced whole: ``export``, ``index``), ``tmp`` gets the ownership marker
    listing its entries, and an existing ``output_dir`` must be a previous output of that kind (checked
    again here, in case the directory changed while the new one was being made)."""
    tmp, output_dir = Path(tmp), Path(output_dir)
    parent = output_dir.parent
    clean_leftovers(parent, output_dir.name)
    exists = os.path.lexists(output_dir)
    if kind is not None:
        if exists:
            problem = _replace_problem(output_dir, kind)
            if problem:
                raise UserError(problem)
        write_marker(tmp, kind, files=sorted(os.listdir(tmp)))
    _settle_tree(tmp)
    if not exists:
        os.replace(tmp, output_dir)
        _fsync_path(parent, directory=True)
        return
    os.chmod(tmp, stat.S_IMODE(os.stat(output_dir).st_mode))  # a replaced directory keeps its mode
    if _exchange(tmp, output_dir):
        _fsync_path(parent, directory=True)
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old version
        return
    old = parent / f".{output_dir.name}.old-{_owner_tag()}-{secrets.token_hex(4)}"
    os.replace(output_dir, old)  # a kill from here to the next rename is repaired by clean_leftovers
    try:
        os.replace(tmp, output_dir)
    except BaseException:
        os.replace(old, output_dir)
        raise
    _fsync_path(parent, directory=True)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(output_dir, kind: str | None = None):
    """Yield a new temporary directory beside ``output_dir`` to write into; if the block succeeds it
    replaces ``output_dir`` (:func:`replace_dir_atomically`, with the ownership rule for ``kind``), if it
    fails it is deleted."""
    tmp = make_temp_dir(output_dir)
    try:
        yield tmp
        replace_dir_atomically(tmp, Path(output_dir), kind=kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- ownership ---------------------------------------------------------------------------------------
MARKER = ".simcse-lab.json"
def expand_user(value: str) -> str:
    """``~`` and ``~user`` expanded at the start of a path; one that stays unexpanded (``~nosuchuser/x``) is
    refused rather than created as a directory literally named ``~nosuchuser`` in the working directory."""
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        raise UserError(f"{value}: '{expanded.split(os.sep)[0]}' names no user's home directory; "
                        f"write ./{value} for a directory of that name")
    return expanded


LOCK = ".simcse-lab.lock"  # held (flock) by the one run writing into the directory
KINDS = {"train": "a training run", "export": "an export", "index": "an index", "analysis": "an analysis report",
         "inspect": "a data inspection report", "sweep": "a sweep"}
_MARKER_TEMP = re.compile(rf"^\.{re.escape(MARKER)}\.tmp-")

# entries an export of 0.1.0 (before the marker) may hold: sentence-transformers modules, HF weights,
# tokenizer and config files, the ONNX graph and the model card; anything else is not ours
_LEGACY_EXPORT_ENTRY = re.compile(r"^(\d+_\w+|[\w.\-]+\.(json|safetensors|onnx|model)|vocab\.txt|merges\.txt|"
                                  r"README\.md|pytorch_model\.bin)$")
_LEGACY_INDEX_ENTRIES = {"manifest.json", "index.faiss", "texts.jsonl"}


def read_small_json(path, limit: int) -> tuple[dict | None, str | None]:
    """``(object, None)`` for a small regular file holding a JSON object, else ``(None, why)``: ``why`` is
    ``"missing"``, ``"unreadable (...)"``, ``"not a small regular file"`` or ``"is not a JSON object"``. Never
    follows a symlink, waits on a FIFO or reads more than ``limit`` bytes (a cache's memo, an entry's manifest)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, "missing"
    except OSError as err:
        return None, f"unreadable ({err.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None, "not a small regular file"
        data = json.loads(os.read(fd, limit + 1))
    except (OSError, ValueError) as err:
        return None, f"unreadable ({first_line(err, 120)})"
    finally:
        os.close(fd)
    return (data, None) if isinstance(data, dict) else (None, "is not a JSON object")


def read_marker(directory) -> dict | None:
    """The ownership marker of ``directory``, or None (absent, unreadable, or not a known kind)."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") in KINDS else None


def write_marker(directory, kind: str, files: list[str] | None = None) -> None:
    from simcse_lab import __version__

    data = {"kind": kind, "written_by": f"simcse-lab {__version__}"}
    if files is not None:
        data["files"] = [f for f in files if f != MARKER]
    write_json(Path(directory) / MARKER, data)


def _json_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _legacy_kind(directory: Path) -> str | None:
    """The kind of a directory written by simcse-lab 0.1.0 (no marker), recognised by its own files."""
    if (directory / "train_config.json").is_file() and (directory / "checkpoints").is_dir():
        return "train"
    manifest = _json_file(directory / "manifest.json")
    if manifest and str(manifest.get("format", "")).startswith("simcse-lab-index/") \
            and (directory / "index.faiss").is_file():
        return "index"
    hf = _json_file(directory / "simcse_lab.json")
    onnx = _json_file(directory / "onnx_config.json")
    readme = directory / "README.md"
    if (hf and "simcse-lab" in str(hf.get("note", ""))) \
            or (onnx and str(onnx.get("exporter", "")).startswith("torch.onnx") and (directory / "model.onnx").is_file()) \
            or (readme.is_file() and "Exported by `simcse-lab export`" in readme.read_text(errors="replace")):
        return "export"
    report = _json_file(directory / "report.json")
    if report and "checkpoints" in report and "figures" in report and (directory / "report.md").is_file():
        return "analysis"
    return None


def _entries(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n not in (MARKER, LOCK) and not _MARKER_TEMP.match(n))


def owner_kind(directory) -> str | None:
    """The kind of simcse-lab output ``directory`` holds (marker, or a 0.1.0 output's files), else None."""
    directory = Path(directory)
    marker = read_marker(directory)
    return marker["kind"] if marker else _legacy_kind(directory)


def _kind_problem(directory: Path, kind: str, found: str | None) -> str | None:
    if found is None:
        return (f"{directory}: not empty and not made by simcse-lab (no {MARKER}); refusing to write into it: "
                f"choose a new or empty directory")
    if found != kind:
        return f"{directory}: holds {KINDS[found]} made by simcse-lab, not {KINDS[kind]}; choose another directory"
    return None


def claim_output_dir(path, kind: str, lock: bool = False) -> Path:
    """Make ``path`` an output directory of ``kind`` that simcse-lab may write into: create it (with the
    marker) if absent or empty, accept it if it holds a simcse-lab output of the same kind, refuse
    anything else with one line. Idempotent: every process of a distributed run may call it. With ``lock``
    (one process of a run: its main one), the directory is also locked for this process until
    :func:`release_output_dir` or its end; a directory another process holds is refused with one line,
    before anything in it is touched."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory")
    if path.is_dir() and (read_marker(path) or _entries(path)):  # an empty dir marked for another kind too
        problem = _kind_problem(path, kind, owner_kind(path))
        if problem:
            raise UserError(problem)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{path}: cannot create the directory ({err.strerror})") from None
    if lock:
        _lock(path)
    clean_leftovers(path)
    for child in path.iterdir():  # e.g. best/, final/, checkpoints/ of a training run
        if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
            clean_leftovers(child)
    if read_marker(path) is None:
        write_marker(path, kind)
    return path


def open_own_file(path: Path, flags: int, what: str) -> int:
    """A descriptor of ``path`` (created if absent) opened never through a link: a file simcse-lab keeps inside
    its own directory (a run's lock, ``metrics.jsonl``) that is a symbolic link, a hard link to another file, a
    FIFO or a device was not made by simcse-lab, and writing into it would write into what it names. Refused
    in one line naming ``what`` it is; nothing is written."""
    flags |= os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, file_mode())
    except OSError as err:
        why = "is a symbolic link" if err.errno == errno.ELOOP else f"cannot be opened ({err.strerror})"
        raise UserError(f"{path}: {what} {why}; simcse-lab did not make it: remove it") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        why = "is not a regular file" if not stat.S_ISREG(info.st_mode) else "is a hard link to another file"
        raise UserError(f"{path}: {what} {why}; simcse-lab did not make it: remove it")
    return fd


_HELD: dict[str, int] = {}  # resolved directory -> the descriptor whose flock this process holds


def _lock(directory: Path) -> None:
    key = str(directory.resolve())
    if key in _HELD:
        return
    path = directory / LOCK
    fd = open_own_file(path, os.O_RDWR, "the run's lock file")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise UserError(f"{directory / LOCK}: cannot lock it ({err.strerror})") from None
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise UserError(f"{directory}: another simcse-lab run is writing into it ({holder or 'it holds '+LOCK}); "
                        f"wait for it to end, or choose another directory") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _HELD[key] = fd


def release_output_dir(path) -> None:
    """Give up the lock :func:`claim_output_dir` took on ``path`` (a no-op if this process holds none)."""
    fd = _HELD.pop(str(Path(path).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases its flock


def _replace_problem(directory: Path, kind: str) -> str | None:
    """Why ``directory`` may not be replaced whole by a new output of ``kind`` (None: it may)."""
    if directory.is_symlink() or not directory.is_dir():
        return f"{directory}: exists and is not a directory" if not directory.is_symlink() else \
            f"{directory}: is a symbolic link; give the directory itself"
    entries = _entries(directory)
    marker = read_marker(directory)
    if not entries and marker is None:
        return None  # an empty directory: nothing to lose
    problem = _kind_problem(directory, kind, owner_kind(directory))
    if problem:
        return problem
    if marker is not None and "files" in marker:
        extra = sorted(set(entries) - set(marker["files"]))
    elif marker is not None:
        extra = entries  # a directory claimed to be written into, never one we replace whole
    elif kind == "index":
        extra = sorted(set(entries) - _LEGACY_INDEX_ENTRIES)
    else:
        extra = [e for e in entries if not _LEGACY_EXPORT_ENTRY.match(e)]
    if extra:
        shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
        return (f"{directory}: holds files simcse-lab did not write ({shown}); refusing to replace it: "
                f"move them away or choose another directory")
    return None


def check_replaceable(path, kind: str, overwrite: bool, sources=()) -> None:
    """Before making a new output of ``kind`` at ``path`` (built beside it, then renamed into place):
    refuse, with one line, a path that cannot be a new directory, an existing one without ``overwrite``,
    and with ``overwrite`` anything but a previous simcse-lab output of that kind holding nothing else,
    and any directory that is or contains one of ``sources`` (the model or corpus the output is made from)."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise UserError(f"{path}: names an existing directory ('.' or '..'); give the path of a new directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{path}: {parent} is not a directory")
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise UserError(f"{path}: already exists (pass --overwrite to replace it)")
    resolved = path.resolve()
    for source in sources:
        if source is None or not os.path.exists(source):
            continue  # e.g. a hub id
        src = Path(source).resolve()
        if src == resolved or resolved in src.parents:
            raise UserError(f"{path}: {'is' if src == resolved else 'contains'} {source}, the input of this "
                            f"command; refusing to replace it")
    problem = _replace_problem(path, kind)
    if problem:
        raise UserError(problem)


def read_json(path, missing: str = "no such file"):
    """A JSON file's content, or one line naming the file and the problem (``missing``: what its absence means)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a JSON file ({err})") from None
