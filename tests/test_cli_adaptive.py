"""``smoothcert certify --adaptive`` / ``predict --adaptive`` end to end on the embedded digits
data: the results file, its row checks on resume, sharding and merge, and ``analyze``."""

import json
import shutil

import pytest
from scipy import stats

from smoothcert import distributed
from smoothcert.analysis import format_radius_cell
from smoothcert.cli.main import main
from smoothcert.jobs.certify import adaptive_bound
from smoothcert.noises import make_noise
from smoothcert.sequential import look_schedule
from smoothcert.smooth import Smooth

SIGMA = 0.25
N0, N = 20, 1000
GRID = [0.0, 0.1, 0.25]
BASE = [
    "--sigma",
    str(SIGMA),
    "--device",
    "cpu",
    "--N0",
    str(N0),
    "--N",
    str(N),
    "--batch",
    "200",
    "--skip",
    "60",
    "--max",
    "200",
    "--adaptive",
]
ADAPTIVE = [*BASE, "--radii", *map(str, GRID)]
HEADER = (
    "idx\tlabel\tpredict\tradius\tcorrect\ttime\tpA_lower\tpA_upper\tsamples\tstop\tradius_exact"
)


def certify(checkpoint, out, *options):
    return main(["certify", "digits", checkpoint, str(out), *options])


@pytest.fixture(scope="module")
def grid_run(checkpoint, tmp_path_factory):
    """One uninterrupted adaptive run with a grid (shared: copy, do not modify)."""
    out = tmp_path_factory.mktemp("grid") / "grid.tsv"
    assert certify(checkpoint, out, *ADAPTIVE) == 0
    return out


@pytest.fixture(scope="module")
def rtol_run(checkpoint, tmp_path_factory):
    """One adaptive run without a grid (default rtol; shared)."""
    out = tmp_path_factory.mktemp("rtol") / "rtol.tsv"
    assert certify(checkpoint, out, *BASE) == 0
    return out


@pytest.fixture(scope="module")
def fixed_run(checkpoint, tmp_path_factory):
    """A fixed-N run on the same inputs (shared)."""
    out = tmp_path_factory.mktemp("fixed") / "fixed.tsv"
    assert (
        certify(
            checkpoint,
            out,
            "--sigma",
            str(SIGMA),
            "--device",
            "cpu",
            "--N0",
            str(N0),
            "--N",
            "200",
            "--skip",
            "60",
            "--max",
            "200",
        )
        == 0
    )
    return out


def bound_looks(radii):
    """The looks of the bound certify_adaptive uses for this run (estimation samples)."""
    smooth = Smooth(lambda x: x, 10, make_noise("gaussian", 64, sigma=SIGMA))
    return [int(n) for n in adaptive_bound(smooth, 0.001, N, radii).looks]


def table(path):
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def without_time(path, col=5):
    return [
        "\t".join(c for j, c in enumerate(line.split("\t")) if j != col)
        for line in path.read_text().splitlines()
    ]


def copy_run(src, dest, text=None):
    dest.write_text(src.read_text() if text is None else text)
    shutil.copy(str(src) + ".config.json", str(dest) + ".config.json")
    return dest


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_adaptive_rows_have_samples_and_stop_early_on_confident_inputs(grid_run):
    """Guards the adaptive results file: the documented column order, a samples column equal to
    N0 plus a scheduled look, fewer forward passes than N0 + N on confident inputs, and a
    configuration that records the mode, the grid, the bound and a time-uniform confidence."""
    lines = grid_run.read_text().splitlines()
    assert lines[0] == HEADER
    rows = table(grid_run)
    assert [int(r["idx"]) for r in rows] == [0, 60, 120, 180]
    looks = {N0 + n for n in bound_looks(GRID)}
    samples = [int(r["samples"]) for r in rows]
    assert all(s in looks for s in samples)
    early = [r for r in rows if r["stop"] == "largest_grid_radius_certified"]
    assert early and all(int(r["samples"]) < N0 + N for r in early)
    assert all(float(r["pA_lower"]) > 0.84 for r in early)  # the confident inputs
    assert sum(samples) < 0.75 * len(rows) * (N0 + N)
    for r in rows:
        assert float(r["pA_lower"]) <= float(r["pA_upper"])
        assert r["stop"] in {
            "budget",
            "upper_bound_below_1/2",
            "largest_grid_radius_certified",
            "next_grid_radius_out_of_reach",
        }
    cfg = json.loads(grid_run.with_name("grid.tsv.config.json").read_text())
    assert cfg["adaptive"]["n_max"] == N and cfg["N"] == N and cfg["N0"] == N0
    assert cfg["adaptive"]["radii"] == GRID and cfg["adaptive"]["rtol"] is None
    bound = cfg["adaptive"]["bound"]
    assert bound["time_uniform"] is True and bound["looks"] == bound_looks(GRID)
    assert bound["looks"][-1] == N and sum(bound["levels"]) == pytest.approx(0.001, rel=1e-9)
    assert "--adaptive --radii 0.0 0.1 0.25" in cfg["command"]
    assert "probability >= 0.999" in cfg["confidence"]
    assert "time-uniform" in cfg["confidence"] and "whichever look" in cfg["confidence"]
    assert cfg["failure_prob"] == pytest.approx(0.001)


