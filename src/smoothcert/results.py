"""The results file of a run over a data set (``certify``, ``predict``), and its configuration.

A results file ``OUTFILE`` is a tab-separated table: a header line, then one row per input, its
index ``idx`` first, in the order computed. Its configuration ``OUTFILE.config.json`` (a JSON
object) says how the rows were made. This module is the one place that reads and writes them:

- :class:`ResultsFile` / :func:`open_results`: rows are flushed and fsynced as computed, and
  re-running the same command resumes (complete rows kept, a torn last line cut, only missing
  indices computed); :func:`config_differences` compares a stored configuration with the new
  one, apart from :data:`RUN_ONLY_FIELDS` (and :data:`LATER_FIELDS` that older files lack).
- :func:`check_rows` / :func:`read_rows` / :func:`row_fields_checker`: every row read back is
  validated (column count, index expected and unique, label, prediction, ``correct``, ``time``
  as :func:`format_time` writes it); a damaged row refuses the file in one line.
- :func:`config_path`, :func:`read_config_file`, :func:`read_config`: the configuration file.
- :func:`check_outfile`, :func:`outfile_lock` (one run per OUTFILE at a time: an exclusive lock
  on ``OUTFILE.lock``; a second run is refused, it would append the same rows again),
  :func:`write_text_atomic` / :func:`write_json_atomic` (a crash leaves the old file or the new
  one, never a torn one).

Every problem is a one-line :class:`~smoothcert.errors.SmoothCertError`. The module needs only
the standard library (``smoothcert analyze`` and ``merge`` start without numpy or torch).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import SmoothCertError

#: configuration fields that do not change results: they may differ when a run is resumed
RUN_ONLY_FIELDS = frozenset(
    {
        "command",
        "batch",
        "device",
        "checkpoint",
        "data_dir",
        "sigma0",
        "started",
        "failure_prob",
        "confidence",
    }
)
#: configuration fields added after results files were written without them; a stored
#: configuration without the field is compared as if it held this value (``start``: those runs
#: began at index 0), or not compared at all for ``None`` (``train_noise`` is read from the
#: checkpoint, which ``checkpoint_sha256`` already pins)
LATER_FIELDS = {"start": 0, "train_noise": None}


# ----------------------------------------------------------------------------- files
def config_path(outfile) -> Path:
    return Path(str(outfile) + ".config.json")


def lock_path(outfile) -> Path:
    return Path(str(outfile) + ".lock")


def read_config_file(cpath) -> dict:
    """The JSON object stored in the configuration file ``cpath``; a one-line
    :class:`SmoothCertError` when it cannot be read or is not an object."""
    try:
        stored = json.loads(Path(cpath).read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise SmoothCertError(f"unreadable configuration {cpath}: {exc}") from None
    return stored


def read_config(path, what: str = "results file") -> dict:
    """The configuration ``PATH.config.json`` of a results or part file."""
    cpath = config_path(path)
    if not cpath.exists():
        raise SmoothCertError(
            f"{path} exists without its configuration {cpath.name}; "
            f"it is not a {what} of smoothcert"
        )
    return read_config_file(cpath)


def check_outfile(outfile) -> None:
    p = Path(outfile)
    if p.is_dir():
        raise SmoothCertError(f"OUTFILE {outfile} is a directory")
    parent = p.resolve().parent
    if not parent.is_dir():  # created, as train and demo create their folders
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SmoothCertError(
                f"cannot create the directory {parent} of OUTFILE: {exc.strerror or exc}"
            ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SmoothCertError(f"directory {parent} of OUTFILE is not writable")
    if p.exists() and not os.access(p, os.R_OK | os.W_OK):
        raise SmoothCertError(f"OUTFILE {outfile} is not readable and writable")
    # os.access says yes to root (and ignores read-only mounts, ...): really try
    try:
        if p.exists():
            with open(p, "r+b"):
                pass
        else:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        where = f"OUTFILE {outfile}" if p.exists() else f"directory {parent} of OUTFILE"
        raise SmoothCertError(f"{where} is not writable: {exc.strerror or exc}") from None


@contextlib.contextmanager
def outfile_lock(outfile):
    """Hold an exclusive lock on OUTFILE for one run (``fcntl.flock`` of ``OUTFILE.lock``, which
    holds the process id and is removed at the end): a second run on the same OUTFILE is refused
    with a one-line :class:`SmoothCertError` instead of appending the same rows again. The lock
    dies with its process (SIGKILL included): no stale lock to clear by hand. On a file system
    without locks (some network mounts) the run goes on with a warning."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        fcntl = None
    path = lock_path(outfile)
    if fcntl is None:
        print(
            f"# warning: cannot lock {path} on this system; run one command per OUTFILE",
            file=sys.stderr,
        )
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error("create the lock file", path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise SmoothCertError(
                f"{outfile} is in use: another smoothcert run{who} holds its "
                f"lock {path.name}; wait for it to end or use another "
                "OUTFILE"
            ) from None
        except OSError as exc:
            os.close(fd)
            print(
                f"# warning: cannot lock {path} ({exc.strerror or exc}); run one command "
                "per OUTFILE",
                file=sys.stderr,
            )
            yield
            return
        try:  # the file may have been removed by the run that held it: lock the current one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError:
            pass
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # while still locked: the next run makes a new one
        except OSError:
            pass
        os.close(fd)


def _os_error(action: str, path, exc: OSError) -> SmoothCertError:
    """An OSError (disk full, I/O error, ...) as one line naming the file."""
    return SmoothCertError(f"cannot {action} {path}: {exc.strerror or exc}")


# ----------------------------------------------------------------------------- configuration
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(stored: dict, new: dict, ignore=RUN_ONLY_FIELDS) -> list[str]:
    """``["sigma 0.25 != 0.5", ...]``: the fields (dotted when nested) that differ, except the
    ones in ``ignore``; the stored value comes first. A nested entry that only one side has
    (``adaptive`` of a sequential run) is one difference: ``adaptive (present) != (absent)``.
    A field of :data:`LATER_FIELDS` that ``stored`` lacks (a file written before it existed)
    takes its default there, or is not compared when that is None."""
    new = json.loads(json.dumps(new))
    stored = dict(stored)
    for key, default in LATER_FIELDS.items():
        if key not in stored:
            if default is None:
                ignore = frozenset(ignore) | {key}
            else:
                stored[key] = default
    a, b = _flatten(stored), _flatten(new)
    diffs, named = [], set()
    whole = {
        k
        for k in set(stored) ^ set(new)
        if isinstance(stored.get(k, new.get(k)), dict) and k not in ignore
    }
    for key in sorted(set(a) | set(b), key=lambda k: (list(b).index(k) if k in b else 1e9, k)):
        if key in ignore or key.split(".")[0] in ignore:
            continue
        top = key.split(".")[0]
        if top in whole:
            if top not in named:
                present = ("(present)", "(absent)")
                diffs.append(f"{top} {' != '.join(present if top in stored else present[::-1])}")
                named.add(top)
            continue
        va, vb = a.get(key, "(absent)"), b.get(key, "(absent)")
        leaf = key.rsplit(".", 1)[-1]
        seen = (leaf, json.dumps(va), json.dumps(vb))  # lists (a radius grid) are values too
        if va != vb and seen not in named:  # certificate.sigma repeats sigma
            diffs.append(f"{key} {va} != {vb}")
            named.add(seen)
    return diffs


# ----------------------------------------------------------------------------- atomic writes
def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the mode ``open()`` gives a new file (0644 under the
    usual umask 022). ``tempfile.mkstemp`` creates its files 0600 whatever the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically and durably (temporary file, fsync, rename, fsync
    of the folder): a crash leaves the old file or the new one, never a torn one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())  # the mode of the TSV next to it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_json_atomic(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- rows
