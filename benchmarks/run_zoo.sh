#!/usr/bin/env bash
# Train every registered model with its default recipe on 2 threads and record one JSON file per run,
# the input of benchmarks/results_table.py.
#
#   benchmarks/run_zoo.sh [OUT_DIR] [numbnn train options applied to every run ...]
#   MODELS="bnn-small float-cnn" benchmarks/run_zoo.sh runs/smoke --limit 300 --epochs 1
#
# OUT_DIR (default runs/zoo) receives <model>.h5 (checkpoint) and <model>.json: the object
# `numbnn train --json` prints, plus "command" (the exact command line) and "threads".
# Then: python3 benchmarks/results_table.py OUT_DIR --out OUT_DIR/results.md
set -euo pipefail

out_dir=${1:-runs/zoo}
shift $(( $# > 0 ? 1 : 0 ))
threads=${THREADS:-2}
mkdir -p "$out_dir"

if [[ -z "${MODELS:-}" ]]; then
    MODELS=$(numbnn models --json | tail -n 1 | python3 -c 'import json, sys; print(" ".join(m["name"] for m in json.load(sys.stdin)["models"]))')
fi

for model in $MODELS; do
    command=(numbnn train --model "$model" --threads "$threads" --out "$out_dir/$model.h5" --json "$@")
    echo "== ${command[*]}" >&2
    result=$("${command[@]}" | tail -n 1)
    # Merge the command into the run's JSON and write it atomically (temporary file, then rename).
    RESULT="$result" COMMAND="${command[*]}" THREADS="$threads" python3 - "$out_dir/$model.json" <<'EOF'
import json, os, sys
run = json.loads(os.environ["RESULT"])
run.update(command=os.environ["COMMAND"], threads=int(os.environ["THREADS"]))
target = sys.argv[1]
tmp = os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.tmp-{os.getpid()}")
with open(tmp, "w") as f:
    json.dump(run, f, indent=1, sort_keys=True)
    f.write("\n")
os.replace(tmp, target)
EOF
    echo "   -> $out_dir/$model.json" >&2
done
