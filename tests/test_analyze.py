"""smoothcert.analysis and ``smoothcert analyze``: reading results, tables, plots, the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from smoothcert.analysis import (
    REFERENCE_RADII,
    REFERENCE_RADII_IMAGENET,
    certified_accuracy,
    certified_accuracy_curve,
    default_label,
    default_labels,
    format_radius,
    format_table,
    parse_time,
    plot_certified_accuracy,
    read_results,
)
from smoothcert.cli.analyze import split_file_argument
from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError

SHARED = Path(__file__).resolve().parents[2] / "shared"
REF = SHARED / "interop" / "cohen2019"

HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
ROWS = [  # idx label predict radius correct time
    (0, 3, 3, 0.5, 1, "1.5"),
    (1, 7, -1, 0.0, 0, "0:00:02.250000"),
    (2, 1, 1, 1.0, 1, "0:01:00"),
    (3, 2, 5, 0.7, 0, "1 day, 1:00:00.5"),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _results_text(rows=ROWS, header=HEADER, extra=None) -> str:
    lines = [header.rstrip("\n") + ("".join(f"\t{e}" for e in extra) if extra else "")]
    for i, row in enumerate(rows):
        cells = [str(c) for c in row]
        if extra:
            cells += [f"{0.5 + 0.1 * i:.2f}", f"tag{i}"]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


# --- the reference's tables --------------------------------------------------------------

REFERENCE_TABLES = {
    "cifar10": ("cifar10/resnet110", ["0.12", "0.25", "0.50", "1.00"], REFERENCE_RADII),
    "imagenet": ("imagenet/resnet50", ["0.25", "0.50", "1.00"], REFERENCE_RADII_IMAGENET),
}
REFERENCE_LABELS = {"markdown": "&sigma; = {}", "latex": "$\\sigma = {}$"}


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
@pytest.mark.parametrize("dataset", sorted(REFERENCE_TABLES))
def test_reproduces_reference_tables(dataset, fmt):
    if not REF.is_dir():
        pytest.skip(f"shared reference data not found at {REF}")
    model, sigmas, radii = REFERENCE_TABLES[dataset]
    rows = []
    for s in sigmas:
        results = read_results(
            REF / "data" / "certify" / model / f"noise_{s}" / "test" / f"sigma_{s}"
        )
        rows.append((REFERENCE_LABELS[fmt].format(s), certified_accuracy(results, radii)))
    expected = (REF / "analysis" / fmt / f"vary_noise_{dataset}").read_text()
    assert format_table(rows, radii, fmt) == expected


def test_reference_table_through_the_cli(capsys):
    if not REF.is_dir():
        pytest.skip(f"shared reference data not found at {REF}")
    base = REF / "data" / "certify" / "imagenet" / "resnet50"
    files = [f"$\\sigma = {s}$={base}/noise_{s}/test/sigma_{s}" for s in ("0.25", "0.50", "1.00")]
    assert (
        main(
            ["analyze", *files, "--format", "latex", "--radii", "0.5", "1", "1.5", "2", "2.5", "3"]
        )
        == 0
    )
    expected = (REF / "analysis" / "latex" / "vary_noise_imagenet").read_text()
    assert capsys.readouterr().out == expected


def test_reference_data_files_all_parse():
    if not REF.is_dir():
        pytest.skip(f"shared reference data not found at {REF}")
    files = sorted(p for p in (REF / "data" / "certify").rglob("sigma_*") if p.is_file())
    assert len(files) >= 10
    for path in files:
        r = read_results(path)
        assert len(r) > 400
        assert np.all(r.correct == (r.predict == r.label))
        assert np.all(r.radius[r.abstained] == 0)
        assert np.all(r.time_seconds > 0)


# --- reading -----------------------------------------------------------------------------


def test_read_results_both_time_formats(tmp_path):
    r = read_results(_write(tmp_path / "res.tsv", _results_text()))
    assert len(r) == 4
    np.testing.assert_array_equal(r.idx, [0, 1, 2, 3])
    np.testing.assert_array_equal(r.predict, [3, -1, 1, 5])
    np.testing.assert_array_equal(r.correct, [1, 0, 1, 0])
    np.testing.assert_array_equal(r.abstained, [False, True, False, False])
    np.testing.assert_allclose(r.time_seconds, [1.5, 2.25, 60.0, 86400 + 3600.5])
    assert r.idx.dtype == np.int64 and r.radius.dtype == np.float64
    assert r.extra == {} and r.comments == () and r.path == str(tmp_path / "res.tsv")
    assert r["time"] is r.time_seconds and r["radius"] is r.radius


def test_parse_time():
    assert parse_time("15.4") == 15.4
    assert parse_time("0:02:31.238689") == pytest.approx(151.238689)
    assert parse_time("12:00:00") == 43200.0
    assert parse_time("2 days, 0:00:01") == 2 * 86400 + 1
    for bad in ("abc", "1:2:3", "0:61:00", "nan", ""):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_extra_columns_comments_and_column_order(tmp_path):
    text = "# certify --noise gaussian --sigma 0.25\n#  N=100000 alpha=0.001\n" + _results_text(
        extra=["pA_lower", "note"]
    )
    r = read_results(_write(tmp_path / "res", text))
    assert r.comments == ("certify --noise gaussian --sigma 0.25", "N=100000 alpha=0.001")
    assert list(r.extra) == ["pA_lower", "note"]
    np.testing.assert_allclose(r["pA_lower"], [0.5, 0.6, 0.7, 0.8])
    assert list(r["note"]) == ["tag0", "tag1", "tag2", "tag3"]
    assert r.columns[-2:] == ("pA_lower", "note")
    with pytest.raises(KeyError):
        r["nope"]
    # columns may come in another order, with CRLF line ends and a trailing blank line
    swapped = "time\tcorrect\tradius\tpredict\tlabel\tidx\r\n1.0\t1\t0.3\t4\t4\t9\r\n\r\n"
    r2 = read_results(_write(tmp_path / "swapped", swapped))
    assert (r2.idx[0], r2.label[0], r2.radius[0], r2.time_seconds[0]) == (9, 4, 0.3, 1.0)


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("", ":", "empty file"),
        ("# only a comment\n", ":", "empty file"),
        ("idx\tlabel\tpredict\tradius\tcorrect\n0\t1\t1\t0.5\t1\n", ":1:", "lacks column(s) time"),
        ("idx label predict radius correct time\n", ":1:", "tab-separated"),
        (HEADER + "0\t1\t1\t0.5\t1\n", ":2:", "expected 6 tab-separated columns"),
        (HEADER + "0\t1\t1\t0.5\t1\t2.0\n1\t1\t1\t0.5\t1\t2.0\textra\n", ":3:", "found 7"),
        (HEADER + "0\t1\t1\tbig\t1\t2.0\n", ":2:", "column radius: 'big' is not a number"),
        (HEADER + "0\tcat\t1\t0.5\t1\t2.0\n", ":2:", "column label: 'cat' is not an integer"),
        (HEADER + "0\t1\t1\t0.5\t1\tyesterday\n", ":2:", "column time"),
        (HEADER + "0\t1\t1\t0.5\t2\t2.0\n", ":2:", "correct must be 0 or 1"),
        (HEADER + "0\t1\t1\t-0.5\t1\t2.0\n", ":2:", "radius must be >= 0"),
        (HEADER + "0\t1\t1\tnan\t1\t2.0\n", ":2:", "radius must be >= 0"),
        ("idx\tidx\tlabel\tpredict\tradius\tcorrect\ttime\n", ":1:", "repeated column(s) idx"),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path, text, where, what):
    path = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(SmoothCertError) as info:
        read_results(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path) + where), msg
    assert what in msg


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SmoothCertError, match="no such file"):
        read_results(tmp_path / "absent")
    with pytest.raises(SmoothCertError, match="is a directory"):
        read_results(tmp_path)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SmoothCertError, match="not a text file"):
        read_results(binary)


# --- certified accuracy ------------------------------------------------------------------


def test_certified_accuracy_definition(tmp_path):
    r = read_results(_write(tmp_path / "res", _results_text()))
    # correct rows have radii 0.5 and 1.0; 4 rows in all; radius >= r is inclusive
    acc = certified_accuracy(r, [0.0, 0.5, 0.50001, 1.0, 1.1])
    np.testing.assert_array_equal(acc, [0.5, 0.5, 0.25, 0.25, 0.0])
    assert certified_accuracy(r, 0.7).shape == ()
    rng = np.random.default_rng(0)
    radii = rng.uniform(0, 1.2, 50)
    brute = [np.mean((r.correct == 1) & (r.radius >= x)) for x in radii]
    np.testing.assert_array_equal(certified_accuracy(r, radii), brute)


def test_certified_accuracy_of_empty_results_is_an_error(tmp_path):
    r = read_results(_write(tmp_path / "empty", HEADER))
    assert len(r) == 0
    with pytest.raises(SmoothCertError, match="no result rows"):
        certified_accuracy(r, [0.5])


def test_certified_accuracy_curve_is_the_exact_step_function(tmp_path):
    r = read_results(_write(tmp_path / "res", _results_text()))
    x, y = certified_accuracy_curve(r, 2.0)
    np.testing.assert_array_equal(x, [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(y, [0.5, 0.25, 0.0, 0.0])


# --- tables ------------------------------------------------------------------------------


def test_format_radius_matches_the_reference_and_keeps_digits():
    for r in [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, *np.arange(0.25, 1.75, 0.25)]:
        assert format_radius(r) == f"{r:.3}"
    assert format_radius(0.1 * 3) == "0.3"
    assert format_radius(1.125) == "1.125"
    assert format_radius(100) == "100.0"


def test_best_marking_and_ties():
    rows = [("a", [0.5, 0.0, 0.3]), ("b", [0.5, 0.0, 0.299]), ("c", [0.1, 0.0, 0.2])]
    radii = [0.5, 1.0, 1.5]
    md = format_table(rows, radii, "markdown").splitlines()
    # reference (np.argmax): only the first of tied rows, even when all are 0
    assert md[2] == "<b> a </b>| 0.50<b>*</b> |0.00<b>*</b> |0.30<b>*</b> |"
    assert md[3] == "<b> b </b>| 0.50 |0.00 |0.30 |"  # 0.299 shows as 0.30 but is not best
    md_all = format_table(rows, radii, "markdown", best="all").splitlines()
    assert md_all[3] == "<b> b </b>| 0.50<b>*</b> |0.00<b>*</b> |0.30 |"
    assert "<b>*</b>" not in format_table(rows, radii, "markdown", best="none")
    tex = format_table(rows, radii, "latex", best="all").splitlines()
    assert tex[3] == "b & \\textbf{0.50} & \\textbf{0.00} & 0.30\\\\"


def test_envelope_row():
    rows = [("a", [0.6, 0.1]), ("b", [0.4, 0.3])]
    md = format_table(rows, [0.25, 0.5], "markdown", envelope=True).splitlines()
    assert md[-1] == "<b> best over classifiers </b>| 0.60 |0.30 |"
    tex = format_table(
        rows, [0.25, 0.5], "latex", envelope=True, envelope_label="envelope"
    ).splitlines()
    assert tex[-2:] == ["\\midrule", "envelope & 0.60 & 0.30\\\\"]


def test_csv_parses_back():
    rows = [("noise_0.25", [0.6, 1 / 3]), ("with, comma", [0.25, 0.0])]
    text = format_table(rows, [0.25, 1.125], "csv", envelope=True)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["label", "0.25", "1.125"]
    assert [p[0] for p in parsed[1:]] == ["noise_0.25", "with, comma", "best over classifiers"]
    values = np.array([[float(v) for v in p[1:]] for p in parsed[1:]])
    np.testing.assert_array_equal(values, [[0.6, 1 / 3], [0.25, 0.0], [0.6, 1 / 3]])


def test_text_table_is_aligned_and_marks_every_best_row():
    rows = [("Gaussian", [0.9, 0.5]), ("l2 family k = 10", [0.9, 0.25])]
    lines = format_table(rows, [0.25, 1.125], "text", envelope=True, best="all").splitlines()
    assert lines[0].split() == ["r", "=", "0.25", "r", "=", "1.125"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == ["Gaussian", "0.90*", "0.50*"]
    assert lines[3].split() == ["l2", "family", "k", "=", "10", "0.90*", "0.25"]
    assert lines[4].split() == ["best", "over", "classifiers", "0.90", "0.50"]
    # columns line up: every value of a column ends at the same offset
    ends = {line.rstrip().rfind("0.") for line in lines[2:]}
    assert len(ends) == 1


def test_format_table_errors():
    with pytest.raises(SmoothCertError, match="unknown table format"):
        format_table([("a", [0.5])], [0.5], "html")
    with pytest.raises(SmoothCertError, match="one per radius"):
        format_table([("a", [0.5, 0.2])], [0.5], "markdown")
    with pytest.raises(SmoothCertError, match="no radii"):
        format_table([("a", [])], [], "markdown")


# --- labels ------------------------------------------------------------------------------


def test_default_labels():
    assert (
        default_label("data/certify/cifar10/resnet110/noise_0.25/test/sigma_0.25") == "noise_0.25"
    )
    assert default_label("x/noise_0.25/test/sigma_0.50") == "noise_0.25 sigma_0.50"
    assert default_label("x/noise_0.50/train/sigma_0.50") == "noise_0.50 (train)"
    assert default_label("runs/noise_1.00/certify.tsv") == "noise_1.00 certify"
    assert default_label("out/resnet_sigma_0.5.tsv") == "resnet_sigma_0.5"
    assert default_label("out/sigma_0.50") == "sigma_0.50"
    assert default_labels(["a/results.tsv", "b/results.tsv", "c/other.txt"]) == [
        "a/results",
        "b/results",
        "other",
    ]
    assert default_labels(["same.tsv", "same.tsv"]) == ["same #1", "same #2"]


def test_split_file_argument(tmp_path):
    f = _write(tmp_path / "a=b.tsv", HEADER)
    assert split_file_argument(str(f)) == (None, str(f))
    assert split_file_argument(f"lab={f}") == ("lab", str(f))
    assert split_file_argument(f"$\\sigma = 1$={f}") == ("$\\sigma = 1$", str(f))
    assert split_file_argument("plain/path") == (None, "plain/path")
    assert split_file_argument("x=missing") == ("x", "missing")


# --- plots -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-")], ids=["png", "pdf"]
)
def test_plot_writes_a_valid_file(tmp_path, suffix, magic):
    r = read_results(_write(tmp_path / "res", _results_text()))
    out = plot_certified_accuracy(
        [("$\\sigma = 0.25$", r), ("noise_0.50", r)],
        tmp_path / f"curve{suffix}",
        norm_label="linf radius",
    )
    data = out.read_bytes()
    assert data.startswith(magic)
    if suffix == ".png":
        assert data[12:16] == b"IHDR"
    else:
        assert data.rstrip().endswith(b"%%EOF")


def test_plot_errors(tmp_path):
    r = read_results(_write(tmp_path / "res", _results_text()))
    with pytest.raises(SmoothCertError, match=".png or .pdf"):
        plot_certified_accuracy([("a", r)], tmp_path / "x.jpg")
    with pytest.raises(SmoothCertError, match="nothing to plot"):
        plot_certified_accuracy([], tmp_path / "x.png")
    with pytest.raises(SmoothCertError, match="cannot write the plot"):
        plot_certified_accuracy([("a", r)], tmp_path / "no" / "dir" / "x.png")


# --- command line ------------------------------------------------------------------------


def test_cli_end_to_end(tmp_path, capsys):
    a = _write(tmp_path / "a.tsv", _results_text())
    b = _write(tmp_path / "b.tsv", "# config line\n" + _results_text(extra=["pA_lower", "n"]))
    plot = tmp_path / "curves.png"
    assert (
        main(
            [
                "analyze",
                str(a),
                f"second={b}",
                "--radii",
                "0.5",
                "1.0",
                "--envelope",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err == (
        "# l2 radius: a: no a.tsv.config.json, l2 radii as the reference's; "
        "second: no b.tsv.config.json, l2 radii as the reference's\n"
    )
    assert captured.out.splitlines() == [
        "|  | r = 0.5 |r = 1.0 |",
        "| --- |  --- | --- |",
        "<b> a </b>| 0.50<b>*</b> |0.25<b>*</b> |",
        "<b> second </b>| 0.50 |0.25 |",
        "<b> best over classifiers </b>| 0.50 |0.25 |",
    ]
    assert plot.read_bytes().startswith(b"\x89PNG")

    out = tmp_path / "table.csv"
    assert main(["analyze", str(a), "--format", "csv", "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    parsed = list(csv.reader(out.open()))
    assert parsed[0] == ["label", *[format_radius(r) for r in REFERENCE_RADII]]
    assert parsed[1][0] == "a" and float(parsed[1][1]) == 0.5


def test_cli_latex_escapes_derived_labels_only(tmp_path, capsys):
    d = tmp_path / "noise_0.25" / "test"
    d.mkdir(parents=True)
    f = _write(d / "sigma_0.25", _results_text())
    assert (
        main(
            [
                "analyze",
                str(f),
                f"$\\sigma = 0.25$={f}",
                "--format",
                "latex",
                "--radii",
                "0.5",
                "--best",
                "none",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["noise\\_0.25 & 0.50\\\\", "$\\sigma = 0.25$ & 0.50\\\\"]


@pytest.mark.parametrize(
    "make_args, what",
    [
        (lambda t: [str(t / "absent.tsv")], "absent.tsv: no such file"),
        (lambda t: [str(_write(t / "bad.tsv", HEADER + "0\t1\n"))], "bad.tsv:2: expected 6"),
        (
            lambda t: [str(_write(t / "ok.tsv", _results_text())), "--radii", "-1"],
            "radii must be finite and >= 0",
        ),
        (
            lambda t: [str(_write(t / "ok.tsv", _results_text())), "--plot", str(t / "p.gif")],
            "must end in .png or .pdf",
        ),
        (
            lambda t: [str(_write(t / "ok.tsv", _results_text())), "-o", str(t / "no" / "x")],
            "cannot write the table",
        ),
    ],
)
def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, make_args, what):
    assert main(["analyze", *make_args(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("smoothcert analyze: error: ")
    assert captured.err.count("\n") == 1
    assert what in captured.err
