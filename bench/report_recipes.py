"""Render benchmarks 10 to 12 as Markdown: the recipes, LSTM GFLOP/s and scaling."""

from __future__ import annotations

from typing import Any

from bench.common import describe_busy

BEAM_UNITS = {"translation": "sentences/s", "captioning": "captions/s"}


def _size(size: float) -> str:
    if size >= 2**30:
        return f"{size / 2**30:.2f} GiB"
    return f"{size / 2**20:.0f} MiB"


def _seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def _peak_memory(recipe: dict[str, Any]) -> str:
    text = f"{_size(recipe['peak_rss_bytes'])} RSS"
    if "peak_cuda_bytes" in recipe:
        text += f", {_size(recipe['peak_cuda_bytes'])} on the GPU"
    return text


def _recipe_row(recipe: dict[str, Any]) -> str:
    if "skipped" in recipe:
        return f"| `{recipe['recipe']}.toml` | skipped: {recipe['skipped']} |"
    training, decoding = recipe["training"], recipe["decoding"]
    beam = decoding.get("beam")
    beam_text = "no beam search"
    if beam is not None:
        unit = BEAM_UNITS[recipe["task"]]
        beam_text = (
            f"{beam['sentences_per_s']:,.1f} {unit} (beam {beam['beam_size']}, "
            f"{beam['tokens_per_output']:.1f} tokens each)"
        )
    batch_share = training["batch_seconds"] / training["step_seconds"]
    return (
        f"| `{recipe['recipe']}.toml` | {recipe['task']} | "
        f"{recipe['parameters']:,} | {recipe['batch']} | "
        f"{training['seqkit_tokens_per_s']:,.0f} | "
        f"{training['plain_tokens_per_s']:,.0f} | **{training['ratio']:.3f}** | "
        f"{batch_share:.1%} | {decoding['rate']:,.0f} {decoding['unit']} | "
        f"{beam_text} | {_peak_memory(recipe)} |"
    )


def _recipe_detail(recipe: dict[str, Any]) -> str:
    name = f"`{recipe['recipe']}.toml`"
    if "skipped" in recipe:
        return f"- {name}: not run, because its data is missing."
    training = recipe["training"]
    quartiles = ", ".join(f"{value:.3f}" for value in training["ratio_quartiles"])
    return (
        f"- {name}: {training['tokens_per_step']:,.0f} tokens per step on average, "
        f"seqkit step {_seconds(training['step_seconds'])} with "
        f"`train_batch` {_seconds(training['batch_seconds'])} of it. Per-step "
        f"ratio quartiles {quartiles}. First-batch loss "
        f"{training['first_loss']:.5f} on both sides. Output: "
        f"{recipe['decoding']['method']}. Took {recipe['seconds']:.0f} s."
    )


