"""Result sets: every command writes its files (a run's restored.wav and report.json, a
comparison, an eval clip, the benchmark's tables) as one set, so that a folder shows the old set
or the new one, never a mix, and nothing this run did not make is deleted or replaced.

The files are staged in a hidden folder inside the output folder (same filesystem), then
committed with the folder locked and SIGINT/SIGTERM held off: the old manifest is removed first
(so no manifest ever describes a mix), the staged files are renamed into place, the files of the
previous set that the new one lacks are removed (only those its manifest lists), the new
manifest is written last and the staging folder removed. Anything that stops a run before the
commit leaves no file of it: the staging folder goes, and so do the folders the set created.
A staging folder left by a crash has a dot name (readers skip it) and is removed by the next set
staged in that folder once the process that made it is gone.

Nothing in a folder is replaced or removed unless the folder's manifest lists it as its own
(`holding`); an input of the run is never written over, even when a manifest lists it.

A worker on another machine does not write into the output folder at all: while a `sink` is
open (`core.backends`), sets stage in a local temporary folder and their commit hands the
staged files and the manifest to the sink; the driver then commits them here, as above.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Iterable, Iterator, Literal

from ..config import UserError
from .interrupts import note_kept, signals_held
from .report import to_json

STAGING_PREFIX = ".adaptive-argm-staging-"
RECORD_KEY = "result_set"
"""The manifest's record of its set: `{"input": resolved input path or null, "files": [...]}`."""
SCHEMA_PREFIX = "adaptive-argm/"
_sinks: list = []
"""Open sinks, innermost last (`sink`)."""


class ResultError(UserError):
    """A result set that cannot be written where asked, said in one line."""


@dataclass(frozen=True)
class Kind:
    """What makes a set of one kind: its manifest's name, the files every such set writes
    (checked before any work), and, for folders written before sets recorded their files, the
    names (glob patterns) of an earlier set and the file whose presence marks one, with the text
    that file begins with when this tool wrote it."""

    manifest: str
    outputs: tuple[str, ...] = ()
    legacy: tuple[str, ...] = ()
    legacy_marker: str | None = None
    legacy_marker_text: str = ""


@dataclass(frozen=True)
class Holding:
    """What a folder holds of a kind: the set's files (relative names) and the input it was
    made from (resolved path; None when unknown or not tied to one input). `foreign`: a file
    with the manifest's name that this tool did not write. `legacy`: an earlier version's set,
    whose files are known by their names only: they may be replaced by files of the same name,
    but none is removed, since a user's file can carry such a name too."""

    files: frozenset[str] = frozenset()
    input: str | None = None
    foreign: bool = False
    legacy: bool = False


@dataclass(frozen=True)
class Conflict:
    """Why a set cannot go into a folder: `other-input` (it holds another input's result; a
    caller may choose to replace that), else a file there is not the tool's or is an input."""

    why: Literal["not-a-folder", "other-input", "not-ours", "input"]
    message: str


def input_key(path: str | Path) -> str:
    return str(Path(path).resolve())


# --- what a folder holds ---------------------------------------------------------------------


def holding(folder: str | Path, kind: Kind) -> Holding:
    """What `folder` holds of `kind`, from its manifest (or, for an earlier version's result,
    from the names that kind wrote)."""
    folder = Path(folder)
    path = folder / kind.manifest
    if not path.is_file():
        if path.exists() or path.is_symlink():
            return Holding(foreign=True)
        marker = kind.legacy_marker
        if marker and marker != kind.manifest and _begins_with(folder / marker, kind.legacy_marker_text):
            return Holding(_legacy_files(folder, kind), legacy=True)
        return Holding()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Holding(foreign=True)
    if not isinstance(data, dict) or not (str(data.get("schema", "")).startswith(SCHEMA_PREFIX) or RECORD_KEY in data):
        return Holding(foreign=True)
    record = data.get(RECORD_KEY)
    if isinstance(record, dict) and isinstance(record.get("files"), list):
        return Holding(frozenset(str(f) for f in record["files"]), record.get("input"))
    return Holding(_legacy_files(folder, kind), _legacy_input(data), legacy=True)  # before sets recorded their files


