"""The `seqkit` command line."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
from pathlib import Path

# torch and the plugins are imported inside the command handlers, so that
# `--help` is quick and Ctrl-C during start-up is handled like any other.
from seqkit.errors import SeqkitError

log = logging.getLogger("seqkit")
# The core and the built-in plugins log under these names; both reach the
# terminal and the run's train.log.
LOGGERS = (log, logging.getLogger("seqkit_builtins"))

USER_ERROR = 2
INTERRUPTED = 130
LOG_HANDLER = "seqkit-cli"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.handler(args)
    except SeqkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        # Of several training processes, the one that started them reports.
        if not _quiet_on_interrupt():
            print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout closed it, as `seqkit plugins | head` does.
        # Python would report the failed flush at exit, so point stdout at
        # /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _quiet_on_interrupt() -> bool:
    from seqkit import distributed

    if distributed.launched_by_seqkit():
        return True
    return not distributed.shard_from_environment().is_main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqkit",
        description="Recurrent sequence models assembled from TOML recipes.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train, evaluate and save a run")
    run.add_argument("recipe", type=Path, help="recipe .toml file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, such as train.lr=0.001 (repeatable)",
    )
    run.add_argument(
        "--out", type=Path, help="run folder (default: runs/<recipe stem>)"
    )
    run.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last.pt"
    )
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine with DistributedDataParallel, "
        "started through torchrun (default: 1)",
    )
    _add_trace_hooks(run)
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check",
        help="check that a recipe's run can start, without training",
        description="Validates the recipe and its plugins, checks the data files, "
        "then loads the data and builds the vocabularies, the model and the "
        "sampler as `seqkit run` does before its first step. Prints a summary "
        "and exits 0, or prints the first problem and exits 2.",
    )
    check.add_argument("recipe", type=Path, help="recipe .toml file")
    check.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, such as train.lr=0.001 (repeatable)",
    )
    check.add_argument(
        "--no-data",
        dest="load_data",
        action="store_false",
        help="check that the data files exist without loading them, and skip "
        "the vocabularies and the model",
    )
    _add_trace_hooks(check)
    check.set_defaults(handler=_check)

    generate = commands.add_parser(
        "generate",
        help="generate text from a trained run",
        description="Sampling flags override the recipe's sampler; without them "
        "the recipe's sampler is used.",
    )
    generate.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    generate.add_argument(
        "--prompt", default="", help="text to continue (default: start a new text)"
    )
    generate.add_argument(
        "--max-new-tokens", type=int, default=300, help="tokens to add (default: 300)"
    )
    generate.add_argument(
        "--temperature", type=float, help="0 is greedy; above 1 is more random"
    )
    generate.add_argument(
        "--top-k", type=int, help="sample from the k most likely tokens"
    )
    generate.add_argument(
        "--top-p", type=float, help="sample from this much probability mass, in (0, 1]"
    )
    generate.add_argument(
        "--repetition-penalty", type=float, help="1 is off; above 1 repeats less"
    )
    generate.add_argument(
        "--num-samples",
        type=int,
        default=1,
        help="texts to draw, as one batch (default: 1)",
    )
    generate.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for sampling; the same seed repeats the text (default: 0)",
    )
    generate.set_defaults(handler=_generate)

    evaluate = commands.add_parser(
        "evaluate", help="print a run's test metrics as JSON"
    )
    evaluate.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    evaluate.set_defaults(handler=_evaluate)

    classify = commands.add_parser(
        "classify",
        help="label texts with a classification run",
        description="Prints one line per input text: the most likely label and its "
        "probability, separated by a tab, or with --top-k N the N most likely "
        "labels as tab-separated label:probability pairs.",
    )
    classify.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    classify.add_argument(
        "text", nargs="*", help="texts to label (default: the lines of stdin)"
    )
    classify.add_argument(
        "--top-k", type=int, help="print the N most likely labels of each text"
    )
    classify.set_defaults(handler=_classify)

    tag = commands.add_parser(
        "tag",
        help="tag text with a tagging run, one output character per input character",
        description="Prints one output line per input line, each as long as its "
        "input; an empty line gives an empty line.",
    )
    tag.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    tag.add_argument(
        "text", nargs="*", help="texts to tag (default: the lines of stdin)"
    )
    tag.set_defaults(handler=_tag)

    translate = commands.add_parser(
        "translate",
        help="translate texts with a translation run",
        description="Prints one output line per input line; an empty line gives "
        "an empty line. Without the beam flags the recipe's sampler decodes. "
        "With --n-best N, each line holds the N best outputs, best first, "
        "separated by tabs.",
    )
    translate.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    translate.add_argument(
        "text", nargs="*", help="texts to translate (default: the lines of stdin)"
    )
    translate.add_argument(
        "--beam-size", type=int, help="decode with beam search of this width"
    )
    translate.add_argument(
        "--n-best", type=int, help="print the N best outputs of each text (beam)"
    )
    translate.add_argument(
        "--length-penalty",
        type=float,
        help="beam search's alpha in score / ((5 + length) / 6) ** alpha; 0 is off",
    )
    translate.add_argument(
        "--attention-plot",
        type=Path,
        metavar="FILE.png",
        help="draw the attention matrix of the first text into this image",
    )
    translate.set_defaults(handler=_translate)

    caption = commands.add_parser(
        "caption",
        help="caption images with a captioning run",
        description="Prints one caption per image, in the order given. Without "
        "the beam flags the recipe's sampler decodes. With --n-best N, each line "
        "holds the N best captions, best first, separated by tabs.",
    )
    caption.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    caption.add_argument("images", nargs="+", type=Path, help="image files")
    caption.add_argument(
        "--beam-size", type=int, help="decode with beam search of this width"
    )
    caption.add_argument(
        "--n-best", type=int, help="print the N best captions of each image (beam)"
    )
    caption.add_argument(
        "--length-penalty",
        type=float,
        help="beam search's alpha in score / ((5 + length) / 6) ** alpha; 0 is off",
    )
    caption.set_defaults(handler=_caption, attention_plot=None)

    plugins = commands.add_parser("plugins", help="list registered components by kind")
    plugins.add_argument(
        "--verbose",
        dest="show_options",
        action="store_true",
        help="show each component's options with types and defaults",
    )
    _add_trace_hooks(plugins)
    plugins.set_defaults(handler=_plugins)
    _add_export_command(commands)
    return parser


def _add_trace_hooks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trace-hooks",
        action="store_true",
        help="log every plugin hook call: the hook, the plugin, what it "
        "returned and how long it took",
    )


def _configure_logging(verbose: bool) -> None:
    # main() may run more than once in one process (tests, notebooks), so a
    # later call replaces the handler of an earlier one instead of adding one.
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(LOG_HANDLER)
    # On a terminal, start each log line by erasing the progress bar's line.
    prefix = "\r\x1b[K" if sys.stderr.isatty() else ""
    handler.setFormatter(
        logging.Formatter(prefix + "%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    )
    for logger in LOGGERS:
        for old in [h for h in logger.handlers if h.get_name() == LOG_HANDLER]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.propagate = False


def _run(args: argparse.Namespace) -> int:
    from seqkit import distributed
    from seqkit.run import check_recipe, load_recipe, prepare_run_folder, train
    from seqkit.training import LAST

    shard = distributed.shard_from_environment()
    if args.nproc < 1:
        raise SeqkitError(f"--nproc must be 1 or more, got {args.nproc}")
    run_dir = args.out or Path("runs") / args.recipe.stem
    if args.nproc > 1 and not shard.distributed:
        recipe, registry = load_recipe(args.recipe, args.overrides)
        workers = distributed.Shard(0, args.nproc)
        distributed.check_batch_size(recipe.train.batch_size, workers, recipe.file)
        # Find what every process would fail on before starting them, so it
        # is reported once, as any user error is.
        check_recipe(recipe, registry, load_data=False)
        prepare_run_folder(run_dir, args.resume)
        try:
            return distributed.launch(args.nproc, _run_arguments(args))
        except KeyboardInterrupt:
            _report_interrupt(args, run_dir / LAST)
            raise
    if not shard.is_main:
        # Rank 0 reports for all; the others speak only of problems.
        for logger in LOGGERS:
            logger.setLevel(logging.WARNING)
        train(*load_recipe(args.recipe, args.overrides), run_dir, args.resume)
        return 0

    recipe, registry = load_recipe(args.recipe, args.overrides, args.trace_hooks)
    prepare_run_folder(run_dir, args.resume)
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    for logger in LOGGERS:
        logger.addHandler(file_handler)
    try:
        metrics = train(recipe, registry, run_dir, resume=args.resume)
    except KeyboardInterrupt:
        if not distributed.launched_by_seqkit():
            _report_interrupt(args, run_dir / LAST)
        raise
    except SeqkitError as error:
        # main() prints the error on stderr; the run's log file keeps it too.
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 0, "%s", (error,), None
        )
        file_handler.handle(record)
        raise
    finally:
        for logger in LOGGERS:
            logger.removeHandler(file_handler)
        file_handler.close()
    print(json.dumps(metrics, indent=2))
    print(f"run folder: {run_dir}", file=sys.stderr)
    return 0


def _report_interrupt(args: argparse.Namespace, last: Path) -> None:
    """Log how to resume an interrupted run from `last`, or that nothing can be."""
    if not last.is_file():
        log.error("interrupted before the first checkpoint; nothing to resume")
        return
    arguments = [str(args.recipe), "--resume", "--out", str(last.parent)]
    for override in args.overrides:
        arguments += ["--set", override]
    if args.nproc > 1:
        arguments += ["--nproc", str(args.nproc)]
    log.error(
        "interrupted; %s keeps the last saved step, continue with `seqkit run %s`",
        last,
        shlex.join(arguments),
    )


def _run_arguments(args: argparse.Namespace) -> list[str]:
    """Return the `seqkit run` arguments that each torchrun process receives."""
    arguments = ["run", str(args.recipe)]
    if args.verbose:
        arguments.insert(0, "--verbose")
    for override in args.overrides:
        arguments += ["--set", override]
    if args.out is not None:
        arguments += ["--out", str(args.out)]
    if args.resume:
        arguments.append("--resume")
    if args.trace_hooks:
        arguments.append("--trace-hooks")
    return arguments


def _generate(args: argparse.Namespace) -> int:
    from seqkit.api import load_run

    _check_generate_args(args)
    texts = load_run(args.run_dir).generate(
        prompt=args.prompt,
        max_new_tokens=args.max_new_tokens,
        num_samples=args.num_samples,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
    )
    print("\n\n".join(texts))
    return 0


def _check_generate_args(args: argparse.Namespace) -> None:
    if args.temperature is not None and not args.temperature >= 0:
        raise SeqkitError(
            f"--temperature must be 0 (greedy) or positive, got {args.temperature}"
        )
    if args.top_k is not None and args.top_k < 1:
        raise SeqkitError(f"--top-k must be at least 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise SeqkitError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.repetition_penalty is not None and not args.repetition_penalty >= 1:
        raise SeqkitError(
            f"--repetition-penalty must be at least 1, got {args.repetition_penalty}"
        )
    if args.max_new_tokens < 1:
        raise SeqkitError(
            f"--max-new-tokens must be at least 1, got {args.max_new_tokens}"
        )
    if not 0 <= args.seed < 2**63:
        raise SeqkitError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.num_samples < 1:
        raise SeqkitError(f"--num-samples must be at least 1, got {args.num_samples}")


def _evaluate(args: argparse.Namespace) -> int:
    from seqkit.run import evaluate_built, load_run

    built = load_run(args.run_dir, load_data=True)
    print(json.dumps(evaluate_built(built), indent=2))
    return 0


def _input_texts(texts: list[str]) -> list[str]:
    """Return the texts given on the command line, or else the lines of stdin."""
    if texts:
        return texts
    return [line.removesuffix("\n").removesuffix("\r") for line in sys.stdin]


def _tag(args: argparse.Namespace) -> int:
    from seqkit.api import load_run

    run = load_run(args.run_dir)
    for output in run.tag(_input_texts(args.text)):
        print(output)
    return 0


def _classify(args: argparse.Namespace) -> int:
    from seqkit.api import load_run

    if args.top_k is not None and args.top_k < 1:
        raise SeqkitError(f"--top-k must be at least 1, got {args.top_k}")
    run = load_run(args.run_dir)
    for ranked in run.classify(_input_texts(args.text), top_k=args.top_k or 1):
        if args.top_k is None:
            label, probability = ranked[0]
            print(f"{label}\t{probability:.4f}")
        else:
            print("\t".join(f"{label}:{p:.4f}" for label, p in ranked))
    return 0


def _beam_flags(args: argparse.Namespace) -> dict:
    return {
        "beam_size": args.beam_size,
        "n_best": args.n_best,
        "length_penalty": args.length_penalty,
    }


def _print_outputs(results: list, n_best: int | None) -> None:
    """Print each result's text, or its n-best texts separated by tabs."""
    for result in results:
        if n_best is not None:
            print("\t".join(text for text, _ in result.nbest))
        else:
            print(result.text)


