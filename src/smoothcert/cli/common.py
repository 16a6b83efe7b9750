"""Shared pieces of the commands that run a smoothed classifier over a dataset (certify, predict).

One way to do each thing:

- :func:`add_noise_arguments`: the options that define a noise (and its certificate);
  :func:`noise_from_args` builds it for a given input dimension.
- :func:`add_run_arguments` / :func:`check_run_args`: DATASET CHECKPOINT OUTFILE and the options of
  the reference scripts (``--batch --skip --max --split``) plus ``--data-dir --device --seed``.
- :func:`load_data`, :func:`load_model` (with :func:`file_sha256`), :func:`resolve_device`,
  :func:`probe_model`: inputs, checked, every problem a one-line :class:`SmoothCertError`.
- :func:`select_indices`: the reference's row order (every ``skip``-th index from ``start``,
  stopping at ``max``).
- :func:`train_noise`: the noise a checkpoint records it was trained with (``train_noise`` of the
  configuration), or None.
- :class:`ResultsFile` / :func:`open_results`: the tab-separated results file and its
  ``OUTFILE.config.json``; rows are flushed and fsynced as computed, and re-running the same
  command resumes (complete rows kept, a torn last line cut, only missing indices computed).
- :func:`outfile_lock`: one run per OUTFILE at a time (an exclusive lock on ``OUTFILE.lock``;
  a second run is refused, it would append the same rows again).
- :func:`run_with_progress`: runs a command's ``*_indices`` core under a tqdm bar on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import SmoothCertError

#: the noise families (``smoothcert.noises.FAMILIES``; named here so that building a command's
#: parser does not import torch)
NOISE_NAMES = ("gaussian", "l2-family", "linf-mixed", "linf-pure")


class DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, except for a help text that already says its default
    (``(default: cuda when available, else cpu)`` is not followed by ``(default: None)``)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)

#: the most samples a command accepts (--N, --N0, --cert-samples): 2^40 = 1.1e12 samples take
#: days per input at any speed, and counts stay exact in float64 (a larger N never ends)
MAX_SAMPLES = 2**40
#: seeds are integers in [0, MAX_SEED) (numpy and torch generators take 64 bits)
MAX_SEED = 2**63

#: configuration fields that do not change results: they may differ when a run is resumed
RUN_ONLY_FIELDS = frozenset({"command", "batch", "device", "checkpoint", "data_dir", "sigma0",
                             "started", "failure_prob", "confidence"})
#: configuration fields added after results files were written without them; a stored
#: configuration without the field is compared as if it held this value (``start``: those runs
#: began at index 0), or not compared at all for ``None`` (``train_noise`` is read from the
#: checkpoint, which ``checkpoint_sha256`` already pins)
LATER_FIELDS = {"start": 0, "train_noise": None}


# ----------------------------------------------------------------------------- arguments
def add_noise_arguments(parser: argparse.ArgumentParser, *, dim: bool = False,
                        certificate: bool = True) -> None:
    """The options that define a noise; ``dim`` adds ``--dim`` (commands without data),
    ``certificate`` adds the threat model and the Monte Carlo certificate options."""
    from ..certificates import DEFAULT_FAILURE_PROB, DEFAULT_SAMPLES

    g = parser.add_argument_group("noise")
    g.add_argument("--noise", choices=NOISE_NAMES, default="gaussian",
                   help="smoothing noise family (default: gaussian)")
    if dim:
        g.add_argument("--dim", type=int, required=True, help="input dimension d")
    g.add_argument("--k", type=float, default=0.0,
                   help="shape parameter k (0 <= k < d; default: 0)")
    s = g.add_mutually_exclusive_group(required=True)
    s.add_argument("--sigma", type=float, help="scale parameter sigma of the noise")
    s.add_argument("--sigma0", type=float,
                   help="match a Gaussian N(0, sigma0^2): sigma = sqrt((d-1)/(d-1-k)) sigma0")
    if certificate:
        g.add_argument("--norm", choices=["l2", "linf"], default="l2",
                       help="threat model (default: l2)")
        g.add_argument("--cert-samples", type=int, default=DEFAULT_SAMPLES,
                       help="Monte Carlo samples of a certificate table (l-inf families; "
                            f"default: {DEFAULT_SAMPLES})")
        g.add_argument("--cert-failure-prob", type=float, default=DEFAULT_FAILURE_PROB,
                       help="failure probability of a Monte Carlo certificate table "
                            f"(default: {DEFAULT_FAILURE_PROB:g})")


def noise_from_args(args, dim: int):
    from ..noises import make_noise

    return make_noise(args.noise, dim, k=args.k, sigma=args.sigma, sigma0=args.sigma0)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """DATASET CHECKPOINT OUTFILE and the options shared by certify and predict."""
    parser.add_argument("dataset", metavar="DATASET",
                        help="digits, digits32 (digits at 3x32x32), cifar10, imagenet, "
                        "or a path to a dataset")
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="saved base classifier ({'arch', 'state_dict', ...})")
    parser.add_argument("outfile", metavar="OUTFILE",
                        help="tab-separated results; its configuration goes to "
                             "OUTFILE.config.json; re-running the same command resumes")
    parser.add_argument("--batch", type=int, default=1000, help="batch size (default: 1000)")
    parser.add_argument("--skip", type=int, default=1,
                        help="use every skip-th example (default: 1)")
    parser.add_argument("--start", type=int, default=0,
                        help="first index: the inputs are start, start + skip, ... (disjoint "
                             "subsets of one split: e.g. --start 0 and --start 6 with --skip "
                             "12; default: 0)")
    parser.add_argument("--max", type=int, default=-1,
                        help="stop at this index (default: -1, the whole split)")
    parser.add_argument("--split", choices=["train", "test"], default="test",
                        help="dataset split (default: test)")
    parser.add_argument("--data-dir", default=None, help="where the dataset lives")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed; the noise of input idx is seeded from (seed, idx) "
                             "(default: 0)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (default: bars on stderr)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="also load a CHECKPOINT that is a pickled module, a TorchScript or "
                             "a torch.export file: this runs code stored in the file, so only "
                             "for a file from a trusted source (default: tensors and plain "
                             "data only)")
    # -- distributed runs (smoothcert.distributed) --
    parser.add_argument("--distributed", action="store_true",
                        help="one shard per process of a torchrun job (automatic when RANK and "
                             "WORLD_SIZE are set; this flag makes them required): rows go to "
                             "OUTFILE.part-R-of-W, merged into OUTFILE at the end")


def check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if value is None or value < minimum:
        raise SmoothCertError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_samples(name: str, value: int, minimum: int = 1) -> int:
    """A number of samples: ``minimum <= value <= MAX_SAMPLES`` (2^40)."""
    check_positive_int(name, value, minimum)
    if value > MAX_SAMPLES:
        raise SmoothCertError(f"{name} must be at most 2^40 = {MAX_SAMPLES} (a run with more "
                              f"samples would not end), got {value}")
    return value


def check_seed(value: int, name: str = "--seed") -> int:
    if value is None or not 0 <= value < MAX_SEED:
        raise SmoothCertError(f"{name} must be an integer in [0, 2^63), got {value}")
    return value


def check_alpha(value: float, name: str = "--alpha") -> float:
    if not (math.isfinite(value) and 0 < value < 1):
        raise SmoothCertError(f"{name} must lie strictly between 0 and 1, got {value}")
    return value


def check_run_args(args) -> None:
    """Checks of the shared options, before anything is loaded or written."""
    check_positive_int("--batch", args.batch)
    check_positive_int("--skip", args.skip)
    check_positive_int("--start", args.start, 0)
    check_positive_int("--max", args.max, -1)
    if args.max == 0:
        raise SmoothCertError("--max 0 selects no input (--max is the index to stop at; -1: "
                              "the whole split)")
    check_seed(args.seed)
    check_outfile(args.outfile)


def format_command(name: str, positionals: Iterable, options: dict) -> str:
    """``smoothcert NAME POS... --opt value ...`` (None and False options left out; a list or
    tuple gives its values after the flag: ``--radii 0.25 0.5``)."""
    words = ["smoothcert", name, *map(str, positionals)]
    for flag, value in options.items():
        if value is None or value is False:
            continue
        words.append(flag)
        if isinstance(value, (list, tuple)):
            words.extend(map(str, value))
        elif value is not True:
            words.append(str(value))
    return shlex.join(words)


# ----------------------------------------------------------------------------- inputs
def resolve_device(name: str | None):
    from ..smooth import resolve_device

    return resolve_device(name)


def load_data(args):
    """The dataset of ``args.dataset`` / ``args.split`` / ``args.data_dir``."""
    from ..data import load_dataset

    try:
        return load_dataset(args.dataset, args.split, root=args.data_dir)
    except SmoothCertError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(f"cannot load dataset {args.dataset!r} ({args.split}): {msg}") \
            from None


def file_sha256(path) -> str:
    if Path(path).is_dir():  # a Hugging Face model folder
        from ..models.pretrained import dir_sha256

        return dir_sha256(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_model(path: str, dataset: str, device, trust: bool = False):
    """``(model, meta)`` from a checkpoint file, in eval mode on ``device``; ``trust`` lets
    it run code stored in the file (``--trust-checkpoint``, see ``load_checkpoint``)."""
    from ..models import load_checkpoint

    p = Path(path)
    if not p.exists():
        raise SmoothCertError(f"checkpoint {path} not found")
    if not p.is_file() and not p.is_dir():  # a folder: a Hugging Face model, or an error
        raise SmoothCertError(f"checkpoint {path} is not a file")
    try:
        return load_checkpoint(str(p), dataset=dataset, device=device, trust=trust)
    except SmoothCertError:
        raise
    except Exception as exc:  # unreadable pickle, wrong state dict, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(f"cannot load checkpoint {path}: {msg}") from None


def probe_model(model, x, dataset, device) -> None:
    """Run the model once on a clean input: a clear error when it does not fit the data.

    The model's outputs must be the data set's classes. A data set that read its number of
    classes off its labels (``num_classes_inferred``: a .npz / .pt file) may hold a subset of
    the model's classes: it then takes the model's number of outputs."""
    import torch

    num_classes = int(dataset.num_classes)
    try:
        with torch.no_grad():
            out = model(x.unsqueeze(0).to(device))
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(f"the model does not accept inputs of shape {tuple(x.shape)} "
                              f"from this dataset: {msg}") from None
    if (getattr(dataset, "num_classes_inferred", False) and isinstance(out, torch.Tensor)
            and out.dim() == 2 and out.shape[0] == 1 and out.shape[1] >= num_classes):
        dataset.num_classes = num_classes = int(out.shape[1])  # labels: some of its classes
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SmoothCertError(f"the model returns {shape} for one input; the dataset has "
                              f"{num_classes} classes, expected (1, {num_classes})")


def select_indices(length: int, skip: int, max_index: int, start: int = 0) -> list[int]:
    """The reference loop: every ``skip``-th index of the split from ``start`` (0 in the
    reference), stopping at index ``max`` (``-1``: no limit). ``0 <= start < length``; no index
    at all is an error (no header-only OUTFILE is written)."""
    if not 0 <= start < length:
        raise SmoothCertError(f"--start must lie in [0, {length}) (the split has {length} "
                              f"inputs), got {start}")
    stop = length if max_index < 0 else min(length, max_index)
    indices = list(range(start, stop, skip))
    if not indices:
        raise SmoothCertError(f"no input selected (split of {length}, --start {start}, "
                              f"--max {max_index}): nothing to do")
    return indices


def _plain_number(value) -> float | None:
    """``value`` as a finite float when it is a plain int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def train_noise(meta: dict) -> dict | None:
    """``{"noise", "k", "sigma", "sigma0"}``: the noise the checkpoint of ``meta`` (from
    :func:`load_model`) records it was trained with (``config`` of a ``smoothcert train``
    checkpoint, else its ``noise`` entry); ``sigma`` 0 is clean training. None when the file
    does not record it (reference checkpoints of Cohen et al., pretrained models) or records it
    in another shape (a file's entries are data to check, not to trust)."""
    for entry in (meta.get("config"), meta.get("noise")):
        if not isinstance(entry, dict):
            continue
        name = entry.get("noise", entry.get("name"))
        k, sigma = _plain_number(entry.get("k")), _plain_number(entry.get("sigma"))
        sigma0 = entry.get("sigma0")
        if sigma0 is not None:
            sigma0 = _plain_number(sigma0)
            if sigma0 is None:
                continue
        if name in NOISE_NAMES and k is not None and sigma is not None and k >= 0 \
                and sigma >= 0:
            return {"noise": name, "k": k, "sigma": sigma, "sigma0": sigma0}
    return None


