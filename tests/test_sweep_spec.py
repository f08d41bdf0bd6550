"""Sweep logic that needs no Dask: grid/list expansion, precedence, normalised keys, one clear error per
mistake, --set overrides, `numbnn sweep --dry-run`, the Pareto front, which settings get their own plot,
and optional imports staying optional."""

import hashlib
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from numbnn.cli.main import app
from numbnn.errors import InputError, MissingDependencyError, UnknownModelError
from numbnn.sweep import config_hash, load_spec, parse_overrides, parse_spec, plan, store
from numbnn.sweep.pareto import dominates, pareto_front
from numbnn.train.config import model_recipe
from numbnn.sweep.report import swept_parameters

SMALL = {"model": "bnn-small", "epochs": 1, "limit": 64, "model_args": {"widths": [8, 8, 16]}}


def test_grid_is_the_cartesian_product_in_key_order_with_labels_naming_what_varies():
    sweep = parse_spec({"defaults": SMALL, "grid": {"seed": [0, 1, 2], "model_args": {"widths": [[8, 8], [8, 16]]}}})
    assert [(r.train["seed"], r.model_args["widths"]) for r in sweep.runs] == [
        (0, [8, 8]), (0, [8, 16]), (1, [8, 8]), (1, [8, 16]), (2, [8, 8]), (2, [8, 16])]
    assert sweep.runs[3].label == "bnn-small seed=1 widths=[8,16]"
    assert len({r.key for r in sweep.runs}) == 6
    assert sweep.name == "sweep"


def test_runs_are_crossed_with_the_grid_and_precedence_is_recipe_defaults_run_override():
    sweep = parse_spec(
        {"name": "p", "defaults": {**SMALL, "lr": 0.01, "batch_size": 32},
         "grid": {"seed": [0, 1]},
         "runs": [{"label": "a"}, {"model": "float-cnn", "lr": 0.5, "model_args": {"widths": [8, 8]}}]},
        overrides={"batch_size": 16},
    )
    assert [(r.label, r.model, r.train["seed"]) for r in sweep.runs] == [
        ("a seed=0", "bnn-small", 0), ("float-cnn lr=0.5 widths=[8,8] seed=0", "float-cnn", 0),
        ("a seed=1", "bnn-small", 1), ("float-cnn lr=0.5 widths=[8,8] seed=1", "float-cnn", 1)]
    small, floating = sweep.runs[0], sweep.runs[1]
    assert small.train["lr"] == 0.01 and floating.train["lr"] == 0.5  # defaults, then the run entry
    assert small.train["batch_size"] == floating.train["batch_size"] == 16  # the override wins over everything
    assert floating.train["schedule"] == "cosine"  # float-cnn's own recipe fills what nobody set
    assert small.train["schedule"] == "linear" and small.train["epochs"] == 1


def test_keys_are_the_hash_of_the_normalised_config_so_rewording_keeps_them():
    plain = parse_spec({"runs": [{"model": "pokebnn", "model_args": {"clip": 3}, "lr": 1}]}).runs[0]
    spelled = parse_spec({"runs": [{"model": "pokebnn", "model_args": {"clip": 3.0, "widths": [32, 64, 128]},
                                    "lr": 1.0, "optimizer": "adam",
                                    "epochs": model_recipe("pokebnn")["epochs"]}]}).runs[0]
    assert plain.key == spelled.key and plain.config == spelled.config
    assert plain.model_args["clip"] == 3.0 and isinstance(plain.train["lr"], float)
    other = parse_spec({"runs": [{"model": "pokebnn", "model_args": {"clip": 2}}]}).runs[0]
    assert other.key != plain.key
    assert plain.key == config_hash(plain.config) and len(plain.key) == 16


def test_config_hash_is_sha256_of_the_canonical_json():
    config = {"train": {"lr": 0.5, "seed": 1}, "model": "m", "model_args": {"widths": (8, 16)}}
    canonical = '{"model":"m","model_args":{"widths":[8,16]},"train":{"lr":0.5,"seed":1}}'
    assert config_hash(config) == hashlib.sha256(canonical.encode()).hexdigest()[:16]


