"""Claims without training: the verdict rule, arms grouped over seeds, the [[claims]] table of a spec and
its errors, and the report's claims table and figures from hand-written run records."""

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from numbnn.cli.main import app
from numbnn.errors import InputError
from numbnn.sweep import load_spec, parse_spec, store, write_report
from numbnn.sweep.arms import arm_key, arm_label, group_arms
from numbnn.sweep.claims import Claim, evaluate, verdict

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(label, seed, accuracy, *, model="rbnet", bops=1000, conv="rpc", **extra):
    """A finished run's metrics.json as the task writes it (only the fields the report reads)."""
    config = {"model": model, "model_args": {"conv": conv}, "train": {"seed": seed, "epochs": 2, "limit": None}}
    key = f"{label}-{seed}".replace(" ", "_")
    return {"format": store.RECORD_FORMAT, "version": store.RECORD_VERSION, "status": "finished", "key": key,
            "label": f"{label} seed={seed}", "config": config, "test_accuracy": accuracy, "epochs": 2,
            "seconds": 1.0, "train_seconds": 1.0, "history": [
                {"epoch": 1, "train_loss": 1.0, "test_accuracy": accuracy - 0.05},
                {"epoch": 2, "train_loss": 0.5, "test_accuracy": accuracy}],
            "cost": {"params": 10, "binary_params": 8, "size_bytes": 2048, "packed_size_bytes": 2048, "flops": 50,
                     "bops": bops, "ops": bops / 64 + 50, "ace": bops + 50 * 256}, **extra}


RPC = [record("rbnet rpc", s, a, bops=400) for s, a in enumerate([0.90, 0.91, 0.92])]
WIDE = [record("rbnet 3x3", s, a, bops=900, conv="3x3") for s, a in enumerate([0.88, 0.885, 0.89])]


@pytest.mark.parametrize("difference, two_se, expect, expected", [
    (0.02, 0.01, "higher", "holds"),
    (-0.02, 0.01, "lower", "holds"),
    (0.005, 0.01, "higher", "within noise"),
    (-0.01, 0.01, "higher", "within noise"),  # exactly 2 SE: not beyond it
    (-0.02, 0.01, "higher", "does not hold"),
    (0.02, 0.01, "lower", "does not hold"),
    (0.0, 0.0, "lower", "does not hold"),  # an exact cost that did not move
    (1.0, math.nan, "higher", "too few seeds"),
])
def test_verdict_rule(difference, two_se, expect, expected):
    assert verdict(difference, two_se, expect) == expected


def test_arms_group_runs_equal_but_for_the_seed():
    assert arm_label("rbnet seed=12 conv=3x3") == "rbnet conv=3x3" and arm_label("x seed=-1") == "x"
    arms = group_arms(list(reversed(RPC)) + WIDE + [{"status": "failed", "key": "f", "label": "rbnet rpc seed=9"}])
    assert [(a.label, a.seeds) for a in arms] == [("rbnet rpc", [0, 1, 2]), ("rbnet 3x3", [0, 1, 2])]
    assert arms[0].values("test_accuracy") == [0.90, 0.91, 0.92] and arms[0].cost("bops") == 400


def test_accuracy_claim_uses_welch_standard_error_over_seeds():
    result = evaluate(Claim("rpc at least as accurate", "src", "rbnet rpc", "rbnet 3x3"), group_arms(RPC + WIDE))
    se = math.sqrt(0.01 ** 2 / 3 + 0.005 ** 2 / 3)  # sample stds 0.01 and 0.005
    assert result.arm[0] == pytest.approx(0.91) and result.arm[1] == pytest.approx(0.01) and result.arm[2] == 3
    assert result.difference == pytest.approx(0.025) and result.two_se == pytest.approx(2 * se)
    assert result.verdict == "holds"  # 2.5 points > 2 SE = 1.29 points
    assert result.cost_ratios["bops"] == pytest.approx(400 / 900) and result.cost_ratios["size_bytes"] == 1.0
    flipped = evaluate(Claim("n", "s", "rbnet rpc", "rbnet 3x3", expect="lower"), group_arms(RPC + WIDE))
    assert flipped.verdict == "does not hold"
    close = [record("rbnet 3x3", s, a, conv="3x3") for s, a in enumerate([0.905, 0.92, 0.91])]
    assert evaluate(Claim("n", "s", "rbnet rpc", "rbnet 3x3"), group_arms(RPC + close)).verdict == "within noise"


