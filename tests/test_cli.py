"""The `seqkit` command line, called in-process through `seqkit.cli.main`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import tomllib

import pytest
from helpers import CHAR_RECIPE, DATA_DIR, MACBETH_LINES, char_recipe, write_recipe

from seqkit.cli import main


def run_cli(*argv):
    """Run `seqkit ARGV` in-process and return (exit status, stdout, stderr)."""
    logger = logging.getLogger("seqkit")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(arg) for arg in argv])
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A CHAR_RECIPE run made by `seqkit run`, with its stdout."""
    folder = tmp_path_factory.mktemp("cli")
    recipe = write_recipe(folder, CHAR_RECIPE)
    code, out, err = run_cli("run", recipe, "--out", folder / "run")
    assert code == 0, err
    return folder / "run", out


def test_run_writes_run_folder(cli_run):
    run_dir, out = cli_run

    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt",
        "last.pt",
        "loss.png",
        "metrics.json",
        "recipe.toml",
        "samples.txt",
        "train.log",
    ]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(metrics) == ["test_bpc", "test_loss", "val_loss"]
    assert metrics["test_bpc"] == pytest.approx(metrics["test_loss"] / math.log(2))
    assert json.loads(out) == metrics
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_writes_resolved_recipe(cli_run):
    run_dir, _ = cli_run

    table = tomllib.loads((run_dir / "recipe.toml").read_text(encoding="utf-8"))

    assert table["decoder"] == {
        **CHAR_RECIPE["decoder"],
        "layers": 1,
        "tie_weights": False,
        "attend": "after",
        "input_feeding": False,
    }
    assert table["data"]["plays"] == ["macbeth"]
    assert table["train"]["max_steps"] == 6
    assert table["train"]["optimizer"] == "adamw"
    assert table["evaluate"]["prompt"] == "MACBETH:"


def test_run_writes_log_and_samples(cli_run):
    run_dir, _ = cli_run

    log_text = (run_dir / "train.log").read_text(encoding="utf-8")
    samples = (run_dir / "samples.txt").read_text(encoding="utf-8")

    assert "training for 6 steps" in log_text
    assert "validation at step 6" in log_text
    assert "test metrics:" in log_text
    assert samples.endswith("\n")
    assert samples.count("MACBETH:") == 2
    assert samples.startswith("MACBETH:")


def test_run_default_folder(tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path, char_recipe(train={"max_steps": 1}), "tiny.toml")
    monkeypatch.chdir(tmp_path)

    code, _, err = run_cli("run", "tiny.toml")

    assert code == 0, err
    assert (tmp_path / "runs" / "tiny" / "checkpoint.pt").is_file()
    assert recipe.is_file()
    assert err.strip().endswith(f"run folder: {os.path.join('runs', 'tiny')}")