@pytest.mark.parametrize("data, fragments", [
    ({"defaults": SMALL, "grid": {"seed": [0]}, "runz": []}, ["top level", "'runz'", "did you mean 'runs'"]),
    ({"defaults": {**SMALL, "epoch": 2}, "grid": {"seed": [0]}}, ["defaults", "'epoch'", "'epochs'"]),
    ({"defaults": SMALL, "grid": {"seed": 0}}, ["grid.seed", "non-empty list"]),
    ({"defaults": SMALL, "grid": {"seed": []}}, ["grid.seed", "non-empty list"]),
    ({"defaults": SMALL, "grid": {}}, ["grid", "empty"]),
    ({"defaults": SMALL}, ["no runs"]),
    ({"runs": [{"epochs": 1}]}, ["runs[0]", "no model"]),
    ({"runs": {"model": "bnn-small"}}, ["runs", "array of tables"]),
    ({"runs": [SMALL, {**SMALL, "epochs": 0}]}, ["runs[1]", "epochs must be a positive integer"]),
    ({"runs": [SMALL, {**SMALL, "recipe": "three-step"}]}, ["runs[1]", "recipe"]),
    ({"runs": [{**SMALL, "model_args": {"width": [8]}}]}, ["runs[0]", "'width'", "did you mean 'widths'"]),
    ({"runs": [{**SMALL, "model_args": 3}]}, ["runs[0].model_args", "table"]),
    ({"runs": [{**SMALL, "model": 7}]}, ["runs[0].model", "string"]),
    ({"runs": [SMALL, dict(SMALL)]}, ["runs[1]", "same configuration as runs[0]"]),
    ({"grid": {"seed": [0, 1]}, "runs": [{**SMALL, "seed": 3}]}, ["seed", "both the grid and the run"]),
    ({"defaults": SMALL, "grid": {"lr": [float("nan")]}}, ["lr", "finite"]),
])
def test_each_mistake_is_one_input_error_naming_the_table_and_key(data, fragments):
    with pytest.raises(InputError) as caught:
        parse_spec(data)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_unknown_model_names_the_run_and_suggests_the_closest():
    with pytest.raises(UnknownModelError, match=r"runs\[0\]: unknown model 'pokebn'; did you mean 'pokebnn'"):
        parse_spec({"runs": [{"model": "pokebn"}]})


