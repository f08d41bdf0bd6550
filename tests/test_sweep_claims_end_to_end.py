"""One tiny real sweep with claims, end to end: `numbnn sweep` on a local Dask cluster (2 models x 2 seeds,
96 training images, tiny widths), then `numbnn report`: the claims table, its verdicts and the arm figures."""

import json

import pytest
from typer.testing import CliRunner

import distributed  # noqa: F401  (the test extra installs it: missing, these tests fail rather than skip)

from numbnn.cli.main import app

SPEC = """
name = "tiny-claims"
[defaults]
epochs = 1
limit = 96
test_limit = 100
batch_size = 48
[grid]
seed = [0, 1]

[[runs]]
model = "rbnet"
label = "rbnet"
model_args = { widths = [8, 16], blocks = [1, 1] }
[[runs]]
model = "reactnet-a"
label = "reactnet-a plain"
model_args = { widths = [8, 16], plain = true }

[[claims]]
name = "RPC is cheaper"
source = "a test"
arm = "rbnet"
baseline = "reactnet-a plain"
metric = "bops"
expect = "lower"
[[claims]]
name = "RPC is more accurate"
source = "a test"
arm = "rbnet"
baseline = "reactnet-a plain"
"""


def test_sweep_then_report_gives_the_claims_table_and_figures(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    swept = CliRunner().invoke(app, ["sweep", str(spec), "--workers", "2", "--out", str(out), "--json"])
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout.strip().splitlines()[-1])["ran"] == 4
    assert json.loads((out / "sweep.json").read_text())["claims"][0]["metric"] == "bops"

    reported = CliRunner().invoke(app, ["report", str(out), "--json"])
    assert reported.exit_code == 0, reported.output
    claims = json.loads(reported.stdout.strip().splitlines()[-1])["claims"]
    cheaper, accurate = claims
    assert cheaper["arm_value"][2] == cheaper["baseline_value"][2] == 2  # two seeds per arm
    costs = (cheaper["arm_value"][0], cheaper["baseline_value"][0])
    assert cheaper["verdict"] == ("holds" if costs[0] < costs[1] else "does not hold") and cheaper["two_se"] == 0
    difference = accurate["arm_value"][0] - accurate["baseline_value"][0]
    assert accurate["difference"] == pytest.approx(difference) and accurate["two_se"] > 0
    assert accurate["verdict"] in ("holds", "within noise", "does not hold")
    assert "claims" in reported.stdout and "RPC is cheaper" in reported.stdout

    report = out / "report"
    table = (report / "claims.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| RPC is cheaper | a test | rbnet vs reactnet-a plain (bops, lower) |")
    assert "| rbnet | rbnet | 0, 1 |" in (report / "arms.md").read_text()
    for stem in ("arms_accuracy_vs_ops", "arms_accuracy_vs_ace", "arms_test_accuracy"):
        assert (report / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