def _begins_with(path: Path, text: str) -> bool:
    """`path` is a regular file whose text begins with `text`."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(len(text)) == text
    except (OSError, ValueError):
        return False


def _legacy_files(folder: Path, kind: Kind) -> frozenset[str]:
    found = set()
    for pattern in kind.legacy:
        for p in glob.glob(glob.escape(str(folder)) + "/" + pattern):
            found.add(Path(p).relative_to(folder).as_posix())
    return frozenset(found)


def _legacy_input(data: dict) -> str | None:
    fp = data.get("fingerprint")
    if isinstance(fp, dict) and isinstance(fp.get("input"), dict) and fp["input"].get("path"):
        return str(fp["input"]["path"])
    given = data.get("input")
    if isinstance(given, dict) and given.get("path"):
        return input_key(given["path"])  # as given, relative to where it ran: the best guess there is
    return None


def _protected(path: Path, protect: Iterable[str | Path]) -> bool:
    """`path` is (or lies inside) a protected input."""
    if not (path.exists() or path.is_symlink()):
        return False
    target = path.resolve()
    for p in protect:
        p = Path(p)
        if not p.exists():
            continue
        if p.is_dir() and target.is_relative_to(p.resolve()):
            return True
        if target == p.resolve() or (path.is_file() and p.is_file() and os.path.samefile(path, p)):
            return True
    return False


def conflict(folder: str | Path, kind: Kind, input: str | Path | None = None, names: Iterable[str] | None = None,
             protect: Iterable[str | Path] = (), replace_other: bool = False) -> Conflict | None:
    """Why a set of `kind` made from `input`, writing `names` (default: the kind's outputs),
    cannot be committed into `folder`; None when it can."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return Conflict("not-a-folder", f"{folder}: exists and is not a folder")
    if folder.is_symlink() and not folder.exists():
        return Conflict("not-a-folder", f"{folder}: is a link to {os.readlink(folder)}, which does not exist")
    if not folder.is_dir():
        return None
    held = holding(folder, kind)
    if held.foreign:
        return Conflict("not-ours", f"{folder / kind.manifest}: exists and was not written by adaptive-argm; "
                                    "refusing to replace it")
    protect = (*protect, *((input,) if input is not None else ()))
    names = (*(kind.outputs if names is None else names), kind.manifest)
    for name in names:
        if _protected(folder / name, protect):
            return Conflict("input", f"{folder / name}: is an input of this run; refusing to overwrite it")
    if input is not None and held.input is not None and held.input != input_key(input) and not replace_other:
        return Conflict("other-input", f"{folder}: holds the result of another input ({held.input})")
    for name in names:
        final = folder / name
        if (final.exists() or final.is_symlink()) and name not in held.files and name != kind.manifest:
            return Conflict("not-ours", f"{final}: exists and is not part of an earlier result there; "
                                        "refusing to overwrite it")
    return None


def candidate_folders(root: str | Path, input: str | Path, first: str | None = None) -> Iterator[Path]:
    """Folders for `input`'s result under `root`, in order of preference: `first` (default the
    file's stem), then the parent folder's name in front (`lofi_chill-mixed`), then numbered."""
    root, input = Path(root), Path(input).resolve()
    first = first or input.stem
    yield root / first
    parent = input.parent.name
    named = f"{parent}-{first}" if parent and not first.startswith(f"{parent}-") else first
    if named != first:
        yield root / named
    for n in count(2):
        yield root / f"{named}-{n}"


def free_folder(candidates: Iterable[Path], kind: Kind, input: str | Path, protect: Iterable[str | Path] = (),
                taken: Iterable[Path] = ()) -> Path:
    """The first candidate that holds nothing in the way of `input`'s set (free, or its own
    earlier result) and is not in `taken`."""
    taken = {Path(t) for t in taken}
    for folder in candidates:
        if folder not in taken and conflict(folder, kind, input, protect=protect) is None:
            return folder
    raise AssertionError("candidate_folders never ends")


# --- staging and committing ------------------------------------------------------------------


class ResultSet:
    """One result set being written into `folder` (use as a context manager, then `commit`).

    `path(name)` is where to write a file of the set (in the staging folder), `final(name)`
    where it will be; `view(sub)` is the same for a subfolder. `input` (whose result this is,
    recorded for `holding`) and `protect` are never written over. `replace_other` lets the set
    replace a set made from another input (only that set's own files)."""

    def __init__(self, folder: str | Path, kind: Kind, *, input: str | Path | None = None,
                 protect: Iterable[str | Path] = (), replace_other: bool = False):
        self.folder = Path(folder)
        self.kind = kind
        self.input = input
        self.protect = (*protect, *((input,) if input is not None else ()))
        self.replace_other = replace_other
        self.staging: Path | None = None
        self.committed = False
        self._sink = _sinks[-1] if _sinks else None
        self._stage = _Staging(self._sink.staging_root if self._sink else self.folder)

    def __enter__(self) -> ResultSet:
        problem = conflict(self.folder, self.kind, self.input, protect=self.protect, replace_other=self.replace_other)
        if problem:
            raise ResultError(problem.message)
        try:
            self.staging = self._stage.open()
        except BaseException:
            self._stage.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stage.close()

    def path(self, name: str) -> Path:
        p = self.staging / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def final(self, name: str) -> Path:
        return self.folder / name

    def view(self, sub: str) -> View:
        return View(self, sub)

    @property
    def staged_folder(self) -> Path:
        return self.staging

    def discard(self) -> None:
        """Drop every file staged so far (the set starts again, empty)."""
        if self.staging is not None and self.staging.is_dir():
            for p in self.staging.iterdir():
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def published(self, obj):
        """`obj` (JSON-like) with every path into the staging folder replaced by where it
        will be after the commit (an input staged with the set, a stems folder beside it)."""
        staged, final = str(self.staging), str(self.folder)
        if isinstance(obj, dict):
            return {k: self.published(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.published(v) for v in obj]
        if isinstance(obj, str) and (obj == staged or obj.startswith(staged + os.sep)):
            return final + obj[len(staged):]
        return obj

    def staged_files(self) -> list[str]:
        files = []
        for p in sorted(self.staging.rglob("*")):
            rel = p.relative_to(self.staging)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                files.append(rel.as_posix())
        return [f for f in files if f != self.kind.manifest]

    def commit(self, manifest: dict) -> Path:
        """Put the staged files in place and write `manifest` (with this set's record) last;
        see the module docstring for the order. Raises `ResultError` (and changes nothing)
        when the folder meanwhile holds another input's result or a file that is not ours."""
        names = self.staged_files()
        if self._sink is not None:
            self._sink.take(self, names, self.published(manifest))
            self.committed = True
            return self.folder / self.kind.manifest
        record = {RECORD_KEY: {"input": input_key(self.input) if self.input is not None else None, "files": names}}
        staged_manifest = self.staging / self.kind.manifest
        staged_manifest.write_text(to_json({**self.published(manifest), **record}), encoding="utf-8")
        with _locked(self.folder), signals_held():
            problem = conflict(self.folder, self.kind, self.input, names, self.protect, self.replace_other)
            if problem:
                raise ResultError(problem.message)
            previous = holding(self.folder, self.kind)
            (self.folder / self.kind.manifest).unlink(missing_ok=True)
            for name in names:
                target = self.folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.staging / name, target)
            for name in sorted(set() if previous.legacy else previous.files - set(names) - {self.kind.manifest}):
                self._remove_previous(name)
            os.replace(staged_manifest, self.folder / self.kind.manifest)
            shutil.rmtree(self.staging, ignore_errors=True)
            self.committed = True
            note_kept(self.folder)
        return self.folder / self.kind.manifest

    def _remove_previous(self, name: str) -> None:
        """Remove a file of the previous set (never one outside the folder, never an input)."""
        target = self.folder / name
        if ".." in Path(name).parts or Path(name).is_absolute() or _protected(target, self.protect):
            return
        if not target.parent.resolve().is_relative_to(self.folder.resolve()):
            return
        if target.is_file() or target.is_symlink():
            target.unlink()
            parent = target.parent
            while parent != self.folder and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


class View:
    """A subfolder of a result set being staged: files written here belong to the set."""

    def __init__(self, result_set: ResultSet, sub: str):
        self.result_set = result_set
        self.sub = sub.strip("/")

    def path(self, name: str) -> Path:
        return self.result_set.path(f"{self.sub}/{name}")

    def final(self, name: str) -> Path:
        return self.result_set.final(f"{self.sub}/{name}")

    def view(self, sub: str) -> View:
        return View(self.result_set, f"{self.sub}/{sub}")

    @property
    def folder(self) -> Path:
        return self.result_set.final(self.sub)

    @property
    def staged_folder(self) -> Path:
        p = self.result_set.staging / self.sub
        p.mkdir(parents=True, exist_ok=True)
        return p

    def published(self, obj):
        return self.result_set.published(obj)


@contextmanager
def sink(target) -> Iterator:
    """While the block runs, every set stages under `target.staging_root` and its commit calls
    `target.take(result_set, names, manifest)` instead of touching the set's folder."""
    _sinks.append(target)
    try:
        yield target
    finally:
        _sinks.remove(target)


Staged = (ResultSet, View)
"""What a writer may be handed instead of a folder: a set (or part of one) the caller commits."""


# --- helpers -----------------------------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


class _Staging:
    """A hidden staging folder inside `folder` (made with its parents when missing), and its
    removal, with whatever is still in it and the folders it made that are empty again. Both
    hold Ctrl-C off: a folder is never made without being known, nor left half removed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path: Path | None = None
        self._made: list[Path] = []

    def open(self) -> Path:
        with signals_held():
            self._made = _make_dirs(self.folder)
            try:
                remove_stale_staging(self.folder)
                self.path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_HOST}-{os.getpid()}-", dir=self.folder))
            except BaseException:
                _remove_empty(self._made)
                raise
        return self.path

    def close(self) -> None:
        with signals_held():
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
            _remove_empty(self._made)


@contextmanager
def staging(folder: str | Path) -> Iterator[Path]:
    """A new hidden staging folder inside `folder`, removed on exit (see `_Staging`): what was
    moved out of it stays."""
    stage = _Staging(Path(folder))
    try:
        yield stage.open()
    finally:
        stage.close()


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders in `folder` left by processes of this host that are gone."""
    removed = []
    for p in folder.glob(f"{STAGING_PREFIX}*"):
        parts = p.name[len(STAGING_PREFIX):].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit() or not p.is_dir():
            continue
        if not _alive(int(parts[1])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_empty(made: list[Path]) -> None:
    for p in reversed(made):
        try:
            p.rmdir()
        except OSError:
            return


@contextmanager
def _locked(folder: Path):
    """An exclusive lock on the folder itself (two runs committing into one folder take turns)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