def _translate(args: argparse.Namespace) -> int:
    from seqkit.api import load_run

    _check_translate_args(args)
    run = load_run(args.run_dir)
    texts = _input_texts(args.text)
    if args.attention_plot is not None and not any(t.strip() for t in texts[:1]):
        raise SeqkitError(
            "--attention-plot draws the first text, which is empty; give a text"
        )
    results = run.translate(texts, **_beam_flags(args))
    _print_outputs(results, args.n_best)
    if args.attention_plot is not None:
        try:
            drawn = run.built.task.plot_attention(
                run.built.model, texts[0], results[0], args.attention_plot
            )
        except OSError as error:
            raise SeqkitError(
                f"--attention-plot: cannot write {args.attention_plot}: "
                f"{error.strerror or error}; choose a writable path"
            ) from None
        if not drawn:
            raise SeqkitError(
                f"run {args.run_dir} has no attention to draw; --attention-plot "
                "needs a recipe with an [attention] section"
            )
    return 0


def _caption(args: argparse.Namespace) -> int:
    from seqkit.api import load_run

    _check_translate_args(args)
    run = load_run(args.run_dir)
    _print_outputs(run.caption(list(args.images), **_beam_flags(args)), args.n_best)
    return 0


def _check_translate_args(args: argparse.Namespace) -> None:
    if args.beam_size is not None and args.beam_size < 1:
        raise SeqkitError(f"--beam-size must be at least 1, got {args.beam_size}")
    if args.n_best is not None and args.n_best < 1:
        raise SeqkitError(f"--n-best must be at least 1, got {args.n_best}")
    if args.length_penalty is not None and not 0 <= args.length_penalty < math.inf:
        raise SeqkitError(
            "--length-penalty must be a finite number, 0 or more, got "
            f"{args.length_penalty}"
        )
    if args.attention_plot is not None:
        _check_plot_path(args.attention_plot)


