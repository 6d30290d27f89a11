"""The data registry: named datasets, where their files live, and proof that they are the right files.

The manifest ``registry.json`` (beside this module) names every dataset (``sts12``..``sts16``, ``stsb``, ``sickr``,
``wiki``, ``nli``, and the download-only ``wiki1m`` and ``nli_for_simcse``), its files as paths
relative to a mirror root laid out like ``../shared/data``, the sha256 of each file, a licence note
and the canonical URL for online users.

A file is looked up, in order, in ``$SIMCSE_LAB_DATA`` (a mirror root) and in the cache
(``$SIMCSE_LAB_CACHE`` or ``~/.cache/simcse-lab``). The first copy found is checked against its sha256 and
refused, by name, if it does not match: a corrupted mirror is never used and never silently skipped.
"""

from __future__ import annotations

from importlib import resources
import json
import os
import shutil
import sys
import http.client
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from simcse_lab.data import readers
from simcse_lab.errors import UserError
from simcse_lab.io import atomic_path, make_temp_dir, sha256_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MANIFEST: Path | None = None  # None: the registry.json shipped beside this module (package data); tests override it


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    kind: str
    license: str
    url: str | None
    splits: dict
    files: dict  # relative path -> sha256 (None: not pinned)
    head_lines: int | None = None
    offline_note: str | None = None


def manifest() -> dict[str, DatasetInfo]:
    """The registry's datasets by name, read once per manifest file (MANIFEST: a test's or a mirror's, else the
    packaged registry.json)."""
    return _manifest(MANIFEST)


@lru_cache(maxsize=4)
def _manifest(path) -> dict[str, DatasetInfo]:
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
    else:  # importlib.resources: works from a wheel, a zip or a source tree alike
        text = resources.files(__package__).joinpath("registry.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    out = {}
    for name, d in raw["datasets"].items():
        out[name] = DatasetInfo(
            name=name,
            description=d["description"],
            kind=d["kind"],
            license=d["license"],
            url=d.get("url"),
            splits=d["splits"],
            files=d["files"],
            head_lines=d.get("head_lines"),
            offline_note=d.get("offline_note"),
        )
    return out


manifest.cache_clear = _manifest.cache_clear  # a test that rewrote a manifest file in place


def info(name: str) -> DatasetInfo:
    datasets = manifest()
    if name not in datasets:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(datasets)}")
    return datasets[name]