def test_load_spec_reports_missing_files_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_spec(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[grid\nseed = [0]\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_spec(broken)
    good = tmp_path / "clip.toml"
    good.write_text('[defaults]\nmodel = "pokebnn"\n[grid.model_args]\nclip = [1, 2]\n')
    sweep = load_spec(good, parse_overrides(["epochs=1", "model_args.widths=[8, 16, 32]"]))
    assert sweep.name == "clip" and [r.model_args["clip"] for r in sweep.runs] == [1.0, 2.0]
    assert all(r.train["epochs"] == 1 and r.model_args["widths"] == [8, 16, 32] for r in sweep.runs)


def test_overrides_read_toml_values_and_refuse_what_they_cannot_set():
    assert parse_overrides(["limit=2000", "lr=1e-3", "flip=false", "recipe=two-step", "model_args.clip=2"]) == {
        "limit": 2000, "lr": 1e-3, "flip": False, "recipe": "two-step", "model_args": {"clip": "2"}}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(InputError, match="--set label"):
        parse_overrides(["label=x"])
    with pytest.raises(InputError, match="overrides: unknown key 'epoch'"):
        parse_spec({"runs": [SMALL]}, overrides=parse_overrides(["epoch=1"]))


def test_dry_run_lists_keys_and_states_without_training(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\n[defaults]\nmodel = "bnn-small"\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    out = tmp_path / "out"
    sweep = load_spec(spec)
    (out / sweep.runs[1].key).mkdir(parents=True)
    store.write_json(out / sweep.runs[1].key / store.METRICS_FILE, {
        "format": store.RECORD_FORMAT, "version": 1, "status": "finished", "key": sweep.runs[1].key, "label": "x",
        "config": sweep.runs[1].config, "test_accuracy": 0.5, "epochs": 1, "seconds": 1.0,
        "cost": {"params": 1, "size_bytes": 1, "ops": 1, "ace": 1}, "history": []})
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(out), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(r["key"], r["state"]) for r in listed["runs"]] == [(sweep.runs[0].key, "pending"), (sweep.runs[1].key, "finished")]
    assert [state for _, state in plan(sweep, out)] == ["pending", "finished"]
    assert not any(path.suffix == ".h5" for path in out.rglob("*"))


def test_cli_spec_errors_are_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[defaults]\nmodel = "bnn-small"\n[grid]\nseed = [0]\nepoch = [1]\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        "error: grid: unknown key 'epoch'; did you mean 'epochs'?"]


def test_pareto_front_by_hand():
    points = [(10, 0.80), (5, 0.70), (20, 0.85), (12, 0.79), (5, 0.70), (30, 0.85), (1, 0.10)]
    # (12, .79) is beaten by (10, .80); (30, .85) by (20, .85); the two (5, .70) tie and both stay.
    assert pareto_front(points) == [6, 1, 4, 0, 2]
    assert pareto_front([]) == []


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=25))
def test_pareto_front_is_exactly_the_undominated_points(points):
    front = pareto_front(points)
    assert sorted(front) == sorted(set(front))
    for i, point in enumerate(points):
        beaten = any(dominates(other, point) for other in points)
        assert (i in front) == (not beaten)
        if beaten:  # whatever is beaten, something on the front beats it (dominance is transitive)
            assert any(dominates(points[j], point) for j in front)
    costs = [points[i][0] for i in front]
    assert costs == sorted(costs)


def test_settings_varied_within_a_model_get_a_plot_seeds_and_text_do_not():
    def record(model, seed, lr, **args):
        return {"config": {"model": model, "model_args": args, "train": {"seed": seed, "lr": lr}}}

    records = [record("pokebnn", 0, 1e-3, clip=1.0, widths=[8]), record("pokebnn", 1, 1e-3, clip=2.0, widths=[16]),
               record("ftbnn", 0, 5e-3, groups=1), record("rbnet", 0, 1e-3, conv="rpc"), record("rbnet", 0, 1e-3, conv="3x3")]
    # lr differs only between models, widths and conv are not numbers, seeds are not parameters
    assert swept_parameters(records) == [("model_args", "clip")]
    records.append(record("ftbnn", 0, 2e-3, groups=4))
    assert swept_parameters(records) == [("model_args", "clip"), ("model_args", "groups"), ("train", "lr")]


def test_missing_optional_dependencies_say_how_to_install(monkeypatch):
    from numbnn.sweep import cluster, plots

    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'numbnn\[sweep\]'"):
        cluster.import_distributed()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'numbnn\[plot\]'"):
        plots.model_colors([])


def test_the_core_toolkit_and_the_cli_do_not_import_dask_or_matplotlib():
    code = ("import sys, numbnn, numbnn.models, numbnn.train, numbnn.sweep, numbnn.cli.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'matplotlib'}))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_every_example_sweep_spec_loads_and_the_full_length_one_runs_each_default_recipe_with_three_seeds():
    from pathlib import Path

    specs = sorted((Path(__file__).parent.parent / "examples").glob("sweep_*.toml"))
    assert len(specs) >= 5
    loaded = {path.stem: load_spec(path) for path in specs}  # a broken example is an InputError here
    full = loaded["sweep_full_length"]
    seeds: dict[str, set] = {}
    for run in full.runs:
        assert run.train["epochs"] == model_recipe(run.model)["epochs"], run.label  # nothing cut short
        seeds.setdefault(run.model, set()).add(run.train["seed"])
    assert seeds == {model: {0, 1, 2} for model in ("ftbnn", "pokebnn", "reactxgb", "rbnet")}
