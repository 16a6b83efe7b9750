"""Certify (or predict) a data set with many processes: one shard per process of a torchrun job.

``torchrun --nproc-per-node G [--nnodes M ...] -m smoothcert certify ...`` starts G processes per
node; each one finds its place in the torchrun environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``; ``--distributed`` insists on it) and:

- runs on ``cuda:LOCAL_RANK`` when CUDA is available (``--device cuda`` too; modulo the number of
  visible GPUs), else on the CPU;
- takes the shard ``indices[rank::world_size]`` of the selected indices (round robin: neighbouring
  inputs, often of similar cost, go to different processes);
- writes its rows to its own part file ``OUTFILE.part-RRRRR-of-WWWWW`` (with its configuration
  ``OUTFILE.part-RRRRR-of-WWWWW.config.json``: the run's configuration plus a ``shard`` entry)
  through :func:`smoothcert.results.open_results`, so that a restarted job (torchrun
  ``--max-restarts``, or the same command again) resumes every part file: complete rows kept,
  a torn last line cut, only the missing indices computed;
- at the end, waits for the others (a ``gloo`` barrier; without a process group rank 0 watches
  the part files instead), and rank 0 merges every part into OUTFILE, in index order, written
  atomically with ``OUTFILE.config.json``, then removes the part files;
- rank 0 holds the run's lock on OUTFILE (``OUTFILE.lock``) from the start to the end of the
  merge: another run on the same OUTFILE (one process or a job) is refused, and with a process
  group every rank of the refused job stops.

The noise of input ``idx`` is seeded from ``derive_seed(seed, idx)``, so a row does not depend on
the shard that computes it: the merged file equals the file of one process (the time column
aside), whatever the number of processes, and even when it changes between restarts (part files
of another world size count as done, read only). A run without torchrun whose OUTFILE has part
files continues them as a job of one process. :func:`merge` (``smoothcert merge``) joins part
files by hand: one configuration, no index twice, none missing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import sys
import time
from pathlib import Path

from .errors import SmoothCertError
from .results import (
    RUN_ONLY_FIELDS,
    check_outfile,
    config_differences,
    config_path,
    lock_path,
    open_results,
    outfile_lock,
    read_config,
    read_rows,
    write_json_atomic,
    write_text_atomic,
)

#: the ``shard`` entry of a part file's configuration; it may differ between the parts of a run
SHARD_FIELD = "shard"
#: without a process group, rank 0 gives up waiting for the other part files when none of them
#: has grown for this long (the part files are then merged by the next run or ``smoothcert merge``)
FILE_WAIT_STALL_S = 3600.0
#: how long the processes of a job wait for each other at the end (a slow shard may lag behind)
BARRIER_TIMEOUT = datetime.timedelta(days=30)
#: how long creating the process group may take (all the processes of the job must join)
INIT_TIMEOUT = datetime.timedelta(minutes=30)

_PART = "{name}.part-{rank:05d}-of-{world:05d}"
_MAX_LISTED = 10


def part_path(outfile, rank: int, world_size: int) -> Path:
    p = Path(outfile)
    return p.with_name(_PART.format(name=p.name, rank=rank, world=world_size))


def find_parts(outfile) -> list[tuple[Path, int, int]]:
    """``(path, rank, world_size)`` of every ``OUTFILE.part-R-of-W`` (any world size), sorted."""
    p = Path(outfile)
    pattern = re.compile(re.escape(p.name) + r"\.part-(\d{5,})-of-(\d{5,})")
    found = []
    try:
        names = os.listdir(p.parent if str(p.parent) else ".")
    except OSError:
        return []
    for name in names:
        m = pattern.fullmatch(name)
        if m:
            found.append((p.with_name(name), int(m.group(1)), int(m.group(2))))
    return sorted(found, key=lambda t: (t[2], t[1], t[0].name))


def index_spec(indices: list[int]) -> dict:
    """The selected indices, compactly: ``{"start", "stop", "step"}`` of a range, else a list."""
    indices = [int(i) for i in indices]
    if not indices:
        return {"start": 0, "stop": 0, "step": 1}
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    spec = {"start": indices[0], "stop": indices[-1] + 1, "step": step}
    if step > 0 and list(range(spec["start"], spec["stop"], step)) == indices:
        return spec
    return {"list": indices}


def spec_indices(spec) -> list[int]:
    if not isinstance(spec, dict):
        raise ValueError("no index selection")
    if "list" in spec:
        return [int(i) for i in spec["list"]]
    return list(range(int(spec["start"]), int(spec["stop"]), int(spec["step"])))


def _short(values, limit: int = _MAX_LISTED) -> str:
    values = list(values)
    text = ", ".join(map(str, values[:limit]))
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


# ----------------------------------------------------------------------------- part files
def _differences(stored: dict, new: dict) -> list[str]:
    return config_differences(stored, new, ignore=RUN_ONLY_FIELDS | {SHARD_FIELD})


def _part_shard(path, rank: int | None, world: int | None, config: dict) -> dict:
    shard = config.get(SHARD_FIELD)
    ok = (
        isinstance(shard, dict)
        and isinstance(shard.get("rank"), int)
        and isinstance(shard.get("world_size"), int)
        and isinstance(shard.get("indices"), dict)
    )
    if ok and rank is not None:
        ok = (shard["rank"], shard["world_size"]) == (rank, world)
    if not ok:
        raise SmoothCertError(
            f"{path} is not a part file of a distributed run (its "
            f"configuration has no matching '{SHARD_FIELD}' entry)"
        )
    return shard


# ----------------------------------------------------------------------------- merging
def _without_time(line: str, header: list[str]) -> list[str]:
    cells = line.split("\t")
    if "time" in header:
        del cells[header.index("time")]
    return cells


def merge(outfile, parts=None, *, remove_parts: bool = False) -> tuple[int, int]:
    """Join part files into OUTFILE; returns ``(rows, part files)``.

    ``parts``: paths of part files (default: every ``OUTFILE.part-*``). They must share one
    configuration (apart from :data:`~smoothcert.results.RUN_ONLY_FIELDS` and their ``shard``
    entry) and one header; together with the rows already in OUTFILE (kept when OUTFILE exists
    with the same configuration) they must hold every selected index exactly once (a row of a part
    equal to OUTFILE's, time aside, is one already merged). OUTFILE is written atomically, in
    index order, with ``OUTFILE.config.json`` (OUTFILE's own, else the first part's without
    ``shard``); ``remove_parts`` then deletes the part files and their configurations."""
    out = Path(outfile)
    check_outfile(out)
    paths = _merge_paths(out, parts)
    first_cfg, expected = _parts_config(paths)
    wanted = set(expected)
    header, rows = _parts_rows(paths, wanted)
    out_config = None
    if out.exists() and out.stat().st_size > 0:
        out_config = read_config(out)
        rows = _with_outfile_rows(out, out_config, paths[0], first_cfg, wanted, header, rows)
    missing = [i for i in expected if i not in rows]
    if missing:
        raise SmoothCertError(
            f"missing {len(missing)} of {len(expected)} indices: "
            f"{_short(missing)}; finish the run first (rerun its command)"
        )

    text = "\t".join(header) + "\n" + "".join(rows[i] + "\n" for i in expected)
    try:
        if out_config is None:
            out_config = {k: v for k, v in first_cfg.items() if k != SHARD_FIELD}
            write_json_atomic(config_path(out), out_config)
        write_text_atomic(out, text)
    except OSError as exc:
        raise SmoothCertError(f"cannot write {out}: {exc.strerror or exc}") from None
    if remove_parts:
        for p in paths:
            p.unlink(missing_ok=True)
            config_path(p).unlink(missing_ok=True)
    return len(expected), len(paths)


def _merge_paths(out: Path, parts) -> list[Path]:
    """The part files to merge: ``parts``, or every ``OUTFILE.part-*``; each an existing file,
    given once, and not OUTFILE itself."""
    if parts is None:
        found = [p for p, _, _ in find_parts(out)]
        if not found:
            raise SmoothCertError(f"no part files {out.name}.part-* next to {out}")
        parts = found
    paths, seen = [], set()
    for p in map(Path, parts):
        key = p.resolve()
        if key == out.resolve():
            raise SmoothCertError(f"OUTFILE {out} is also given as a part file")
        if key in seen:
            raise SmoothCertError(f"part file {p} is given twice")
        if not p.is_file():
            raise SmoothCertError(f"part file {p} not found")
        seen.add(key)
        paths.append(p)
    if not paths:
        raise SmoothCertError("no part files to merge")
    return paths


def _parts_config(paths: list[Path]) -> tuple[dict, list[int]]:
    """``(configuration, selected indices)`` of the first part file; every part must have its
    configuration (``shard`` aside) and index selection."""
    configs = [read_config(p, "part file") for p in paths]
    shards = [_part_shard(p, None, None, c) for p, c in zip(paths, configs, strict=True)]
    first, first_cfg = paths[0], configs[0]
    for p, c, s in zip(paths[1:], configs[1:], shards[1:], strict=True):
        diffs = _differences(first_cfg, c)
        if diffs:
            raise SmoothCertError(
                f"{p} was made with another configuration than {first}: {', '.join(diffs)}"
            )
        if s["indices"] != shards[0]["indices"]:
            raise SmoothCertError(f"{p} selects other indices than {first}")
    try:
        expected = spec_indices(shards[0]["indices"])
    except (KeyError, TypeError, ValueError):
        raise SmoothCertError(f"{config_path(first)}: unreadable index selection") from None
    return first_cfg, expected


def _parts_rows(paths: list[Path], wanted: set[int]) -> tuple[list[str], dict[int, str]]:
    """``(header, {idx: row})`` of the part files: one header, no index in two parts."""
    header = next((h for h in (read_rows(p, wanted)[0] for p in paths) if h), None)
    if header is None:
        raise SmoothCertError("the part files are empty (not even a header)")
    rows: dict[int, str] = {}
    where: dict[int, list[str]] = {}
    for p in paths:
        _, got = read_rows(p, wanted, header)
        for idx, line in got.items():
            where.setdefault(idx, []).append(p.name)
            rows[idx] = line
    dups = sorted(i for i, names in where.items() if len(names) > 1)
    if dups:
        listed = "; ".join(f"{i} in {' and '.join(where[i])}" for i in dups[:_MAX_LISTED])
        more = f"; ... ({len(dups)} in all)" if len(dups) > _MAX_LISTED else ""
        raise SmoothCertError(f"duplicated indices: {listed}{more}")
    return header, rows


def _with_outfile_rows(
    out: Path,
    out_config: dict,
    first: Path,
    first_cfg: dict,
    wanted: set[int],
    header: list[str],
    rows: dict[int, str],
) -> dict[int, str]:
    """The parts' rows joined with those already in OUTFILE: same configuration, and a row in
    both the same (time aside)."""
    diffs = _differences(out_config, first_cfg)
    if diffs:
        raise SmoothCertError(
            f"{out} was made with another configuration than {first}: "
            f"{', '.join(diffs)}; use a new OUTFILE"
        )
    _, have = read_rows(out, wanted, header)
    clash = sorted(
        i
        for i, line in have.items()
        if i in rows and _without_time(line, header) != _without_time(rows[i], header)
    )
    if clash:
        raise SmoothCertError(
            f"indices {_short(clash)} of {out} differ from those of the part files"
        )
    return {**have, **rows}


# ----------------------------------------------------------------------------- jobs
class LocalJob:
    """One process, no sharding: the plain behaviour of certify and predict."""

    rank, world_size, local_rank = 0, 1, 0

    def resolve_device(self, name):
        from .device import resolve_device

        return resolve_device(name)

    def shard(self, indices):
        return list(indices)

    def desc(self, name: str) -> str:
        return name

    def open_results(self, outfile, header, config, indices, check_row=None):
        return open_results(outfile, header, config, indices, check_row)

    def lock(self, outfile):
        """The run's exclusive lock on OUTFILE (:func:`~smoothcert.results.outfile_lock`),
        held from before OUTFILE is read until after :meth:`finish`."""
        return outfile_lock(outfile)

    def finish(self) -> int:
        return 0


class _Nothing:
    """Results of a shard with nothing left to do (OUTFILE already complete): writes nothing."""

    def __init__(self, done):
        self.done = set(done)

    def write_row(self, line):  # pragma: no cover - never called: nothing is left to do
        raise RuntimeError("nothing to write")

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class ShardJob(LocalJob):
    """Process ``rank`` of ``world_size``: see the module's documentation."""

    def __init__(self, rank: int, world_size: int, local_rank: int, *, group: bool):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.group = False
        self.outfile = self.indices = None
        self.complete = False
        if group and world_size > 1:
            self.group = self._init_group()

    def _log(self, message: str, all_ranks: bool = False) -> None:
        if all_ranks or self.rank == 0:
            print(f"# [rank {self.rank}/{self.world_size}] {message}", file=sys.stderr, flush=True)

    def _init_group(self) -> bool:
        try:
            import torch.distributed as dist

            if not dist.is_available():
                raise RuntimeError("torch.distributed is not available")
            if not dist.is_initialized():
                dist.init_process_group("gloo", timeout=INIT_TIMEOUT)
            return True
        except Exception as exc:  # no network, no gloo: fall back to watching the files
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._log(
                f"no process group ({msg}); rank 0 waits for the part files instead", all_ranks=True
            )
            return False

    def resolve_device(self, name):
        import torch

        if name in (None, "cuda") and torch.cuda.is_available():
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
            torch.cuda.set_device(device)
            return device
        return super().resolve_device(name)

    def shard(self, indices):
        return list(indices)[self.rank :: self.world_size]

    @contextlib.contextmanager
    def lock(self, outfile):
        """Rank 0 holds the lock on OUTFILE for the whole job (it outlives the other ranks: it
        merges the part files at the end); with a process group every rank learns whether it
        got it, and all of them refuse together when another run holds it. Without a process
        group only rank 0 refuses (the other ranks cannot know)."""
        with contextlib.ExitStack() as stack:
            error = None
            if self.rank == 0:
                try:
                    stack.enter_context(outfile_lock(outfile))
                except SmoothCertError as exc:
                    error = exc
            if self.group:
                import torch
                import torch.distributed as dist

                flag = torch.tensor([int(error is not None)])
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                if flag.item() and error is None:
                    error = SmoothCertError(
                        f"{outfile} is in use: another smoothcert run holds "
                        f"its lock {lock_path(outfile).name} (seen "
                        "by rank 0 of this job)"
                    )
            if error is not None:
                if self.group:
                    import torch.distributed as dist

                    dist.destroy_process_group()
                raise error
            yield

    def desc(self, name: str) -> str:
        return f"{name} [{self.rank}/{self.world_size}]"

    def open_results(self, outfile, header, config, indices, check_row=None):
        """Open this process's part file (resuming it); ``done`` also holds the indices of its
        shard already in OUTFILE or in part files of another world size (every row read back is
        validated by ``check_row``)."""
        out = Path(outfile)
        check_outfile(out)
        indices = list(indices)
        wanted, spec = set(indices), index_spec(indices)
        self.outfile, self.indices = out, indices
        done: set[int] = set()
        cpath = config_path(out)
        if out.exists() and (out.stat().st_size > 0 or cpath.exists()):
            diffs = _differences(read_config(out), config)
            if diffs:
                raise SmoothCertError(
                    f"{out} was made with another configuration: "
                    f"{', '.join(diffs)}; use a new OUTFILE"
                )
            done |= set(read_rows(out, wanted, header, check_row)[1])
        if wanted <= done:
            self.complete = True
            self._log(f"{out} already holds every row: nothing to do")
            return _Nothing(wanted)
        mine = part_path(out, self.rank, self.world_size)
        for path, rank, world in find_parts(out):
            stored = read_config(path, "part file")
            diffs = _differences(stored, config)
            if diffs:
                raise SmoothCertError(
                    f"{path} was made with another configuration: "
                    f"{', '.join(diffs)}; delete {out.name}.part-* or use a "
                    "new OUTFILE"
                )
            if _part_shard(path, rank, world, stored)["indices"] != spec:
                raise SmoothCertError(
                    f"{path} selects other indices; delete {out.name}.part-* or use a new OUTFILE"
                )
            if world != self.world_size:  # an earlier run with another number of processes
                done |= set(read_rows(path, wanted, header, check_row)[1])
        shard = self.shard(indices)
        part_config = {
            **config,
            SHARD_FIELD: {
                "rank": self.rank,
                "world_size": self.world_size,
                "assignment": "round-robin",
                "indices": spec,
            },
        }
        results = open_results(mine, header, part_config, shard, check_row)
        results.done |= done & set(shard)
        return results

    def _missing(self) -> list[int]:
        rows: set[int] = set()
        wanted = set(self.indices)
        if self.outfile.exists():
            rows |= set(read_rows(self.outfile, wanted)[1])
        for path, _, _ in find_parts(self.outfile):
            try:
                rows |= set(read_rows(path, wanted)[1])
            except SmoothCertError:
                if path.exists():
                    raise
        return [i for i in self.indices if i not in rows]

    def _wait_for_files(self) -> bool:
        """Without a process group: wait until the part files hold every row (True), or until
        none of them has grown for :data:`FILE_WAIT_STALL_S` seconds (False)."""
        last, since, pause = None, time.monotonic(), 0.2
        while True:
            if not self._missing():
                return True
            sizes = []
            for p, _, _ in find_parts(self.outfile):
                try:
                    sizes.append((p.name, p.stat().st_size))
                except OSError:
                    pass
            if sizes != last:
                last, since = sizes, time.monotonic()
            elif time.monotonic() - since >= FILE_WAIT_STALL_S:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 10.0)

    def finish(self) -> int:
        """Wait for the other processes; rank 0 merges the part files into OUTFILE."""
        if self.group:
            import torch.distributed as dist

            if not self.complete:
                dist.monitored_barrier(timeout=BARRIER_TIMEOUT, wait_all_ranks=True)
            dist.destroy_process_group()
        if self.complete or self.rank != 0:
            return 0
        if not self.group and not self._wait_for_files():
            missing = self._missing()
            self._log(
                f"{len(missing)} rows are still missing ({_short(missing)}) and the part "
                "files stopped growing: rerun the command to finish them (or merge them "
                f"later: smoothcert merge {self.outfile})"
            )
            return 0
        rows, parts = merge(self.outfile, remove_parts=True)
        self._log(
            f"merged {rows} rows from {parts} part file{'s' * (parts != 1)} into {self.outfile}"
        )
        return 0


