"""``sparsity-search`` command line: parse, call one library function, print through one formatter.

Every error the library raises as ``SparsitySearchError`` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Sequence

from .errors import SparsitySearchError

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``sparsity-search train: error: ...``) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# CLI flag -> config field, for the training flags the issue names; anything else goes through --set KEY=VALUE.
TRAIN_FLAGS: dict[str, tuple[str, type]] = {
    "--dataset": ("dataset", str), "--model": ("model", str), "--epochs": ("epochs", int),
    "--timesteps": ("timesteps", int), "--lambda-max": ("lambda_max", float), "--schedule": ("schedule", str),
    "--temperature": ("temperature", float), "--device": ("device", str), "--seed": ("seed", int),
    "--lr": ("lr", float), "--batch-size": ("batch_size", int), "--precision": ("precision", str),
    "--data-dir": ("data_dir", str), "--checkpoint-dir": ("checkpoint_dir", str),
}


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one spiking network and print its result row",
                       description="Train one SNN on cross_entropy + lambda(t) * spikes. Flags override --config.")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config fields (flags override it)")
    for flag, (field, kind) in TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=kind, default=None, metavar=field.upper())
    p.add_argument("--download", action="store_true", default=None, help="download MNIST/CIFAR-10 if missing")
    p.add_argument("--resume", action="store_true", default=None, help="continue from --checkpoint-dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field, value in YAML syntax (repeatable), e.g. --set hidden=[128,64]")
    p.add_argument("--json", metavar="OUT.json", help="write the result row as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config, parse_override
    from .progress import EpochProgress
    from .trainer import train

    overrides: dict[str, Any] = dict(parse_override(item) for item in args.set)
    for field in [f for f, _ in TRAIN_FLAGS.values()] + ["download", "resume"]:
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    cfg = load_config(args.config, overrides)
    with EpochProgress(cfg.epochs, enabled=not args.quiet) as progress:
        row = train(cfg, report=progress.update)
    from .output import print_result_row

    print_result_row(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(row, fh, indent=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsity-search",
                     description="Search the accuracy / spike-count trade-off of spiking neural networks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    from .commands import add_study_commands

    add_study_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except SparsitySearchError as exc:
        print(f"sparsity-search {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"sparsity-search {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
