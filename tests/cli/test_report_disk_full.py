"""``sah report`` and ``sah calibrate`` on a full disk (a real small tmpfs; needs root, else
skipped), and output paths that cannot be written: exit 3 with one line for a full disk, exit
2 naming the path as given otherwise; never a partial or temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from tests.executor.test_disk_full import _fill, small_disk
from tests.support.cells import mock_cell

__all__ = ["small_disk"]  # the fixture, used by name


def _results(base: Path) -> Path:
    mock_cell(base, "dense", ["a"] * 8)
    mock_cell(base, "sink", ["a", "b"] * 4)
    return base


def _sah(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    code = main(["-q", *args])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _left_over(folder: Path) -> list[Path]:
    """Empty or temporary files under ``folder`` (the filler aside)."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.name != "filler"
        and (path.stat().st_size == 0 or path.name.endswith(".tmp"))
    ]


def _one_disk_line(err: list[str], names: Path) -> None:
    assert len(err) == 1, err
    assert err[0].startswith("sah: error: disk: No space left on device"), err
    assert str(names) in err[0] and "free space and run the same command again" in err[0]


def test_plain_report_on_a_full_disk_shows_the_table_then_exits_3(small_disk: Path, capsys) -> None:
    run = _results(small_disk / "res")
    _fill(small_disk, 0)
    code, out, err = _sah(["report", str(run), "--resamples", "0"], capsys)
    assert code == 3
    assert "sink" in out  # the report itself is complete
    _one_disk_line(err, run / "results.csv")
    assert not (run / "results.csv").exists() and not _left_over(small_disk)


def test_html_on_a_full_disk_exits_3_and_leaves_no_file(
    small_disk: Path, tmp_path: Path, capsys
) -> None:
    run = _results(tmp_path / "res")
    _fill(small_disk, 0)
    page = small_disk / "report.html"
    code, _, err = _sah(["report", str(run), "--resamples", "0", "--html", str(page)], capsys)
    assert code == 3
    _one_disk_line(err, page)
    assert not page.exists() and not _left_over(small_disk)


def test_plot_on_a_full_disk_exits_3_and_leaves_no_empty_figure(
    small_disk: Path, tmp_path: Path, capsys
) -> None:
    run = _results(tmp_path / "res")
    _fill(small_disk, 0)
    out = small_disk / "figures"
    code, _, err = _sah(
        ["report", str(run), "--resamples", "0", "--plot", "--out", str(out)], capsys
    )
    assert code == 3
    _one_disk_line(err, out / "quality_vs_density.png")
    assert not _left_over(small_disk)


def test_an_html_path_that_cannot_be_written_is_named_as_given(tmp_path: Path, capsys) -> None:
    run = _results(tmp_path / "res")
    code, out, err = _sah(["report", str(run), "--html", "/proc/x.html"], capsys)
    assert code == 2 and out == ""  # refused before any work
    assert len(err) == 1 and err[0].startswith("sah: error: --html /proc/x.html: "), err
    assert ".tmp" not in err[0]


def test_calibrate_checks_its_out_path_before_calibrating(tmp_path: Path, capsys) -> None:
    missing_model = str(tmp_path / "no_model")  # calibrating first would fail on the model
    for out, why in ((tmp_path, "is a directory"), (Path("/proc/x.json"), "cannot write")):
        args = ["calibrate", "double-sparsity", missing_model, "--out", str(out)]
        code, _, err = _sah(args, capsys)
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"sah: error: --out {out}: {why}") and ".tmp" not in err[0]


def test_calibrate_on_a_full_disk_exits_3_and_leaves_no_file(
    small_disk: Path, tiny_model_dir: str, capsys
) -> None:
    _fill(small_disk, 0)
    out = small_disk / "channels.json"
    args = ["calibrate", "double-sparsity", tiny_model_dir, "--out", str(out)]
    code, _, err = _sah([*args, "--num-tokens", "300", "--device", "cpu"], capsys)
    assert code == 3
    _one_disk_line([line for line in err if line.startswith("sah:")], out)
    assert not out.exists() and not _left_over(small_disk)