# The image formats that --attention-plot writes, by file suffix.
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _check_plot_path(plot: Path) -> None:
    """Refuse an --attention-plot path that matplotlib could not write."""
    if plot.suffix.lower() not in PLOT_SUFFIXES:
        raise SeqkitError(
            f"--attention-plot: {str(plot)!r} needs a .png, .pdf or .svg suffix, "
            "which sets the image format"
        )
    if plot.is_dir():
        raise SeqkitError(f"--attention-plot: {plot} is a folder; give a file name")
    if not plot.parent.is_dir():
        what = "is not a folder" if plot.parent.exists() else "does not exist"
        raise SeqkitError(
            f"--attention-plot: {plot.parent} {what}; give a path in an existing folder"
        )


def _check(args: argparse.Namespace) -> int:
    from seqkit.run import check_recipe, load_recipe

    recipe, registry = load_recipe(args.recipe, args.overrides, args.trace_hooks)
    report = check_recipe(recipe, registry, load_data=args.load_data)
    print(f"recipe: {args.recipe}")
    print("components:")
    for section, name, provider in report.components:
        print(f"  {section:<17} {name:<16} {provider}")
    if report.split_sizes:
        sizes = ", ".join(f"{n:,} {split}" for split, n in report.split_sizes.items())
        print(f"data: {sizes} examples")
    for name, size in report.vocabulary_sizes.items():
        print(f"{name} vocabulary: {size:,} tokens")
    if report.parameters is not None:
        print(f"model: {report.parameters:,} parameters")
    if not args.load_data:
        print("data files found; not loaded (--no-data)")
    _print_failures(registry.failures)
    print("ok")
    return 0