def render_recipes(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the recipe benchmark."""
    settings = result["settings"]
    fresh = settings["fresh_process"]
    process = "in a fresh process" if fresh else "in the suite's process"
    lines = [
        "### 10. Training and output speed of every recipe",
        "",
        f"Each recipe ran {process}, with {settings['warmup_steps']} warm-up and "
        f"{settings['timed_steps']} timed steps on each side, alternating step by "
        f"step. Took {result['seconds']:.0f} s; other processes kept "
        f"{describe_busy(result['other_cores_busy'])} busy.",
        "",
        "| recipe | task | parameters | batch | seqkit tokens/s | plain tokens/s | "
        "ratio seqkit / plain | `train_batch` / seqkit step | output speed | "
        "beam search | peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_recipe_row(recipe) for recipe in result["recipes"]]
    lines += ["", *[_recipe_detail(recipe) for recipe in result["recipes"]]]
    if not fresh:
        lines += [
            "",
            "The recipes ran in this process one after another, so the peak "
            "memory column includes what earlier recipes left allocated.",
        ]
    return lines


def render_flops(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the LSTM GFLOP/s benchmark."""
    shape, settings = result["shape"], result["settings"]
    lines = [
        "### 11. GFLOP/s of the LSTM training step",
        "",
        f"chargen.toml: B {shape['batch']}, T {shape['steps']}, E "
        f"{shape['embedding']}, H {shape['hidden']}, V {shape['vocabulary']}, "
        f"{shape['layers']} layer; {result['step_flops'] / 1e9:.2f} GFLOP per "
        f"training step. {settings['warmup_steps']} warm-up and "
        f"{settings['timed_steps']} timed steps, each followed by the matrix "
        f"products; medians. Took {result['seconds']:.0f} s; other processes kept "
        f"{describe_busy(result['other_cores_busy'])} busy.",
        "",
        "| work | time | GFLOP/s | training step GFLOP/s / this |",
        "|---|---|---|---|",
        f"| training step (`Trainer.fit`) | {_seconds(result['step_seconds'])} | "
        f"{result['step_gflops']:.1f} | |",
    ]
    titles = {"one_step": "one time step", "all_steps": "all time steps at once"}
    for name, matmul in result["matmuls"].items():
        M, K, N = matmul["shape"]
        seconds = 2 * M * K * N / (matmul["gflops"] * 1e9)
        lines.append(
            f"| torch.matmul ({M}, {K}) @ ({K}, {N}), {titles[name]} | "
            f"{_seconds(seconds)} | {matmul['gflops']:.1f} | "
            f"**{matmul['step_fraction']:.2f}** |"
        )
    return lines


def _ratio_to_first(rows: list[dict[str, Any]]) -> list[float]:
    return [row["per_unit"] / rows[0]["per_unit"] for row in rows]


def _fit_line(table: dict[str, Any]) -> str:
    return f"Fitted exponent k of time = c * size^k: **{table['exponent']:.2f}**."


def _window_table(table: dict[str, Any]) -> list[str]:
    rows = table["rows"]
    lines = [
        f"Training step at batch {table['batch_size']}:",
        "",
        "| `train.seq_len` | tokens per step | step time | time per token | "
        "per token / at the shortest |",
        "|---|---|---|---|---|",
    ]
    for row, ratio in zip(rows, _ratio_to_first(rows), strict=True):
        lines.append(
            f"| {row['size']} | {table['batch_size'] * row['size']:,} | "
            f"{_seconds(row['seconds'])} | {row['per_unit'] * 1e6:.2f} us | "
            f"{ratio:.2f} |"
        )
    return [*lines, "", _fit_line(table)]


def _loading_table(table: dict[str, Any]) -> list[str]:
    rows = table["rows"]
    lines = [
        "Loading, counting the vocabulary and encoding:",
        "",
        "| plays | fraction of 38 | Markdown bytes | time | time per MB | "
        "per MB / at the smallest |",
        "|---|---|---|---|---|---|",
    ]
    for row, ratio in zip(rows, _ratio_to_first(rows), strict=True):
        lines.append(
            f"| {row['plays']} | {row['fraction']:g} | {row['size']:,} | "
            f"{_seconds(row['seconds'])} | {row['per_unit'] * 1e6 * 1e3:.1f} ms | "
            f"{ratio:.2f} |"
        )
    return [*lines, "", _fit_line(table)]


def _epoch_table(table: dict[str, Any]) -> list[str]:
    rows = table["rows"]
    cut = ""
    if table["max_chars"] is not None:
        cut = f", each play cut to {table['max_chars']:,} characters"
    lines = [
        f"One training epoch{cut}:",
        "",
        "| plays | fraction of 38 | training tokens | steps | epoch time | "
        "time per 1,000 tokens | per token / at the smallest |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, ratio in zip(rows, _ratio_to_first(rows), strict=True):
        lines.append(
            f"| {row['plays']} | {row['fraction']:g} | {row['size']:,} | "
            f"{row['steps']} | {_seconds(row['seconds'])} | "
            f"{row['per_unit'] * 1e3 * 1e3:.1f} ms | {ratio:.2f} |"
        )
    return [*lines, "", _fit_line(table)]


def render_scaling(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the scaling benchmark."""
    lines = [
        "### 12. Time against window length and corpus size",
        "",
        f"chargen.toml. Took {result['seconds']:.0f} s; other processes kept "
        f"{describe_busy(result['other_cores_busy'])} busy.",
        "",
        *_window_table(result["window_lengths"]),
        "",
    ]
    if result["loading"] is None:
        lines += ["Loading runs on the CPU only, so the CPU section reports it.", ""]
    else:
        lines += [*_loading_table(result["loading"]), ""]
    return lines + _epoch_table(result["epochs"])


RENDERERS = {
    "recipes": render_recipes,
    "lstm-flops": render_flops,
    "scaling": render_scaling,
}
