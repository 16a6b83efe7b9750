"""Distributed certification: torchrun shards, part files, resume, ``smoothcert merge``.

Real torchrun jobs (2 CPU processes, gloo) run as subprocesses; the other tests play the processes
of a job one after the other in this process (RANK / WORLD_SIZE set, no process group)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import JOB_ENV

from smoothcert import distributed
from smoothcert.cli.main import main
from smoothcert.results import config_path

FAST = ["--sigma", "0.25", "--device", "cpu", "--N0", "10", "--N", "100", "--skip", "40"]
SELECTED = list(range(0, 360, 40))  # digits test split: 360 inputs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Like the processes of torchrun (OMP_NUM_THREADS=1): faster here on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def single_run(checkpoint, out, *extra):
    assert main(["certify", "digits", checkpoint, str(out), *FAST, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def reference(checkpoint, tmp_path_factory):
    """One uninterrupted single-process run (shared: copy, do not modify)."""
    return single_run(checkpoint, tmp_path_factory.mktemp("ref") / "ref.tsv")


def rows(path):
    """The lines of a results file without the time column."""
    return [
        "\t".join(c for j, c in enumerate(line.split("\t")) if j != 5)
        for line in path.read_text().splitlines()
    ]


def leftovers(out):
    return sorted(p.name for p in out.parent.iterdir() if ".part-" in p.name)


def run_rank(checkpoint, out, rank, world, *extra, argv=None):
    """Process ``rank`` of a job of ``world`` processes, without a process group."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RANK", str(rank))
        mp.setenv("WORLD_SIZE", str(world))
        mp.setenv("LOCAL_RANK", str(rank))
        return main(argv or ["certify", "digits", checkpoint, str(out), *FAST, *extra])