def _env_int(name: str, env) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SmoothCertError(f"environment variable {name}={value!r} is not an integer") from None


def job_for(outfile, *, distributed: bool = False, env=None) -> LocalJob:
    """The job of this process for a run into ``outfile``: a shard of a torchrun job when
    ``RANK`` and ``WORLD_SIZE`` are set (``distributed`` requires them), a job of one process
    continuing part files when OUTFILE has some, else a plain :class:`LocalJob`."""
    env = os.environ if env is None else env
    rank, world = _env_int("RANK", env), _env_int("WORLD_SIZE", env)
    if rank is None or world is None:
        if distributed:
            raise SmoothCertError(
                "--distributed needs the environment of torchrun (RANK, "
                "WORLD_SIZE, LOCAL_RANK): launch with torchrun "
                "--nproc-per-node G -m smoothcert ..."
            )
        if find_parts(outfile):
            print(
                f"# {outfile} has part files of a distributed run: continuing them in this process",
                file=sys.stderr,
            )
            return ShardJob(0, 1, 0, group=False)
        return LocalJob()
    if world < 1 or not 0 <= rank < world:
        raise SmoothCertError(
            f"RANK={rank} and WORLD_SIZE={world} do not describe a process "
            "of a job (0 <= RANK < WORLD_SIZE)"
        )
    local = _env_int("LOCAL_RANK", env)
    local = rank if local is None else local
    if local < 0:
        raise SmoothCertError(f"LOCAL_RANK={local} must be >= 0")
    group = bool(env.get("MASTER_ADDR")) and bool(env.get("MASTER_PORT"))
    return ShardJob(rank, world, local, group=group)