def test_cost_claims_are_exact_and_one_seed_claims_get_no_verdict():
    result = evaluate(Claim("2.25x fewer BOPs", "src", "rbnet rpc", "rbnet 3x3", "bops", "bops", "lower"),
                      group_arms(RPC + WIDE[:1]))
    assert (result.difference, result.two_se, result.verdict) == (-500, 0.0, "holds")
    assert evaluate(Claim("n", "s", "rbnet rpc", "rbnet 3x3"), group_arms(RPC + WIDE[:1])).verdict == "too few seeds"
    half = evaluate(Claim("n", "s", "rbnet rpc", "absent"), group_arms(RPC))
    assert half.verdict == "no runs" and half.baseline is None and half.difference is None
    assert half.arm == evaluate(Claim("n", "s", "rbnet rpc", "rbnet rpc"), group_arms(RPC)).arm  # its side is shown
    assert half.arm is not None


def test_two_heads_of_the_same_runs_are_compared_seed_by_seed():
    runs = [record("reactxgb", s, t, model="reactxgb", tree_test_accuracy=t, fc_test_accuracy=f)
            for s, (t, f) in enumerate([(0.90, 0.89), (0.93, 0.915), (0.91, 0.90)])]
    claim = Claim("trees beat FC", "src", "reactxgb", "reactxgb", "tree_test_accuracy", "fc_test_accuracy")
    result = evaluate(claim, group_arms(runs))
    differences = [0.01, 0.015, 0.01]  # the seeds' spread (1.5 points) cancels in the per-run differences
    mean = sum(differences) / 3
    se = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2) / math.sqrt(3)
    assert result.difference == pytest.approx(mean) and result.two_se == pytest.approx(2 * se)
    assert result.verdict == "holds"


SPEC = {"defaults": {"model": "bnn-small", "epochs": 1}, "grid": {"seed": [0, 1]},
        "runs": [{"label": "small"}, {"label": "fast", "lr": 0.01}]}
CLAIM = {"name": "fast is better", "source": "here", "arm": "fast", "baseline": "small"}


def test_spec_claims_name_arms_by_label_without_the_seed():
    sweep = parse_spec({**SPEC, "claims": [CLAIM, {**CLAIM, "metric": "ops", "expect": "lower"}]})
    assert [r.label for r in sweep.runs] == ["small seed=0", "fast seed=0", "small seed=1", "fast seed=1"]
    assert sweep.claims[0] == Claim("fast is better", "here", "fast", "small")
    assert (sweep.claims[1].metric, sweep.claims[1].baseline_metric, sweep.claims[1].exact) == ("ops", "ops", True)


@pytest.mark.parametrize("claim, fragments", [
    ({**CLAIM, "arm": "fats"}, ["claims[0].arm", "no arm labelled 'fats'", "did you mean 'fast'"]),
    ({**CLAIM, "baseline": "zzz"}, ["claims[0].baseline", "'zzz'", "arms: fast, small"]),
    ({**CLAIM, "arm": "fast seed=0"}, ["no arm labelled 'fast seed=0'"]),
    ({**CLAIM, "expected": "higher"}, ["claims[0]", "unknown key 'expected'", "did you mean 'expect'"]),
    ({**CLAIM, "expect": "better"}, ["claims[0].expect", "'higher' or 'lower'"]),
    ({**CLAIM, "metric": "accuracy"}, ["claims[0].metric", "unknown metric 'accuracy'"]),
    ({**CLAIM, "metric": "bops", "baseline_metric": "test_accuracy"}, ["must both be accuracies or both costs"]),
    ({**CLAIM, "baseline": "fast"}, ["compares 'fast' with itself"]),
    ({key: value for key, value in CLAIM.items() if key != "source"}, ["claims[0].source", "required"]),
])
def test_each_claim_mistake_is_one_input_error(claim, fragments):
    with pytest.raises(InputError) as caught:
        parse_spec({**SPEC, "claims": [claim]})
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_label_shared_by_two_configurations_cannot_be_claimed():
    spec = {**SPEC, "runs": [{"label": "small"}, {"label": "small", "lr": 0.01}, {"label": "fast", "lr": 0.02}]}
    with pytest.raises(InputError, match="'small' names 2 arms"):
        parse_spec({**spec, "claims": [{**CLAIM, "baseline": "small"}]})