def cache_dir() -> Path:
    """``$SIMCSE_LAB_CACHE``, else the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``)/simcse-lab:
    never the source tree or site-packages."""
    if os.environ.get("SIMCSE_LAB_CACHE"):
        return Path(os.environ["SIMCSE_LAB_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "simcse-lab"


def search_roots() -> list[tuple[str, Path]]:
    roots = []
    mirror = os.environ.get("SIMCSE_LAB_DATA")
    if mirror:
        roots.append(("mirror", Path(mirror)))
    roots.append(("cache", cache_dir()))
    return roots


@lru_cache(maxsize=None)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _checked(path: Path, expected: str | None, root: str = "cache", name: str | None = None) -> Path:
    if expected is None:
        return path
    st = path.stat()
    got = _sha256_cached(str(path), st.st_size, st.st_mtime_ns)
    if got != expected:
        # the mirror is searched before the cache: a fetched copy cannot help while this file is there
        fix = ("fix the file in the mirror, or unset SIMCSE_LAB_DATA to use the cache" if root == "mirror" else
               f"delete it and run `simcse-lab data fetch{' ' + name if name else ''}` again, or restore it")
        raise UserError(
            f"{path}: sha256 mismatch (expected {expected[:12]}..., found {got[:12]}...): the file is corrupted "
            f"or a different version; {fix}"
        )
    return path


def locate(name: str, relpath: str) -> Path:
    """The verified local copy of one registry file, or a one-line error saying how to get it."""
    ds = info(name)
    expected = ds.files[relpath]
    for label, root in search_roots():
        candidate = root / relpath
        if candidate.is_file():
            return _checked(candidate, expected, label, name)
    where = " or ".join(str(root) for _, root in search_roots())
    raise UserError(
        f"dataset {name!r}: {relpath} not found under {where}; set SIMCSE_LAB_DATA to a mirror "
        f"(e.g. ../shared/data) or run `simcse-lab data fetch {name}`"
    )


def load_split(name: str, split: str):
    """Read one split of a registry dataset with its reader.

    Returns ``dict[subset, PairSet]`` for STS12-16, a ``PairSet`` for STS-B/SICK-R, a list of
    sentences for text sets and a list of (sent0, sent1, hard_neg) for NLI sets.
    """
    ds = info(name)
    if split not in ds.splits:
        raise UserError(f"dataset {name!r} has no split {split!r}; it has {', '.join(ds.splits)}")
    spec = ds.splits[split]
    if ds.kind == "senteval_sts":
        return {
            s["name"]: readers.read_senteval_sts(locate(name, s["input"]), locate(name, s["gold"]), s["name"])
            for s in spec["subsets"]
        }
    path = locate(name, spec["path"])
    if ds.kind == "stsb_csv":
        return readers.read_stsb_csv(path, f"{name}-{split}")
    if ds.kind == "sick":
        return readers.read_sick(path, f"{name}-{split}")
    if ds.kind == "text":
        return readers.read_text(path)
    if ds.kind == "nli_csv":
        return readers.read_nli_csv(path)
    raise AssertionError(f"registry kind {ds.kind!r} has no reader")


def status(name: str) -> tuple[str, str]:
    """(state, detail) for ``data list``: verified / unpinned / missing / CORRUPT, and where."""
    ds = info(name)
    roots_used = set()
    for relpath in ds.files:
        try:
            path = locate(name, relpath)
        except UserError as err:
            return ("CORRUPT" if "sha256 mismatch" in str(err) else "missing"), str(err)
        roots_used.add(str(path)[: -len(relpath)].rstrip("/"))
    pinned = all(v is not None for v in ds.files.values())
    return ("verified" if pinned else "unpinned"), ", ".join(sorted(roots_used))


# ---------------------------------------------------------------------------------------------
# fetch: fill the cache from a mirror directory or from the canonical URLs


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _verify_source(src: Path, expected: str | None) -> None:
    if not src.is_file():
        raise UserError(f"{src}: not found in the mirror")
    if expected is not None and sha256_file(src) != expected:
        raise UserError(f"{src}: sha256 mismatch with the registry; refusing to copy it")


def fetch_from_dir(name: str, source: Path) -> list[Path]:
    """Verify every file of ``name`` under the mirror ``source`` first, then copy them into the cache."""
    ds = info(name)
    for relpath, expected in ds.files.items():
        _verify_source(source / relpath, expected)
    out = []
    for relpath in ds.files:
        dst = cache_dir() / relpath
        _atomic_copy(source / relpath, dst)
        out.append(dst)
    return out


def _download(url: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as f:
            # said once the server answered: offline, the error below is the only line
            print(f"downloading {url}", file=sys.stderr)
            shutil.copyfileobj(resp, f, 1 << 20)
        os.replace(tmp, dst)
    except (OSError, http.client.HTTPException, ValueError) as err:  # HTTPException: e.g. IncompleteRead
        raise UserError(
            f"cannot download {url} ({err.__class__.__name__}: {err}); offline, point SIMCSE_LAB_DATA at a "
            f"mirror or run `simcse-lab data fetch --from DIR`"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)  # never leave a partial download behind, whatever stopped it


def fetch_from_url(name: str) -> list[Path]:
    """Download the canonical source of ``name`` into the cache and verify it."""
    ds = info(name)
    if not ds.url:
        raise UserError(f"dataset {name!r} cannot be downloaded: {ds.offline_note}; use `data fetch --from DIR`")
    downloads = cache_dir() / "downloads"
    archive = downloads / ds.url.rsplit("/", 1)[-1]
    if not archive.is_file():
        _download(ds.url, archive)
    staging = make_temp_dir(downloads / name)
    try:
        try:
            _unpack(ds, archive, staging)
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as err:
            archive.unlink(missing_ok=True)  # a bad archive must not fail every later fetch the same way
            raise UserError(f"{archive} (downloaded from {ds.url}) is not a complete archive and was deleted "
                            f"({err.__class__.__name__}: {err}); run fetch again or use --from DIR") from None
        try:
            return fetch_from_dir(name, staging)
        except UserError as err:
            archive.unlink(missing_ok=True)  # never keep a download that failed verification
            raise UserError(f"{archive} (downloaded from {ds.url}) failed verification and was deleted; "
                            f"run fetch again or use --from DIR ({err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(ds: DatasetInfo, archive: Path, staging: Path) -> None:
    """The registry's files of ``ds`` from the downloaded ``archive`` into ``staging`` (same relative paths)."""
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            for relpath in ds.files:
                tail = relpath.split("downstream/", 1)[-1]
                match = [n for n in members if n.endswith(tail)]
                if not match:
                    raise ValueError(f"no member ending in {tail}")
                (staging / relpath).parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(members[match[0]]) as src, open(staging / relpath, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        if len(ds.files) != 1:
            raise ValueError(f"not a tar archive, and dataset {ds.name!r} needs {len(ds.files)} files from one")
        (relpath,) = ds.files
        (staging / relpath).parent.mkdir(parents=True, exist_ok=True)
        if ds.head_lines:
            with open(archive, "rb") as src, open(staging / relpath, "wb") as dst:
                for _, line in zip(range(ds.head_lines), src):
                    dst.write(line)
        else:
            shutil.copyfile(archive, staging / relpath)