# ----------------------------------------------------------------------------- results
def config_path(outfile) -> Path:
    return Path(str(outfile) + ".config.json")


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


def check_outfile(outfile) -> None:
    p = Path(outfile)
    if p.is_dir():
        raise SmoothCertError(f"OUTFILE {outfile} is a directory")
    parent = p.resolve().parent
    if not parent.is_dir():  # created, as train and demo create their folders
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SmoothCertError(f"cannot create the directory {parent} of OUTFILE: "
                                  f"{exc.strerror or exc}") from None
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


def lock_path(outfile) -> Path:
    return Path(str(outfile) + ".lock")


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
        print(f"# warning: cannot lock {path} on this system; run one command per OUTFILE",
              file=sys.stderr)
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
            raise SmoothCertError(f"{outfile} is in use: another smoothcert run{who} holds its "
                                  f"lock {path.name}; wait for it to end or use another "
                                  "OUTFILE") from None
        except OSError as exc:
            os.close(fd)
            print(f"# warning: cannot lock {path} ({exc.strerror or exc}); run one command "
                  "per OUTFILE", file=sys.stderr)
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
    whole = {k for k in set(stored) ^ set(new)
             if isinstance(stored.get(k, new.get(k)), dict) and k not in ignore}
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


def _write_json_atomic(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


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


def open_results(outfile, header: list[str], config: dict, indices: Iterable[int],
                 check_row: Callable[[list[str]], None] | None = None) -> ResultsFile:
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


def _open_results(path: Path, cpath: Path, header: list[str], config: dict,
                  indices: Iterable[int], check_row, create: bool, created: bool
                  ) -> ResultsFile:
    outfile = path
    head = "\t".join(header)
    if create:
        _write_json_atomic(cpath, config)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(head + "\n")
            f.flush()
            os.fsync(f.fileno())
        return ResultsFile(path, set(), created=created)
    if not cpath.exists():
        raise SmoothCertError(f"{outfile} exists without its configuration {cpath.name}; "
                              "use a new OUTFILE")
    try:
        stored = json.loads(cpath.read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise SmoothCertError(f"unreadable configuration {cpath}: {exc}; use a new OUTFILE") \
            from None
    diffs = config_differences(stored, config)
    if diffs:
        raise SmoothCertError(f"{outfile} was made with another configuration: "
                              f"{', '.join(diffs)}; use a new OUTFILE")
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]  # a torn last line (no newline) is cut off
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
        raise SmoothCertError(f"{outfile} does not start with the header "
                              f"{head.expandtabs(1)!r}; use a new OUTFILE")
    rows = check_rows(outfile, lines[1:], len(header), set(indices), check_row,
                      advice="; use a new OUTFILE")
    return ResultsFile(path, set(rows))


def check_rows(name, lines, ncols: int, expected=None, check_row=None,
               advice: str = "") -> dict[int, str]:
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
        if len(cells) != ncols or idx is None or idx in rows or \
                (expected is not None and idx not in expected):
            raise SmoothCertError(f"{name}:{lineno}: not a row of this run "
                                  f"({line[:40]!r}){advice}")
        if check_row is not None:
            try:
                check_row(cells)
            except ValueError as exc:  # SmoothCertError too
                raise SmoothCertError(f"{name}:{lineno}: damaged row ({exc}): "
                                      f"{line[:60]!r}{advice}") from None
        rows[idx] = line
    return rows


_TIME = re.compile(r"(-?\d+ days?, )?\d{1,2}:\d\d:\d\d(\.\d{1,6})?")


def row_fields_checker(dataset, label_col: int = 1, predict_col: int = 2, correct_col: int = -1,
                       time_col: int = -1) -> Callable[[list[str]], tuple[int, int]]:
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


def format_time(seconds: float) -> str:
    """Elapsed time as the reference writes it: ``str(datetime.timedelta(seconds=...))``."""
    return str(datetime.timedelta(seconds=seconds))


def run_with_progress(indices: list[int], run: Callable[[list[int], Callable], None],
                      desc: str, total: int | None = None, enabled: bool = True) -> None:
    """``run(indices, progress)`` under a tqdm progress bar with ETA on stderr; ``run`` calls
    ``progress(1)`` after each input. ``total`` counts the inputs already done too;
    ``enabled=False`` (``--no-progress``) shows no bar."""
    from tqdm.auto import tqdm

    total = len(indices) if total is None else total
    with tqdm(total=total, initial=total - len(indices), desc=desc, unit="input",
              file=sys.stderr, dynamic_ncols=True, disable=not enabled) as bar:
        run(indices, bar.update)