def test_cli_claim_errors_are_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[defaults]\nmodel = "bnn-small"\n[grid]\nseed = [0, 1]\n'
                    '[[claims]]\nname = "x"\nsource = "y"\narm = "bnn-smal"\nbaseline = "bnn-small"\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        "error: claims[0].arm: no arm labelled 'bnn-smal'; did you mean 'bnn-small'?"]


def test_report_writes_the_claims_and_arms_tables_and_the_arm_figures(tmp_path):
    import matplotlib.image as matplotlib_image

    out = tmp_path / "sweep"
    for run in RPC + WIDE:
        (out / run["key"]).mkdir(parents=True)
        store.write_json(out / run["key"] / store.METRICS_FILE, run)
    claims = [{"name": "RPC: fewer BOPs", "source": "RB-Net abstract", "arm": "rbnet rpc", "baseline": "rbnet 3x3",
               "metric": "bops", "baseline_metric": "bops", "expect": "lower"},
              {"name": "RPC: as accurate", "source": "RB-Net abstract", "arm": "rbnet rpc", "baseline": "rbnet 3x3",
               "metric": "test_accuracy", "baseline_metric": "test_accuracy", "expect": "higher"}]
    store.write_json(out / store.SWEEP_FILE, {"name": "rb", "claims": claims, "runs": []})
    report = write_report(out, tmp_path / "report")
    assert [c.verdict for c in report.claims] == ["holds", "holds"]
    table = (tmp_path / "report" / "claims.md").read_text().splitlines()
    assert len(table) == 4 and "| 400 (3) | 900 (3) | -500 (0.444x) | **holds** |" in table[2]
    assert "| 91.00 ± 1.00% (3) | 88.50 ± 0.50% (3) | +2.50 ± 1.29 pts | **holds** |" in table[3]
    assert "BOPs 0.444x" in table[3] and "size 1x" in table[3]
    arms = (tmp_path / "report" / "arms.md").read_text()
    assert "| rbnet 3x3 | rbnet | 0, 1, 2 | 88.50 ± 0.50% (3) | 2 of 8 epochs |" in arms  # rbnet's recipe: 8
    for stem in ("arms_accuracy_vs_ops", "arms_accuracy_vs_ace", "arms_test_accuracy"):
        png = tmp_path / "report" / f"{stem}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE and matplotlib_image.imread(png).ndim == 3
    assert json.loads(json.dumps(report.as_dict()))["claims"][0]["cost_ratios"]["bops"] == pytest.approx(400 / 900)


@pytest.mark.parametrize("seeds, by_arms", [(2, True), (1, False)])
def test_a_sweep_without_claims_gets_the_arms_table_once_an_arm_has_seeds(tmp_path, seeds, by_arms):
    out = tmp_path / "sweep"
    for run in RPC[:seeds] + WIDE[:1]:
        (out / run["key"]).mkdir(parents=True)
        store.write_json(out / run["key"] / store.METRICS_FILE, run)
    store.write_json(out / store.SWEEP_FILE, {"name": "seeds", "runs": []})
    write_report(out, tmp_path / "report", plots=False)
    assert not (tmp_path / "report" / "claims.md").exists()
    assert (tmp_path / "report" / "arms.md").exists() == by_arms
    if by_arms:
        assert "| rbnet rpc | rbnet | 0, 1 | 90.50 ± 0.71% (2) |" in (tmp_path / "report" / "arms.md").read_text()


def test_the_claims_example_gives_three_seeds_to_every_arm_a_claim_compares():
    sweep = load_spec(Path(__file__).parent.parent / "examples" / "sweep_claims.toml")
    labels = {}
    for run in sweep.runs:
        labels.setdefault(arm_key(run.config), (arm_label(run.label), set()))[1].add(run.train["seed"])
    by_label = dict(labels.values())
    assert len(sweep.claims) == 11 and {run.model for run in sweep.runs} == {
        "reactnet-a", "reactxgb", "ftbnn", "rbnet", "pokebnn"}
    for claim in sweep.claims:
        for label in (claim.arm, claim.baseline):
            assert by_label[label] == ({0} if claim.exact and label == "reactnet-a" else {0, 1, 2}), (claim.name, label)