def test_radius_is_the_largest_grid_radius_certified_by_pA_lower(grid_run):
    """Guards the radius of a grid run: a grid radius (or 0) whose Gaussian threshold
    Phi(r / sigma), computed here by scipy, lies below pA_lower, while the next grid radius's
    does not; abstention exactly when pA_lower < 1/2; the printed radius never above it."""
    for r in table(grid_run):
        p_a, radius = float(r["pA_lower"]), float(r["radius_exact"])
        assert r["radius"] == format_radius_cell(radius)
        assert (int(r["predict"]) == -1) == (p_a < 0.5)
        if p_a < 0.5:
            assert radius == 0.0
            continue
        assert radius in GRID
        j = GRID.index(radius)
        assert stats.norm.cdf(radius / SIGMA) < p_a
        if j + 1 < len(GRID):
            assert stats.norm.cdf(GRID[j + 1] / SIGMA) >= p_a - 1e-12


def test_without_grid_the_radius_is_the_certificate_radius_at_pA_lower(rtol_run):
    """Guards a run without --radii: the radius is sigma Phi^-1(pA_lower) (never above it), the
    default rtol 0.05 is recorded, and samples are N0 plus a scheduled look."""
    looks = {N0 + n for n in bound_looks(None)}
    for r in table(rtol_run):
        p_a, radius = float(r["pA_lower"]), float(r["radius_exact"])
        assert int(r["samples"]) in looks
        if p_a < 0.5:
            assert radius == 0.0 and int(r["predict"]) == -1
        else:
            exact = SIGMA * stats.norm.ppf(p_a)
            assert radius == pytest.approx(exact, rel=1e-12) and radius <= exact * (1 + 1e-15)
    cfg = json.loads(rtol_run.with_name("rtol.tsv.config.json").read_text())
    assert cfg["adaptive"]["radii"] is None and cfg["adaptive"]["rtol"] == 0.05
    assert cfg["adaptive"]["bound"]["looks"] == [int(n) for n in look_schedule(N)]


def test_resume_of_an_interrupted_adaptive_run_gives_the_same_file(checkpoint, tmp_path, grid_run):
    """Guards resume of an adaptive run: a torn file completed with another batch size equals
    the uninterrupted one (time aside), and a complete file is left as it is."""
    text = grid_run.read_text()
    cut = text.index("\n", text.index("\n", text.index("\n") + 1) + 1) + 7  # inside row 3
    torn = copy_run(grid_run, tmp_path / "torn.tsv", text[:cut])
    assert certify(checkpoint, torn, *ADAPTIVE, "--batch", "37") == 0
    assert without_time(torn) == without_time(grid_run)
    before = torn.read_text()
    assert certify(checkpoint, torn, *ADAPTIVE) == 0
    assert torn.read_text() == before


@pytest.mark.parametrize(
    "column, value, reason",
    [
        ("radius", None, "largest grid radius certified"),  # the next grid radius claimed
        ("samples", "500", "not N0 = 20 plus a look"),
        ("pA_upper", "0.5", "below pA_lower"),
        ("stop", "went home", "not a stopping reason"),
    ],
)
def test_resume_refuses_a_damaged_adaptive_row(
    capsys, checkpoint, tmp_path, grid_run, column, value, reason
):
    """Guards the row checker of adaptive files: a row whose radius is a grid radius above the
    one pA_lower certifies (a larger guarantee than the run gave), whose samples are not a look
    of the schedule, whose pA_upper is below pA_lower or whose stop is not a reason is refused
    on resume, in one line, and the file is left alone."""
    lines = grid_run.read_text().splitlines()
    head = lines[0].split("\t")
    k = next(
        i
        for i, line in enumerate(lines[1:], 1)
        if float(line.split("\t")[6]) >= 0.5 and line.split("\t")[-1] != str(GRID[-1])
    )
    cells = lines[k].split("\t")
    if column == "radius":  # both radius cells, consistently: only the certificate can tell
        bigger = GRID[GRID.index(float(cells[-1])) + 1]
        cells[3], cells[-1] = format_radius_cell(bigger), repr(bigger)
    else:
        cells[head.index(column)] = value
    lines[k] = "\t".join(cells)
    out = copy_run(grid_run, tmp_path / "bad.tsv", "\n".join(lines[: k + 1]) + "\n")
    before = out.read_text()
    capsys.readouterr()
    assert certify(checkpoint, out, *ADAPTIVE) == 2
    err = one_line_error(capsys)
    assert f"bad.tsv:{k + 1}: damaged row" in err and reason in err
    assert out.read_text() == before


