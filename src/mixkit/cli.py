"""The ``mixkit`` command: ``train``, ``eval``, ``demo``, ``show``, ``list``, ``bench``."""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path
from typing import Dict, List, Optional

from .registry import list_methods, method_options


def parse_options(pairs: List[str]) -> Dict[str, Dict[str, object]]:
    """``["cutmix.alpha=0.5", "dcutmix.k=5"]`` → ``{"cutmix": {"alpha": 0.5}, "dcutmix": {"k": 5}}``.

    Values are Python literals (numbers, tuples, strings, True/False); anything else is a string.
    """
    options: Dict[str, Dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in list_methods():
            raise SystemExit(f"mixkit: bad option {pair!r}; expected METHOD.NAME=VALUE with METHOD "
                             f"one of {', '.join(list_methods())}")
        if name not in method_options(method):
            raise SystemExit(f"mixkit: {method} has no option {name!r}; valid: "
                             f"{', '.join(method_options(method))}")
        try:
            parsed: object = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        options.setdefault(method, {})[name] = parsed
    return options


def methods_arg(arg: str) -> List[str]:
    names = list_methods() if arg == "all" else [m.strip() for m in arg.split(",") if m.strip()]
    unknown = [m for m in names if m not in list_methods()]
    if unknown:
        raise SystemExit(f"mixkit: unknown method(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(list_methods())}")
    return names


#: ``mixkit bench NAME`` runs ``mixkit.bench.NAME``: a module with ``HELP``, ``add_args(parser)``
#: and ``main(args) -> int``.
BENCH_COMMANDS = ("ops", "pairing", "overhead", "fidelity", "accuracy", "subsample", "solvers")
#: more top-level commands, ``NAME: module``; each module has ``HELP``, ``add_args``, ``main``.
COMMAND_MODULES: Dict[str, str] = {"subsample": "mixkit.subsample.command"}


def _bench_module(name: str):
    return importlib.import_module(f"{__package__}.bench.{name}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixkit", description="Mixing augmentations for image "
                                     "classification: training, evaluation, pictures, benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("show", help="picture grid of what each mixer makes from bundled images")
    p.add_argument("--methods", default="all", help="comma-separated names or 'all' (default all)")
    p.add_argument("--out", type=Path, default=Path("runs/show/grid.png"),
                   help="PNG to write (default runs/show/grid.png)")
    p.add_argument("--batch", type=int, default=16, help="images mixed together (default 16)")
    p.add_argument("--columns", type=int, default=8, help="images shown per method (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch and the mixers (default 0)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="a method option, e.g. -o dcutmix.k=5 (repeatable)")

    sub.add_parser("list", help="list the registered methods and their options")

    from .train.config import get_args_parser as train_parser
    from .train.demo import add_demo_args

    train_parser(sub.add_parser("train", help="train a model with a mixer (recipes: --list-recipes)"))
    add_demo_args(sub.add_parser("demo", help="train vanilla and mixers on the bundled demo set, "
                                 "evaluate them and write a report"))
    ev = sub.add_parser("eval", help="evaluate a training checkpoint (errors, calibration, "
                        "robustness, OOD)")
    ev.add_argument("checkpoint", type=Path, help="checkpoint.pt of a run (or the run directory)")
    ev.add_argument("--out", type=Path, default=None, help="output directory (default RUN/eval)")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda, … (default auto)")
    ev.add_argument("--batch-size", type=int, default=None, help="default: the run's eval batch size")
    ev.add_argument("--no-fgsm", action="store_true", help="skip FGSM robust accuracy")
    ev.add_argument("--pgd-steps", type=int, default=0, help="PGD steps (0: no PGD; e.g. 10)")
    ev.add_argument("--eps", type=float, default=8 / 255, help="attack radius in pixels (default 8/255)")
    ev.add_argument("--corruptions", action="store_true",
                    help="Gaussian-noise and random-replacement background errors")
    ev.add_argument("--cifar-c", type=Path, default=None, help="CIFAR-10-C/100-C folder (*.npy)")
    ev.add_argument("--ood", type=Path, default=None, help="ImageFolder of out-of-distribution images")
    ev.add_argument("--seed", type=int, default=0, help="seed of PGD starts and corruptions (default 0)")

    for name, path in COMMAND_MODULES.items():
        module = importlib.import_module(path)
        module.add_args(sub.add_parser(name, help=module.HELP))

    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench", required=True)
    for name in BENCH_COMMANDS:
        module = _bench_module(name)
        module.add_args(bsub.add_parser(name, help=module.HELP))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.command == "list":
        for name in list_methods():
            print(f"{name:18s} {', '.join(method_options(name))}")
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "demo":
        from .train.demo import run_demo

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        mixers = [m for m in methods if m not in ("none", "vanilla")]
        if mixers:
            methods_arg(",".join(mixers))  # validates the names
        report = run_demo(methods, args.out, args.epochs, args.seed, progress=not args.no_progress)
        print(f"report: {report}")
        return 0
    if args.command == "eval":
        from .train.evaluate import evaluate_checkpoint, format_result

        path = args.checkpoint / "checkpoint.pt" if args.checkpoint.is_dir() else args.checkpoint
        result = evaluate_checkpoint(path, out_dir=args.out, device=args.device,
                                     batch_size=args.batch_size, fgsm=not args.no_fgsm,
                                     pgd_steps=args.pgd_steps, eps=args.eps,
                                     corruptions=args.corruptions, cifar_c=args.cifar_c,
                                     ood=args.ood, seed=args.seed)
        print(format_result(result))
        print(f"wrote {Path(result['reliability_png']).parent / 'eval.json'}")
        return 0
    if args.command == "show":
        from .viz import show

        path = show(methods_arg(args.methods), args.out, batch=args.batch, columns=args.columns,
                    seed=args.seed, options=parse_options(args.option))
        print(f"wrote {path}")
        return 0
    if args.command in COMMAND_MODULES:
        return importlib.import_module(COMMAND_MODULES[args.command]).main(args)
    if args.command == "bench":
        return _bench_module(args.bench).main(args)
    return 2


def _train(args: argparse.Namespace) -> int:
    from .train.config import list_recipes, resolve
    from .train.engine import Interrupted, fit

    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    try:
        config = resolve(args)
    except ValueError as err:
        raise SystemExit(f"mixkit train: {err}") from None
    try:
        fit(config)
    except Interrupted as err:
        print(err, file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