def test_arms_table_gives_each_arms_minutes_and_cpu():
    from numbnn.sweep.claims_table import arms_markdown

    runs = [record("rbnet rpc", s, 0.9, seconds=90.0, cpu_model="Test CPU") for s in range(2)]
    runs.append(record("rbnet 3x3", 0, 0.9, conv="3x3", seconds=30.0))  # an older record: no CPU
    resumed = record("rbnet wide", 0, 0.9, conv="wide", seconds=60.0, resumed_from_epoch=1)
    resumed["history"][0]["seconds"] = 54.0  # the epoch an earlier task trained
    rows = arms_markdown(group_arms(runs + [resumed]), {"rbnet": 8}).splitlines()
    assert rows[0].endswith("| minutes (CPU) |")
    assert rows[2].endswith("| 3.0 (Test CPU) |") and "2 of 8 epochs" in rows[2]
    assert rows[3].endswith("| 0.5 |")
    assert rows[4].endswith("| 1.9 |")  # 60 s of its last task + 54 s of the epoch it continued from


def test_arms_table_gives_a_tree_head_arms_fc_head_in_its_own_column():
    from numbnn.sweep.claims_table import arms_markdown

    runs = [record("reactxgb", s, t, model="reactxgb", tree_test_accuracy=t, fc_test_accuracy=f)
            for s, (t, f) in enumerate([(0.90, 0.92), (0.91, 0.93)])]
    runs.append(record("rbnet", 0, 0.95))
    header, _, reactxgb, rbnet = arms_markdown(group_arms(runs), {}).splitlines()
    assert header.startswith("| arm | model | seeds | test acc. | FC head | schedule |")
    assert reactxgb.startswith("| reactxgb | reactxgb | 0, 1 | 90.50 ± 0.71% (2) | 92.50 ± 0.71% (2) | 2 epochs |")
    assert rbnet.startswith("| rbnet | rbnet | 0 | 95.00% (1) |  | 2 epochs |")
    assert "FC head" not in arms_markdown(group_arms(runs[2:]), {})  # no second head anywhere: no column


def test_accuracy_curves_follow_the_network_and_mark_a_tree_head_apart():
    pytest.importorskip("matplotlib")
    from numbnn.sweep.plots import TREE_MARKER, arms_curves_figure, curves_figure, network_accuracy

    runs = [record("reactxgb", s, a, model="reactxgb") for s, a in enumerate([0.80, 0.82])]
    for run in runs:  # the last epoch as the tree stage rewrites it: test_accuracy is then the trees'
        last = run["history"][-1]
        last.update(fc_test_accuracy=last["test_accuracy"], tree_test_accuracy=last["test_accuracy"] - 0.1)
        last["test_accuracy"] = last["tree_test_accuracy"]
    assert network_accuracy(runs[0]["history"][-1]) == pytest.approx(0.80)
    assert network_accuracy({"test_accuracy": 0.5}) == 0.5
    for figure in (arms_curves_figure(group_arms(runs), "t"), curves_figure(runs, "t")):
        lines = figure.axes[-1].get_lines()  # the test-accuracy axes (the curves figure has loss on its left)
        trees = [line for line in lines if line.get_marker() == TREE_MARKER]
        curves = [line for line in lines if line.get_marker() == "o"]
        assert {round(float(y), 6) for line in curves for y in line.get_ydata()[1:]} <= {80.0, 81.0, 82.0}
        assert sorted(round(float(line.get_ydata()[0]), 6) for line in trees) in ([71.0], [70.0, 72.0])


def test_a_report_figure_is_the_same_bytes_when_made_again(tmp_path):
    pytest.importorskip("matplotlib")
    from numbnn.sweep.plots import arms_curves_figure, save_figure

    runs = [record("rbnet rpc", s, a) for s, a in enumerate([0.90, 0.91])]
    first = save_figure(arms_curves_figure(group_arms(runs), "t"), tmp_path / "a")
    second = save_figure(arms_curves_figure(group_arms(runs), "t"), tmp_path / "b")
    for one, other in zip(first, second):
        assert one.read_bytes() == other.read_bytes(), one.suffix