def make_parts(checkpoint, out, world, ranks=None):
    """Part files of a job of ``world`` processes, left unmerged (rank 0 stops waiting)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed, "FILE_WAIT_STALL_S", 0.0)
        for rank in range(world) if ranks is None else ranks:
            assert run_rank(checkpoint, out, rank, world) == 0
    return [distributed.part_path(out, r, world) for r in range(world)]


def torchrun(checkpoint, out, *extra, log=None):
    env = {k: v for k, v in os.environ.items() if k not in JOB_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "localhost:0",
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.1",
        "-m",
        "smoothcert",
        "certify",
        "digits",
        checkpoint,
        str(out),
        *FAST,
        *extra,
    ]
    if log is not None:  # started, not waited for
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


# ----------------------------------------------------------------------------- torchrun
def test_torchrun_two_processes_equal_one(checkpoint, reference, tmp_path):
    out = tmp_path / "dist.tsv"
    proc = torchrun(checkpoint, out)
    assert rows(out) == rows(reference)
    assert "merged 9 rows from 2 part files" in proc.stderr
    assert leftovers(out) == []  # part files merged and removed
    cfg = json.loads((tmp_path / "dist.tsv.config.json").read_text())
    ref_cfg = json.loads(reference.with_name("ref.tsv.config.json").read_text())
    assert "shard" not in cfg
    assert {k: v for k, v in cfg.items() if k not in ("command", "started")} == {
        k: v for k, v in ref_cfg.items() if k not in ("command", "started")
    }


def test_torchrun_job_killed_then_rerun(checkpoint, tmp_path):
    slow = ["--N", "1000"]  # a few seconds of work, to kill the job in the middle
    ref = single_run(checkpoint, tmp_path / "ref.tsv", *slow)
    out = tmp_path / "killed.tsv"
    parts = [distributed.part_path(out, r, 2) for r in range(2)]
    with open(tmp_path / "log.txt", "w") as log:
        proc = torchrun(checkpoint, out, *slow, log=log)
        deadline, killed = time.monotonic() + 120, False
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p.read_text().count("\n") - 1 if p.exists() else 0 for p in parts]
            if sum(done) >= 2:  # the launcher and its workers (sessions of their own), at once
                for pid in [proc.pid, *children(proc.pid)]:
                    os.kill(pid, signal.SIGKILL)
                killed = not out.exists()
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    if not killed:
        pytest.skip("the job finished before it could be killed")
    longest = max((p for p in parts if p.exists()), key=lambda p: p.stat().st_size)
    with open(longest, "a") as f:  # and a torn row, as a crash in the middle of a write leaves
        f.write("40\t3\t")
    torchrun(checkpoint, out, *slow)
    assert rows(out) == rows(ref)
    assert leftovers(out) == []


# ----------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("world", [2, 3])
def test_rows_do_not_depend_on_the_number_of_processes(
    capsys, checkpoint, reference, tmp_path, world
):
    out = tmp_path / "w.tsv"
    for rank in reversed(range(world)):  # rank 0 last: it finds every part complete and merges
        assert run_rank(checkpoint, out, rank, world) == 0
        if rank:
            part = distributed.part_path(out, rank, world)
            assert [int(r.split("\t")[0]) for r in rows(part)[1:]] == SELECTED[rank::world]
            cfg = json.loads(config_path(part).read_text())
            assert cfg["shard"]["rank"] == rank and cfg["shard"]["world_size"] == world
    assert f"merged 9 rows from {world} part files" in capsys.readouterr().err
    assert rows(out) == rows(reference)
    assert leftovers(out) == []


def test_torn_parts_resume_with_another_number_of_processes(checkpoint, reference, tmp_path):
    out = tmp_path / "r.tsv"
    p0, p1 = make_parts(checkpoint, out, 2)
    lines = p0.read_text().splitlines(keepends=True)  # rows 0 80 160 240 320
    p0.write_text("".join(lines[:3]) + lines[3][:7])  # crash in the middle of row 160
    lines = p1.read_text().splitlines(keepends=True)  # rows 40 120 200 280
    p1.write_text("".join(lines[:2]))  # rows 120 200 280 lost
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed, "FILE_WAIT_STALL_S", 0.0)
        for rank in (2, 1, 0):  # restarted with 3 processes
            assert run_rank(checkpoint, out, rank, 3) == 0
    assert rows(out) == rows(reference)
    assert leftovers(out) == []
    before = out.read_text()
    assert run_rank(checkpoint, out, 1, 2) == 0  # complete: nothing to do
    assert main(["certify", "digits", checkpoint, str(out), *FAST]) == 0
    assert out.read_text() == before


def test_single_process_run_continues_part_files(capsys, checkpoint, reference, tmp_path):
    out = tmp_path / "s.tsv"
    make_parts(checkpoint, out, 2, ranks=[1])  # rank 0 never ran
    capsys.readouterr()
    assert main(["certify", "digits", checkpoint, str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert "part files of a distributed run" in err and "merged 9 rows from 2 part files" in err
    assert rows(out) == rows(reference)
    assert leftovers(out) == []


def test_sharded_job_continues_a_single_process_file(checkpoint, reference, tmp_path):
    out = tmp_path / "p.tsv"
    shutil.copy(str(reference) + ".config.json", str(out) + ".config.json")
    lines = reference.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][:5])  # rows 0 40 80, then a crash
    make_parts(checkpoint, out, 2, ranks=[1])
    assert [r.split("\t")[0] for r in rows(distributed.part_path(out, 1, 2))] == [
        "idx",
        "120",
        "200",
        "280",
    ]  # 40 is in OUTFILE already
    assert run_rank(checkpoint, out, 0, 2) == 0
    assert rows(out) == rows(reference)
    assert leftovers(out) == []


def test_distributed_predict(checkpoint, tmp_path):
    single, out = tmp_path / "single.tsv", tmp_path / "pred.tsv"
    opts = ["--sigma", "0.25", "--device", "cpu", "--N", "100", "--skip", "40"]
    assert main(["predict", "digits", checkpoint, str(single), *opts]) == 0
    for rank in (1, 0):
        argv = ["predict", "digits", checkpoint, str(out), *opts]
        assert run_rank(checkpoint, out, rank, 2, argv=argv) == 0
    assert leftovers(out) == []
    assert [r.split("\t")[:4] for r in out.read_text().splitlines()] == [
        r.split("\t")[:4] for r in single.read_text().splitlines()
    ]


# ----------------------------------------------------------------------------- merge
def test_merge_command(capsys, checkpoint, reference, tmp_path):
    out = tmp_path / "m.tsv"
    p0, p1 = make_parts(checkpoint, out, 2)
    capsys.readouterr()
    assert main(["merge", str(out), str(p1)]) == 2  # rank 0's rows missing
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "missing 5 of 9 indices: 0, 80, 160, 240, 320" in err and not out.exists()

    assert main(["merge", str(out)]) == 0  # finds OUTFILE.part-*
    assert "merged 9 rows from 2 part files" in capsys.readouterr().err
    assert rows(out) == rows(reference)
    cfg = json.loads((tmp_path / "m.tsv.config.json").read_text())
    assert "shard" not in cfg and cfg["sigma"] == 0.25
    assert p0.exists() and p1.exists()  # kept unless --remove-parts
    assert main(["merge", str(out), "--remove-parts"]) == 0  # again: rows already in OUTFILE
    assert rows(out) == rows(reference) and leftovers(out) == []
    # the merged file resumes like a single-process one: nothing left to compute
    before = out.read_text()
    assert main(["certify", "digits", checkpoint, str(out), *FAST, "--batch", "33"]) == 0
    assert out.read_text() == before


def test_merge_reports_duplicates_and_other_configurations(capsys, checkpoint, tmp_path):
    out = tmp_path / "d.tsv"
    p0, p1 = make_parts(checkpoint, out, 2)
    row40 = p1.read_text().splitlines()[1]
    bad = tmp_path / "bad"
    bad.mkdir()
    q0, q1 = (shutil.copy(p, bad / p.name) for p in (p0, p1))
    for p in (p0, p1):
        shutil.copy(str(p) + ".config.json", bad)
    with open(q0, "a") as f:
        f.write(row40 + "\n")
    capsys.readouterr()
    assert main(["merge", str(bad / out.name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"duplicated indices: 40 in {p0.name} and {p1.name}" in err

    cfg_path = config_path(p1)
    cfg = json.loads(cfg_path.read_text())
    cfg["sigma"] = 0.5
    cfg_path.write_text(json.dumps(cfg))
    assert main(["merge", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "another configuration" in err and "sigma 0.25 != 0.5" in err
    assert not out.exists()
    # a run with the same parts refuses too, on every process, before computing anything
    assert run_rank(checkpoint, out, 0, 2) == 2
    assert "another configuration" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "none.tsv")]) == 2
    assert "no part files" in capsys.readouterr().err


def test_bad_job_environment(capsys, checkpoint, tmp_path):
    out = tmp_path / "e.tsv"
    capsys.readouterr()
    assert main(["certify", "digits", checkpoint, str(out), *FAST, "--distributed"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "torchrun" in err
    assert run_rank(checkpoint, out, 2, 2) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RANK=2" in err
    assert not out.exists() and leftovers(out) == []