def test_config_mismatch_is_refused(capsys, checkpoint, tmp_path, grid_run, rtol_run):
    """Guards resume against another sequential configuration: another grid, another rtol, a
    fixed-N command on an adaptive file and an adaptive one on a fixed file are refused in one
    line, naming the difference, and the file is left alone."""
    out = copy_run(grid_run, tmp_path / "c.tsv")
    before = out.read_text()
    capsys.readouterr()
    assert certify(checkpoint, out, *BASE, "--radii", "0", "0.25") == 2
    assert "adaptive.radii [0.0, 0.1, 0.25] != [0.0, 0.25]" in one_line_error(capsys)
    fixed = [a for a in BASE if a != "--adaptive"]
    assert certify(checkpoint, out, *fixed) == 2
    assert "adaptive (present) != (absent)" in one_line_error(capsys)
    assert out.read_text() == before
    other = copy_run(rtol_run, tmp_path / "r.tsv")
    assert certify(checkpoint, other, *BASE, "--rtol", "0.1") == 2
    assert "adaptive.rtol 0.05 != 0.1" in one_line_error(capsys)
    assert certify(checkpoint, other, *BASE, "--N", "2000") == 2
    assert "adaptive.n_max 1000 != 2000" in one_line_error(capsys)


def test_analyze_reports_samples_per_file(capsys, tmp_path, grid_run, rtol_run, fixed_run):
    """Guards analyze on adaptive files: certified accuracy as usual, plus the mean and total
    forward passes of every file (the samples column; N0 + N for a fixed-N file), and the
    reference's table unchanged when no file has a samples column; a samples value that is not a
    whole number ends in one line."""
    rows = table(grid_run)
    total = sum(int(r["samples"]) for r in rows)
    capsys.readouterr()
    assert (
        main(
            [
                "analyze",
                f"grid={grid_run}",
                f"rtol={rtol_run}",
                f"fixed={fixed_run}",
                "--format",
                "text",
                "--radii",
                "0",
                "0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].rstrip().endswith("samples / input  total samples")
    grid_line = next(line for line in out if line.startswith("grid"))
    assert grid_line.split()[-2:] == [f"{total / len(rows):.1f}", str(total)]
    acc = sum(r["correct"] == "1" and float(r["radius_exact"]) >= 0.1 for r in rows) / len(rows)
    assert grid_line.split()[2].rstrip("*") == f"{acc:.2f}"
    fixed_line = next(line for line in out if line.startswith("fixed"))
    assert fixed_line.split()[-2:] == ["220.0", "880"]
    assert (
        main(["analyze", str(grid_run), str(fixed_run), "--format", "csv", "--radii", "0.1"]) == 0
    )
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0] == "label,0.1,samples_per_input,samples_total"
    assert csv_lines[1].endswith(f",{total / len(rows)!r},{total}")
    assert main(["analyze", str(grid_run), "--radii", "0.1"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("|samples / input |total samples |")
    assert main(["analyze", str(fixed_run), "--radii", "0.1"]) == 0
    assert "samples" not in capsys.readouterr().out
    lines = grid_run.read_text().splitlines()
    bad = tmp_path / "bad.tsv"
    cells = lines[1].split("\t")
    cells[8] = "12.5"
    bad.write_text(lines[0] + "\n" + "\t".join(cells) + "\n")
    assert main(["analyze", str(bad), "--radii", "0.1"]) == 2
    assert "column samples: '12.5' is not a number of forward passes" in one_line_error(capsys)


def test_sharded_adaptive_run_merges_to_the_single_process_file(
    capsys, checkpoint, tmp_path, grid_run
):
    """Guards torchrun sharding and merge with adaptive files: part files written by two ranks
    (checked like OUTFILE rows), joined by ``smoothcert merge``, equal the single-process file
    (time aside), and the merged file resumes with nothing to compute."""
    out = tmp_path / "sharded.tsv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed, "FILE_WAIT_STALL_S", 0.0)
        for rank in (0, 1):  # rank 0 first: it gives up waiting, the parts stay
            mp.setenv("RANK", str(rank))
            mp.setenv("WORLD_SIZE", "2")
            mp.setenv("LOCAL_RANK", str(rank))
            assert certify(checkpoint, out, *ADAPTIVE) == 0
            if rank == 0:  # resuming a part file runs its row checks
                assert certify(checkpoint, out, *ADAPTIVE) == 0
    part = distributed.part_path(out, 1, 2)
    assert [line.split("\t")[0] for line in part.read_text().splitlines()] == ["idx", "60", "180"]
    assert part.read_text().splitlines()[0] == HEADER
    capsys.readouterr()
    assert main(["merge", str(out), "--remove-parts"]) == 0
    assert "merged 4 rows from 2 part files" in capsys.readouterr().err
    assert without_time(out) == without_time(grid_run)
    cfg = json.loads((tmp_path / "sharded.tsv.config.json").read_text())
    assert "shard" not in cfg and cfg["adaptive"]["radii"] == GRID
    before = out.read_text()
    assert certify(checkpoint, out, *ADAPTIVE, "--batch", "33") == 0
    assert out.read_text() == before


def test_predict_adaptive(capsys, checkpoint, tmp_path):
    """Guards ``predict --adaptive``: the reference's columns then samples (a scheduled look,
    at most --N) and stop; decided inputs stop before the budget; the confidence note says
    time-uniform; resume completes a torn file to the same rows; another mode is refused."""
    out = tmp_path / "pred.tsv"
    argv = [
        "predict",
        "digits",
        checkpoint,
        str(out),
        "--sigma",
        str(SIGMA),
        "--device",
        "cpu",
        "--N",
        str(N),
        "--batch",
        "200",
        "--skip",
        "60",
        "--max",
        "200",
        "--adaptive",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    assert "time-uniform" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tcorrect\ttime\tsamples\tstop"
    rows = table(out)
    looks = {int(n) for n in look_schedule(N)}
    assert all(int(r["samples"]) in looks for r in rows)
    decided = [r for r in rows if r["stop"] == "decided"]
    assert decided and all(int(r["samples"]) < N and int(r["predict"]) >= 0 for r in decided)
    assert all(int(r["predict"]) == -1 for r in rows if r["stop"] != "decided")
    cfg = json.loads((tmp_path / "pred.tsv.config.json").read_text())
    assert cfg["adaptive"]["n_max"] == N and "time-uniform" in cfg["confidence"]
    full = without_time(out, col=4)
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:4])
    assert main(argv) == 0
    assert without_time(out, col=4) == full
    capsys.readouterr()
    assert main(argv[:-1]) == 2  # the same file without --adaptive
    assert "adaptive (present) != (absent)" in one_line_error(capsys)


@pytest.mark.parametrize(
    "options, match",
    [
        (["--radii", "0.25"], "--radii needs --adaptive"),
        (["--rtol", "0.1"], "--rtol needs --adaptive"),
        (["--adaptive", "--radii", "-0.25", "0.5"], "radii must be >= 0"),
        (["--adaptive", "--radii", "0.5", "0.25"], "strictly increasing"),
        (["--adaptive", "--radii", "nan"], "finite"),
        (["--adaptive", "--rtol", "0"], "rtol must be a finite number > 0"),
        (["--adaptive", "--rtol", "-1"], "rtol must be a finite number > 0"),
        (["--adaptive", "--radii", "0.25", "--rtol", "0.1"], "--rtol applies without --radii"),
        (["--adaptive", "--bilateral"], "--bilateral is not available with --adaptive"),
        (["--adaptive", "--N", "0"], "--N must be an integer >= 1"),
    ],
)
def test_bad_options_end_in_one_line(capsys, checkpoint, tmp_path, options, match):
    """Guards the option checks of sequential certification: each bad combination ends in one
    line and exit status 2, before anything is written."""
    out = tmp_path / "o.tsv"
    capsys.readouterr()
    assert certify(checkpoint, out, "--sigma", str(SIGMA), "--device", "cpu", *options) == 2
    assert match in one_line_error(capsys)
    assert not out.exists() and not (tmp_path / "o.tsv.config.json").exists()
