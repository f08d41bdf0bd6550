"""`numbnn train` with one of `benchmarks/paired_steps.py`'s switches turned off for the whole run.

A change that reorders float sums moves a training run's accuracy by rounding alone; comparing seeds with the
change on (plain `numbnn train`) and off (this script, the same arguments) tells that from an effect of the
change. Everything after ``--`` goes to `numbnn train` unchanged:

    python3 benchmarks/train_switched_off.py --switch permute-input-grad -- --model reactnet-a --seed 2 --json
"""

import argparse
import sys

from paired_steps import SWITCHES

from numbnn.cli.main import run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switch", required=True, choices=sorted(SWITCHES), help="the change turned off")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of `numbnn train`")
    args = parser.parse_args()
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    sys.argv = ["numbnn", "train", *train_args]
    with SWITCHES[args.switch]():
        run()


if __name__ == "__main__":
    main()