def test_word_run_reports_perplexity(tmp_path):
    (tmp_path / "macbeth.txt").write_text(MACBETH_LINES * 3, encoding="utf-8")
    table = char_recipe(
        train={"max_steps": 2, "seq_len": 8},
        evaluate={"prompt": "If it were", "sample_tokens": 5},
    )
    table["data"] = {"plugin": "text", "paths": ["macbeth.txt"]}
    table["tokenizer"] = {"plugin": "word", "lowercase": True}
    recipe = write_recipe(tmp_path, table)

    code, out, err = run_cli("run", recipe, "--out", tmp_path / "run")

    assert code == 0, err
    metrics = json.loads(out)
    assert sorted(metrics) == ["test_loss", "test_ppl", "val_loss"]
    assert metrics["test_ppl"] == pytest.approx(math.exp(metrics["test_loss"]))
    # The lowercasing tokenizer lowercases the prompt too.
    samples = (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8")
    assert samples.startswith("if it were ")


def test_run_set_override(tmp_path):
    recipe = write_recipe(tmp_path, CHAR_RECIPE)
    run_dir = tmp_path / "run"

    overrides = "--set train.max_steps=1 --set train.lr=0.01".split()

    code, _, err = run_cli("run", recipe, "--out", run_dir, *overrides)

    assert code == 0, err
    table = tomllib.loads((run_dir / "recipe.toml").read_text(encoding="utf-8"))
    assert table["train"]["max_steps"] == 1
    assert table["train"]["lr"] == 0.01


def test_generate_repeatable(cli_run):
    run_dir, _ = cli_run
    flags = "--prompt MACBETH: --temperature 0.8 --max-new-tokens 40".split()

    first = run_cli("generate", run_dir, *flags, "--seed", "1")
    second = run_cli("generate", run_dir, *flags, "--seed", "1")
    other_seed = run_cli("generate", run_dir, *flags, "--seed", "2")

    assert first[0] == 0, first[2]
    assert first[1] == second[1]
    assert first[1] != other_seed[1]
    assert first[1].startswith("MACBETH:")


def test_generate_num_samples(cli_run):
    run_dir, _ = cli_run

    flags = "--prompt A --num-samples 3 --max-new-tokens 5 --temperature 0".split()

    code, out, err = run_cli("generate", run_dir, *flags)

    assert code == 0, err
    texts = out[:-1].split("\n\n")
    assert len(texts) == 3
    assert texts[0] == texts[1] == texts[2]


def test_generate_flags_replace_greedy_sampler(tmp_path):
    # A greedy recipe with --temperature switches to the `sample` sampler.
    table = char_recipe(train={"max_steps": 1})
    table["sampler"] = {"plugin": "greedy"}
    recipe = write_recipe(tmp_path, table)
    code, _, err = run_cli("run", recipe, "--out", tmp_path / "run")
    assert code == 0, err

    flags = "--max-new-tokens 30 --seed 1".split()
    greedy = run_cli("generate", tmp_path / "run", *flags)
    warm = run_cli("generate", tmp_path / "run", *flags, "--temperature", "2")

    assert greedy[0] == 0
    assert warm[0] == 0
    assert greedy[1] != warm[1]


def test_evaluate_prints_metrics(cli_run):
    run_dir, _ = cli_run

    code, out, err = run_cli("evaluate", run_dir)

    assert code == 0, err
    metrics = json.loads(out)
    stored = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics == stored


def test_plugins_lists_components():
    code, out, _ = run_cli("plugins")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "data:"
    for kind in ("tokenizer:", "encoder:", "decoder:", "sampler:", "task:", "metric:"):
        assert kind in lines
    greedy = next(line for line in lines if line.strip().startswith("greedy"))
    assert "builtin-samplers" in greedy
    assert "seqkit_builtins.samplers.GreedySampler" in greedy


def test_plugins_verbose_lists_options():
    code, out, _ = run_cli("plugins", "--verbose")

    assert code == 0
    assert "      temperature: float = 1.0  0 means greedy" in out
    assert "      cell: 'lstm' | 'gru' | 'rnn_tanh' | 'rnn_relu' = 'lstm'" in out


def test_global_verbose_leaves_plugins_short():
    code, out, _ = run_cli("-v", "plugins")

    assert code == 0
    assert "temperature: float" not in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "missing.toml"], "error: missing.toml: recipe file not found"),
        (["run", DATA_DIR / "unknown_key.toml"], "Did you mean `lr`?"),
        (
            ["run", DATA_DIR / "base.toml", "--set", "train.lrr=1"],
            "error: --set: `train.lrr`",
        ),
        (["run", DATA_DIR / "unknown_plugin.toml"], "rnn, tagger."),
        (["check", "missing.toml"], "error: missing.toml: recipe file not found"),
        (["check", DATA_DIR / "unknown_plugin.toml", "--no-data"], "rnn, tagger."),
        (
            ["check", DATA_DIR / "base.toml", "--set", "train.lrr=1"],
            "error: --set: `train.lrr`",
        ),
        (["generate", "no-such-run"], "error: run folder not found: no-such-run"),
        (["evaluate", "no-such-run"], "error: run folder not found: no-such-run"),
    ],
)
def test_user_error_one_line(tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)

    code, out, err = run_cli(*argv)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--top-p", "1.5"], "error: --top-p must be in (0, 1], got 1.5"),
        (["--top-k", "0"], "error: --top-k must be at least 1, got 0"),
        (
            ["--temperature", "-1"],
            "error: --temperature must be 0 (greedy) or positive",
        ),
        (["--temperature", "nan"], "error: --temperature must be 0 (greedy) or"),
        (["--num-samples", "0"], "error: --num-samples must be at least 1, got 0"),
        (
            ["--max-new-tokens", "0"],
            "error: --max-new-tokens must be at least 1, got 0",
        ),
        (
            ["--repetition-penalty", "0.5"],
            "error: --repetition-penalty must be at least 1",
        ),
    ],
)
def test_generate_rejects_bad_flags(cli_run, flags, expected):
    run_dir, _ = cli_run

    code, out, err = run_cli("generate", run_dir, *flags)

    # Loading the run may log INFO lines first, so the error is the last line.
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2
    assert out == ""
    assert error_lines == [err.splitlines()[-1]]
    assert expected in error_lines[0]
    assert "Traceback" not in err


def test_generate_on_folder_without_checkpoint(tmp_path):
    code, _, err = run_cli("generate", tmp_path)

    assert code == 2
    assert err == f"error: checkpoint not found: {tmp_path / 'checkpoint.pt'}\n"


def test_interrupt_exits_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("seqkit.run.train", interrupted)

    code, _, err = run_cli("run", DATA_DIR / "base.toml", "--out", tmp_path / "run")

    assert code == 130
    assert "interrupted before the first checkpoint; nothing to resume" in err
    assert err.endswith("error: interrupted\n")
    log_text = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert "interrupted before the first checkpoint" in log_text