class ResultsFile:
    """An open results file: ``done`` holds the indices already there; :meth:`write_row`
    appends one row, flushed and fsynced. ``created``: the file (and its configuration) were
    made by this run; leaving the ``with`` block by an exception before any row was written then
    removes them (no header-only OUTFILE is left behind by a failed run)."""

    def __init__(self, path: Path, done: set[int], created: bool = False):
        self.path, self.done, self.created = path, done, created
        self.rows_written = 0
        try:
            self._f = open(path, "a", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise _os_error("open", path, exc) from None

    def write_row(self, line: str) -> None:
        try:
            self._f.write(line + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise _os_error("write to", self.path, exc) from None
        self.rows_written += 1

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:
            raise _os_error("write to", self.path, exc) from None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
            return
        try:
            self._f.close()
        except OSError:
            pass
        if self.created and not self.rows_written:
            self.path.unlink(missing_ok=True)
            config_path(self.path).unlink(missing_ok=True)


def open_results(
    outfile,
    header: list[str],
    config: dict,
    indices: Iterable[int],
    check_row: Callable[[list[str]], None] | None = None,
) -> ResultsFile:
    """Open OUTFILE for appending rows, creating it (header line, ``OUTFILE.config.json``) or
    resuming it: the stored configuration must equal ``config`` except for
    :data:`RUN_ONLY_FIELDS`; complete rows are kept and a torn last line is cut off.

    ``check_row(cells)`` validates each row read back (raising ValueError or SmoothCertError
    with the reason): a damaged row refuses the file. An OSError (disk full, ...) becomes a
    one-line :class:`SmoothCertError`."""
    check_outfile(outfile)
    path, cpath = Path(outfile), config_path(outfile)
    created = not path.exists()
    create = created or path.stat().st_size == 0 and not cpath.exists()
    try:
        return _open_results(path, cpath, header, config, indices, check_row, create, created)
    except OSError as exc:
        if created:
            path.unlink(missing_ok=True)
            cpath.unlink(missing_ok=True)
        raise _os_error("write", path, exc) from None


def _open_results(
    path: Path,
    cpath: Path,
    header: list[str],
    config: dict,
    indices: Iterable[int],
    check_row,
    create: bool,
    created: bool,
) -> ResultsFile:
    outfile = path
    head = "\t".join(header)
    if create:
        write_json_atomic(cpath, config)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(head + "\n")
            f.flush()
            os.fsync(f.fileno())
        return ResultsFile(path, set(), created=created)
    if not cpath.exists():
        raise SmoothCertError(
            f"{outfile} exists without its configuration {cpath.name}; use a new OUTFILE"
        )
    try:
        stored = json.loads(cpath.read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise SmoothCertError(
            f"unreadable configuration {cpath}: {exc}; use a new OUTFILE"
        ) from None
    diffs = config_differences(stored, config)
    if diffs:
        raise SmoothCertError(
            f"{outfile} was made with another configuration: {', '.join(diffs)}; use a new OUTFILE"
        )
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # a torn last line (no newline) is cut off
    if len(complete) != len(data):
        os.truncate(path, len(complete))
    lines = complete.decode("utf-8", errors="replace").split("\n")[:-1]
    if not lines:  # nothing complete, not even the header: start over
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(head + "\n")
            f.flush()
            os.fsync(f.fileno())
        return ResultsFile(path, set())
    if lines[0] != head:
        raise SmoothCertError(
            f"{outfile} does not start with the header {head.expandtabs(1)!r}; use a new OUTFILE"
        )
    rows = check_rows(
        outfile, lines[1:], len(header), set(indices), check_row, advice="; use a new OUTFILE"
    )
    return ResultsFile(path, set(rows))


def check_rows(
    name, lines, ncols: int, expected=None, check_row=None, advice: str = ""
) -> dict[int, str]:
    """``{idx: line}`` of the rows (the lines after the header) of a results file ``name``.

    A line that is not a row of this run (column count, an index that is not a number, not in
    ``expected`` or repeated) or that ``check_row(cells)`` rejects (ValueError) raises a
    SmoothCertError naming ``name:LINE``, followed by ``advice``."""
    rows: dict[int, str] = {}
    for lineno, line in enumerate(lines, start=2):
        cells = line.split("\t")
        try:
            idx = int(cells[0])
        except ValueError:
            idx = None
        if (
            len(cells) != ncols
            or idx is None
            or idx in rows
            or (expected is not None and idx not in expected)
        ):
            raise SmoothCertError(f"{name}:{lineno}: not a row of this run ({line[:40]!r}){advice}")
        if check_row is not None:
            try:
                check_row(cells)
            except ValueError as exc:  # SmoothCertError too
                raise SmoothCertError(
                    f"{name}:{lineno}: damaged row ({exc}): {line[:60]!r}{advice}"
                ) from None
        rows[idx] = line
    return rows


def read_rows(
    path, expected: set[int] | None = None, header: list[str] | None = None, check_row=None
) -> tuple[list[str], dict[int, str]]:
    """``(header, {idx: row})`` of the complete lines of a results file (a torn last line, still
    being written or left by a crash, is ignored; the file is not modified). ``check_row(cells)``
    validates each row (see :func:`open_results`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SmoothCertError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").split("\n")[:-1]
    if not lines:
        return (list(header) if header else []), {}
    head = lines[0].split("\t")
    if header is not None and head != list(header):
        raise SmoothCertError(f"{path} does not start with the header {' '.join(header)!r}")
    if head[:1] != ["idx"]:
        raise SmoothCertError(f"{path} does not start with a header 'idx ...'")
    rows = check_rows(path, lines[1:], len(head), expected, check_row)
    return head, rows


def format_time(seconds: float) -> str:
    """Elapsed time as the reference writes it: ``str(datetime.timedelta(seconds=...))``."""
    return str(datetime.timedelta(seconds=seconds))


_TIME = re.compile(r"(-?\d+ days?, )?\d{1,2}:\d\d:\d\d(\.\d{1,6})?")


def row_fields_checker(
    dataset, label_col: int = 1, predict_col: int = 2, correct_col: int = -1, time_col: int = -1
) -> Callable[[list[str]], tuple[int, int]]:
    """``check(cells) -> (label, prediction)`` for a row read back on resume: the integer
    columns parse, the label is the data set's label of the row's index, the prediction is a
    class or -1 (abstain), ``correct`` agrees with them and ``time`` is a duration; raises
    ValueError naming the first problem."""
    targets = getattr(dataset, "targets", None)
    num_classes = int(dataset.num_classes)

    def integer(cells, col, name):
        try:
            return int(cells[col])
        except ValueError:
            raise ValueError(f"{name} {cells[col]!r} is not an integer") from None

    def check(cells):
        idx = integer(cells, 0, "idx")
        label = integer(cells, label_col, "label")
        if targets is not None and label != int(targets[idx]):
            raise ValueError(f"label {label} is not the data set's label {int(targets[idx])}")
        prediction = integer(cells, predict_col, "predict")
        if not -1 <= prediction < num_classes:
            raise ValueError(f"predict {prediction} is neither a class nor -1")
        if cells[correct_col] != str(int(prediction == label)):
            raise ValueError(f"correct {cells[correct_col]!r} does not match label and predict")
        if not _TIME.fullmatch(cells[time_col]):
            raise ValueError(f"time {cells[time_col]!r} is not a duration")
        return label, prediction

    return check
