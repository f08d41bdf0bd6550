"""`numbnn env` and `numbnn bench kernels` through typer's CliRunner (tiny shapes via --quick)."""

import json

from typer.testing import CliRunner

from numbnn.cli.main import app

runner = CliRunner()


def test_env_lists_versions_flags_and_threads():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    for key in ("numba:", "llvmlite:", "numpy:", "cpu_model:", "avx512_vpopcntdq=", "threading_layer:", "threads:", "cache_dir:"):
        assert key in result.stdout


def test_env_json_is_one_object_on_the_last_line():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(info["cpu_flags"]) == {"avx2", "avx512f", "avx512_vpopcntdq"}
    assert info["threads"] >= 1 and info["threading_layer"] in ("omp", "tbb", "workqueue")


def test_bench_kernels_quick_json_reports_ratios():
    result = runner.invoke(app, ["bench", "kernels", "--quick", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["matmul"]) == 2 and len(report["conv"]) == 2
    for row in report["matmul"] + report["conv"]:  # tiny shapes: the values themselves mean little
        float_ms = row.get("float_blas_warm_ms", row.get("float_im2col_blas_warm_ms"))
        assert row["binary_warm_ms"] > 0 and float_ms > 0 and row["binary_gmacs"] >= 0
        # ratio = binary / float MAC rate = float time / binary time; the ms are rounded to 1 us, so the
        # ratio of the printed times bounds it only within that rounding (tiny shapes take a few us)
        half_us, binary_ms = 0.0005, row["binary_warm_ms"]
        low = (float_ms - half_us) / (binary_ms + half_us)
        high = (float_ms + half_us) / max(binary_ms - half_us, 1e-9)
        assert low * 0.99 - 0.01 <= row["ratio"] <= high * 1.01 + 0.01
    assert report["machine"]["popcount_ceiling_gmacs"] > 0
    assert report["machine"]["ceiling_basis"].startswith("measured")
    assert report["environment"]["cpu_model"]
    assert "ratio" in result.stderr  # the table goes to stderr


def test_bench_kernels_threads_option_sets_the_thread_count():
    result = runner.invoke(app, ["bench", "kernels", "--quick", "--repeats", "1", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["machine"]["threads"] == 1


def test_bench_kernels_rejects_bad_threads():
    result = runner.invoke(app, ["bench", "kernels", "--quick", "--threads", "999"])
    assert result.exit_code == 2 and "threads" in result.stderr


def test_bench_kernels_rejects_zero_repeats():
    result = runner.invoke(app, ["bench", "kernels", "--quick", "--repeats", "0"])
    assert result.exit_code != 0