def test_interrupt_after_checkpoint_names_resume(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"

    def interrupted(recipe, registry, folder, **kwargs):
        (folder / "last.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr("seqkit.run.train", interrupted)
    recipe = DATA_DIR / "base.toml"

    code, _, err = run_cli("run", recipe, "--out", run_dir)

    assert code == 130
    assert f"continue with `seqkit run {recipe} --resume --out {run_dir}`" in err


def test_run_refuses_existing_run(cli_run):
    run_dir, _ = cli_run

    code, _, err = run_cli("run", DATA_DIR / "base.toml", "--out", run_dir)

    assert code == 2
    assert err.startswith(f"error: run folder {run_dir} already contains a run")
    assert "--resume" in err


def test_resume_without_checkpoint(tmp_path):
    code, _, err = run_cli(
        "run", DATA_DIR / "base.toml", "--out", tmp_path / "new", "--resume"
    )

    assert code == 2
    assert err.startswith("error: nothing to resume:")


def test_out_on_a_file_is_user_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")

    code, _, err = run_cli("run", DATA_DIR / "base.toml", "--out", target / "run")

    assert code == 2
    assert err.startswith(f"error: cannot create run folder {target / 'run'}")


def test_generate_on_checkpoint_file(cli_run):
    run_dir, _ = cli_run

    code, _, err = run_cli("generate", run_dir / "checkpoint.pt")

    assert code == 2
    assert err.startswith("error: expected a run folder, got the file")


def test_generate_seed_out_of_range(cli_run):
    run_dir, _ = cli_run

    code, _, err = run_cli("generate", run_dir, "--seed", str(2**64))

    assert code == 2
    assert err.startswith("error: --seed must be in [0, 2**63)")


def test_repeated_main_logs_once(cli_run, capsys):
    run_dir, _ = cli_run

    for _ in range(2):
        main(["generate", str(run_dir), "--prompt", "@", "--max-new-tokens", "1"])
        err = capsys.readouterr().err

        assert err.count("replaced by <unk>: '@'") == 1


def test_module_entry_user_error(tmp_path):
    # `python -m seqkit` in a fresh interpreter, so nothing of this process helps.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "seqkit", "run", str(DATA_DIR / "wrong_type.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "`train.batch_size`: expected int, got str 'big'" in result.stderr


def test_plugins_verbose_lists_train_defaults():
    code, out, _ = run_cli("plugins", "--verbose")

    assert code == 0
    assert "[train]:\n  epochs: int = 1  passes over the training split\n" in out
    assert "  lr: float = 0.002  peak learning rate\n" in out
    assert "[evaluate]:\n" in out


def test_evaluate_warns_when_data_changed(tmp_path):
    corpus = tmp_path / "macbeth.txt"
    corpus.write_text(MACBETH_LINES * 3, encoding="utf-8")
    table = char_recipe(train={"max_steps": 2})
    table["data"] = {"plugin": "text", "paths": ["macbeth.txt"]}
    recipe = write_recipe(tmp_path, table)
    assert run_cli("run", recipe, "--out", tmp_path / "run")[0] == 0

    _, _, unchanged = run_cli("evaluate", tmp_path / "run")
    corpus.write_text(MACBETH_LINES.upper() * 3, encoding="utf-8")
    code, _, changed = run_cli("evaluate", tmp_path / "run")

    assert "differ from the data" not in unchanged
    assert code == 0
    assert "the data read now differ from the data" in changed


def test_plugins_omits_empty_failure_list():
    code, out, _ = run_cli("plugins")

    assert code == 0
    assert "failed plugins:" not in out


def test_check_help_lists_flags():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["check", "--help"])

    assert "--no-data" in out.getvalue()
    assert "--trace-hooks" in out.getvalue()


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        (
            "out.txt",
            "--attention-plot: 'out.txt' needs a .png, .pdf or .svg suffix, which "
            "sets the image format",
        ),
        (
            "",
            "--attention-plot: '.' needs a .png, .pdf or .svg suffix, which sets "
            "the image format",
        ),
        ("folder.png", "--attention-plot: folder.png is a folder; give a file name"),
        (
            "file.txt/a.png",
            "--attention-plot: file.txt is not a folder; give a path in an existing "
            "folder",
        ),
        (
            "missing/a.png",
            "--attention-plot: missing does not exist; give a path in an existing "
            "folder",
        ),
    ],
)
def test_attention_plot_path_is_checked_first(tmp_path, monkeypatch, plot, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file.txt").write_text("x")

    status, _, err = run_cli("translate", "no-run", "cat", "--attention-plot", plot)

    assert status == 2
    assert err.strip() == f"error: {message}"


def test_length_penalty_must_be_finite(capsys):
    status, _, err = run_cli("translate", "no-run", "cat", "--length-penalty", "inf")

    assert status == 2
    assert err.strip() == (
        "error: --length-penalty must be a finite number, 0 or more, got inf"
    )