def _print_failures(failures: list) -> None:
    if failures:
        print("failed plugins:")
    for failure in failures:
        print(f"  {failure.plugin:<16} {failure.fault}")


def _plugins(args: argparse.Namespace) -> int:
    from seqkit.registry import KINDS, create_registry

    registry = create_registry(trace_hooks=args.trace_hooks)
    for kind in KINDS:
        print(f"{kind}:")
        for name in registry.names(kind):
            cls = registry.components[kind][name][0]
            print(
                f"  {name:<16} {registry.provider(kind, name)} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
            if args.show_options:
                # Task classes take no options and define no Options.
                _print_options(getattr(cls, "Options", type(None)), "      ")
    if args.show_options:
        from seqkit.recipe import EvaluateOptions, TrainOptions

        for section, options_type in (
            ("train", TrainOptions),
            ("evaluate", EvaluateOptions),
        ):
            print(f"[{section}]:")
            _print_options(options_type, "  ")
    _print_failures(registry.failures)
    return 0


def _print_options(options_type: type, indent: str) -> None:
    from seqkit import schema

    for option, type_name, default, help_text in schema.describe(options_type):
        suffix = f"  {help_text}" if help_text else ""
        print(f"{indent}{option}: {type_name} = {default!r}{suffix}")


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="export a run's encoder and decoder step as TorchScript or ONNX",
        description="Writes the encoder graph (when the run has an encoder), the "
        "decoder step graph, vocabulary.json and manifest.json, which names every "
        "input and output with its shape, and prints the paths written. Each "
        "graph is compared with the eager model before the command succeeds, "
        "except ONNX graphs when onnxruntime is not installed: those are written "
        "unchecked, with a warning. --format onnx needs the onnx package.",
    )
    export.add_argument("run_dir", type=Path, help="run folder of `seqkit run`")
    export.add_argument(
        "--format",
        required=True,
        metavar="{torchscript,onnx}",
        help="torchscript (.pt files for torch.jit.load) or onnx (.onnx files)",
    )
    export.add_argument(
        "--out", type=Path, help="output folder (default: RUN_DIR/export/FORMAT)"
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from seqkit.export import export_run

    for path in export_run(args.run_dir, args.format, args.out):
        print(path)
    return 0
