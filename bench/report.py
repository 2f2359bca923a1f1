"""Render benchmark results as Markdown and write them into BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report_recipes import RENDERERS as DEVICE_RENDERERS

START_MARKER = "<!-- bench:results:start -->"
END_MARKER = "<!-- bench:results:end -->"


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def _load(result: dict[str, Any]) -> str:
    busy = result.get("other_cores_busy")
    return "not measured" if busy is None else f"{busy:.2f} cores"


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


def render_machine(machine: dict[str, Any], command: str, date: str) -> list[str]:
    """Return the lines that describe how and where the results were recorded."""
    threads = machine["torch_threads"]
    return [
        f"Recorded on {date} with `{command}`.",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['usable_cpus']} usable of {machine['logical_cpus']} "
        "logical CPUs |",
        f"| torch | {machine['torch']}, {threads} thread{'' if threads == 1 else 's'} "
        "(`torch.set_num_threads`) |",
        f"| GPU | {machine['gpu']} |",
        f"| Python | {machine['python']} |",
        f"| OS | {machine['os']} |",
        f"| load average before the run | {machine['load_average']} (1, 5, 15 min) |",
        f"| other processes during the run | {machine['other_cores_busy']} "
        "busy on average |",
    ]


def render_training(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the training benchmark."""
    settings = result["settings"]
    batch, window = result["batch_shape"]
    first_loss = result["first_loss"]
    quartiles = _ratios(result["ratio_quartiles"])
    return [
        "### 1. Training throughput",
        "",
        f"Batches of {batch} x {window} tokens. Each side ran "
        f"{settings['warmup_steps']} warm-up steps and {settings['timed_steps']} "
        "timed steps, alternating with the other side step by step. Took "
        f"{result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        "| | seqkit Trainer | plain loop | ratio seqkit / plain | target | result |",
        "|---|---|---|---|---|---|",
        f"| tokens/s (median over steps) | {result['seqkit_tokens_per_s']:,.0f} | "
        f"{result['plain_tokens_per_s']:,.0f} | **{result['ratio']:.3f}** | "
        f">= {result['target']} | {_verdict(result['passed'])} |",
        "",
        f"Per-step ratio quartiles: {quartiles}. Ratio of the total times: "
        f"{result['ratio_of_totals']:.3f}. First-step loss: seqkit "
        f"{first_loss['seqkit']:.5f}, plain {first_loss['plain']:.5f}.",
    ]


def render_generation(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the generation benchmark."""
    settings = result["settings"]
    short, long = settings["short_tokens"], settings["long_tokens"]
    times = result["per_token_us"]
    return [
        "### 2. Generation time per new token",
        "",
        f"Batch of 1, prompt {result['prompt']!r}, sampler `sample` at temperature "
        f"{result['temperature']}; {settings['repeats']} repetitions, median. Took "
        f"{result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        f"| | {short} new tokens | {long:,} new tokens | ratio {long:,} / {short} |",
        "|---|---|---|---|",
        f"| seqkit `generate_text` | {times[f'seqkit_{short}']:,.0f} us | "
        f"{times[f'seqkit_{long}']:,.0f} us | **{result['seqkit_growth']:.3f}** |",
        f"| plain nn.LSTM loop | {times[f'plain_{short}']:,.0f} us | "
        f"{times[f'plain_{long}']:,.0f} us | {result['plain_growth']:.3f} |",
        f"| ratio seqkit / plain | {result['seqkit_vs_plain_short']:.3f} | "
        f"{result['seqkit_vs_plain_long']:.3f} | |",
        "",
        f"Target: seqkit's ratio {long:,} / {short} at most {result['target_growth']}: "
        f"**{_verdict(result['passed'])}**. Ratio per repetition: "
        f"{_ratios(result['seqkit_growths'])}.",
    ]


def render_memory(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the memory benchmark."""
    corpus = result["corpus_bytes"]
    peaks, ratios = result["peak_bytes"], result["corpus_ratios"]
    versus = result["seqkit_vs_plain"]
    target = result["target_ratio"]
    return [
        "### 3. Peak memory of loading and encoding the plays",
        "",
        f"Corpus: {result['files']} Markdown files, {corpus:,} bytes "
        f"({_mib(corpus)}), encoded to {result['tokens']:,} tokens. Took "
        f"{result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        "| meter | seqkit peak | seqkit / corpus | plain peak | plain / corpus "
        f"| seqkit / plain | seqkit under {target:g}x corpus |",
        "|---|---|---|---|---|---|---|",
        f"| tracemalloc (Python allocations) | {_mib(peaks['seqkit_tracemalloc'])} | "
        f"**{ratios['seqkit_tracemalloc']:.2f}x** | "
        f"{_mib(peaks['plain_tracemalloc'])} | "
        f"{ratios['plain_tracemalloc']:.2f}x | {versus['tracemalloc']:.3f} | "
        f"{_verdict(result['passed'])} |",
        f"| RSS growth (VmHWM) | {_mib(peaks['seqkit_rss'])} | "
        f"{ratios['seqkit_rss']:.2f}x | {_mib(peaks['plain_rss'])} | "
        f"{ratios['plain_rss']:.2f}x | {versus['rss']:.3f} | "
        f"{'yes' if result['rss_under_target'] else 'no'} (not the target) |",
    ]


def _optional_ratio(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def render_packing(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the packing benchmark."""
    lines = [
        "### 4. Training throughput of packed and padded batches",
        "",
        f"Took {result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        "| data set | model | batch | real tokens / padded cells | packed tokens/s "
        "| padded tokens/s | ratio packed / padded |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in result["data_sets"]:
        rates = data["tokens_per_s"]
        lines.append(
            f"| {data['title']} | {data['model']} | {data['batch_size']} x "
            f"{data['mean_batch_steps']:.1f} steps on average | "
            f"{data['real_share']:.1%} | {rates['packed']:,.0f} | "
            f"{rates['padded']:,.0f} | **{data['ratio']:.3f}** |"
        )
    for data in result["data_sets"]:
        lines += [
            "",
            f"{data['title']}: {data['train_texts']:,} training texts, median "
            f"{data['median_length']:.0f} and mean {data['mean_length']:.1f} tokens "
            f"with `<eos>`, {data['share_at_seq_len']:.1%} at the seq_len cap of "
            f"{data['seq_len']}. Each side ran {data['warmup_steps']} warm-up and "
            f"{data['timed_steps']} timed steps. Per-step ratio quartiles: "
            f"{_ratios(data['ratio_quartiles'])}. Ratio of the total times: "
            f"{data['ratio_of_totals']:.3f}. Median ratio over the "
            f"{data['uniform_steps']} batches without pad steps: "
            f"{_optional_ratio(data['ratio_uniform'])}; over the others: "
            f"{_optional_ratio(data['ratio_mixed'])}. Took {data['seconds']:.0f} s; "
            f"other processes kept {_load(data)} busy.",
        ]
    return lines


def render_classify_inference(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the classification inference benchmark."""
    settings = result["settings"]
    size = result["batch_size"]
    rates, passes = result["texts_per_s"], result["forward_passes"]
    return [
        f"### 5. Classification inference at batch 1 and batch {size}",
        "",
        f"names.toml model, untrained; {settings['texts']} test names, "
        f"{result['mean_steps']:.1f} tokens on average with `<eos>`; "
        f"`predict_labels` with top_k 1; {settings['repeats']} repetitions, median. "
        f"Took {result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        f"| | batch 1 | batch {size} | ratio batch {size} / batch 1 |",
        "|---|---|---|---|",
        f"| texts/s | {rates[1]:,.0f} | {rates[size]:,.0f} | "
        f"**{result['ratio']:.1f}** |",
        f"| forward passes per {settings['texts']} texts | {passes[1]} | "
        f"{passes[size]} | |",
        "",
        f"Ratio per repetition: {', '.join(f'{r:.1f}' for r in result['ratios'])}.",
    ]


def render_beam_search(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the beam search benchmark."""
    settings = result["settings"]
    words, beam = settings["sources"], result["beam_size"]
    rates, outputs = result["words_per_s"], result["outputs"]
    beam_out, greedy_out = outputs["beam"], outputs["greedy"]
    return [
        f"### 6. Beam search at batch {words} and one word at a time",
        "",
        f"cmudict words to phones, model trained {settings['pretrain_steps']} steps "
        f"on {result['train_words']:,} words (mean loss of the last 10 steps "
        f"{result['final_loss']:.3f}, taking {result['pretrain_seconds']:.0f} s). "
        f"{words} test words, {result['mean_source_chars']:.1f} characters on "
        f"average; `translate` with at most {result['max_new_tokens']} new tokens; "
        f"{settings['repeats']} repetitions, median. Took {result['seconds']:.0f} s; "
        f"other processes kept {_load(result)} busy.",
        "",
        f"| | beam {beam}, batch {words} | beam {beam}, one at a time | "
        f"greedy, batch {words} |",
        "|---|---|---|---|",
        f"| words/s | {rates['beam_batched']:,.0f} | {rates['beam_single']:,.0f} | "
        f"{rates['greedy_batched']:,.0f} |",
        f"| phones per output, mean | {beam_out['mean_phones']:.2f} | "
        f"{beam_out['mean_phones']:.2f} | {greedy_out['mean_phones']:.2f} |",
        f"| outputs that ended at `<eos>` | {beam_out['ended_at_eos']:.0%} | "
        f"{beam_out['ended_at_eos']:.0%} | {greedy_out['ended_at_eos']:.0%} |",
        f"| outputs equal to a cmudict pronunciation | "
        f"{beam_out['exact_match']:.0%} | {beam_out['exact_match']:.0%} | "
        f"{greedy_out['exact_match']:.0%} |",
        "",
        "The first cmudict pronunciations of these words have "
        f"{result['mean_reference_phones']:.2f} phones on average.",
        "",
        f"Beam {beam}, words/s at batch {words} / one at a time: "
        f"**{result['batch_speedup']:.1f}**, target >= "
        f"{result['target_speedup']:g}: {_verdict(result['passed'])}. Per "
        f"repetition: {', '.join(f'{r:.1f}' for r in result['batch_speedups'])}. "
        f"Both batch sizes returned the same phones for all {result['same_outputs']} "
        "words, with scores equal to 1e-4.",
        "",
        f"Beam {beam} time per word / greedy time per word, both at batch {words}: "
        f"**{result['beam_cost']:.2f}**. Per repetition: "
        f"{', '.join(f'{r:.2f}' for r in result['beam_costs'])}.",
    ]


def render_attention_training(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the attention training benchmark."""
    settings = result["settings"]
    lines = [
        "### 7. Training throughput of the attention modes",
        "",
        f"Batches of {result['batch_size']} cmudict words, "
        f"{result['mean_source_steps']:.1f} source and "
        f"{result['mean_target_steps']:.1f} target steps on average. Each variant "
        f"ran {settings['warmup_steps']} warm-up and {settings['timed_steps']} timed "
        "steps, in turn step by step. Took "
        f"{result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        "| decoder | loop over target steps | target tokens/s | ratio loop-free "
        "Luong / this | per-step quartiles |",
        "|---|---|---|---|---|",
    ]
    for variant in result["variants"]:
        if variant["key"] == "after":
            ratio, quartiles = "1 (reference)", ""
        else:
            ratio = f"**{variant['speedup']:.2f}**"
            quartiles = ", ".join(f"{r:.2f}" for r in variant["speedup_quartiles"])
        lines.append(
            f"| {variant['title']} | {'yes' if variant['loops'] else 'no'} | "
            f"{variant['tokens_per_s']:,.0f} | {ratio} | {quartiles} |"
        )
    lines += [
        "",
        'Ratio loop-free Bahdanau / Bahdanau with attend = "before": '
        f"{result['before_vs_after_bahdanau']:.2f}.",
    ]
    return lines


def _workers(count: int) -> str:
    return "none (loading in the training process)" if count == 0 else str(count)


def render_data_wait(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the captioning data wait benchmark."""
    settings = result["settings"]
    target = result["target_share"]
    lines = [
        "### 8. Data wait in captioning training",
        "",
        f"caption.toml, untrained; batches of {result['batch_size']} glyph images "
        f"({result['train_images']:,} training images, {result['image_size']} x "
        f"{result['image_size']} pixels, {result['steps_per_epoch']} steps per "
        f"epoch). Each worker count ran {settings['warmup_steps']} warm-up and "
        f"{settings['timed_steps']} timed steps after the first batch of its epoch. "
        f"Took {result['seconds']:.0f} s; other processes kept {_load(result)} busy.",
        "",
        "| `train.num_workers` | wait / step time | per-step median | wait per "
        "step, median and max | step, median | first batch of the epoch: wait, "
        f"step | under {target:.0%} |",
        "|---|---|---|---|---|---|---|",
    ]
    for count in result["counts"]:
        verdict = "(no target)"
        if count["workers"] >= 1:
            verdict = _verdict(count["wait_share"] < target)
        lines.append(
            f"| {_workers(count['workers'])} | **{count['wait_share']:.1%}** | "
            f"{count['wait_share_median']:.1%} | {count['wait_ms_median']:,.1f} ms, "
            f"{count['wait_ms_max']:,.1f} ms | {count['step_ms_median']:,.0f} ms | "
            f"{count['first_wait_ms']:,.0f} ms, {count['first_step_ms']:,.0f} ms | "
            f"{verdict} |"
        )
    lines += [
        "",
        "The wait / step time column is the time inside `train_batch` over the "
        f"timed steps divided by their whole time. Target: under {target:.0%} "
        "with at least one worker (the recipe uses "
        f"{result['recipe_workers']}): **{_verdict(result['passed'])}**.",
    ]
    return lines


def render_caption_inference(result: dict[str, Any]) -> list[str]:
    """Return the Markdown lines for the captioning inference benchmark."""
    settings = result["settings"]
    sizes = settings["sizes"]
    small, large = min(sizes), max(sizes)
    samplers = result["samplers"]
    titles = {"greedy": "greedy", "beam": f"beam {result['beam_size']}"}
    lines = [
        f"### 9. Captioning at batch {small} and batch {large}",
        "",
        f"caption.toml, untrained; {settings['images']} glyph test images in memory; "
        f"`caption` with at most {result['max_new_tokens']} new tokens; "
        f"{settings['repeats']} repetitions, median. Took {result['seconds']:.0f} s; "
        f"other processes kept {_load(result)} busy.",
        "",
        f"| sampler | captions/s, batch {small} | captions/s, batch {large} | ratio "
        f"batch {large} / batch {small} | per repetition | tokens per caption | "
        "ended at `<eos>` | same caption at both sizes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in samplers.items():
        rates = figures["captions_per_s"]
        lines.append(
            f"| {titles[name]} | {rates[small]:,.1f} | {rates[large]:,.1f} | "
            f"**{figures['speedup']:.1f}** | "
            f"{', '.join(f'{r:.1f}' for r in figures['speedups'])} | "
            f"{figures['mean_tokens']:.1f} | {figures['ended_at_eos']:.0%} | "
            f"{figures['same_outputs']} of {settings['images']} |"
        )
    lines += [
        "",
        "The first reference captions of the test images have "
        f"{result['mean_reference_words']:.1f} words on average.",
    ]
    return lines


RENDERERS = {
    **DEVICE_RENDERERS,
    "training": render_training,
    "generation": render_generation,
    "memory": render_memory,
    "packing": render_packing,
    "classify-inference": render_classify_inference,
    "beam-search": render_beam_search,
    "attention-training": render_attention_training,
    "caption-data-wait": render_data_wait,
    "caption-inference": render_caption_inference,
}


DEVICE_TITLES = {"cpu": "CPU", "cuda": "GPU"}


def _demote_headings(lines: list[str]) -> list[str]:
    """Move `###` headings one level down, under a device's section."""
    return ["#" + line if line.startswith("### ") else line for line in lines]


def render_results(
    machine: dict[str, Any],
    results: list[dict[str, Any]],
    command: str,
    date: str,
    devices: list[str],
) -> str:
    """Return the Markdown block that goes between the result markers.

    Each device in `devices` gets a section with the results measured on it.
    Without "cuda", a GPU section states that no GPU was present.
    """
    lines = render_machine(machine, command, date)
    for device in devices:
        lines += ["", f"### Results on the {DEVICE_TITLES[device]}"]
        for result in results:
            if result["device"] == device:
                section = RENDERERS[result["name"]](result)
                lines += ["", *_demote_headings(section)]
    if "cuda" not in devices:
        lines += [
            "",
            "### Results on the GPU",
            "",
            "No GPU was present (`torch.cuda.is_available()` returned False), so "
            "nothing ran on a GPU.",
        ]
    return "\n".join(lines) + "\n"


def write_results(page: Path, block: str) -> None:
    """Replace the text between the result markers of `page` with `block`."""
    text = page.read_text(encoding="utf-8")
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start == -1 or end < start:
        raise ValueError(
            f"{page} has no results section. Add the lines {START_MARKER} and "
            f"{END_MARKER} where the results go"
        )
    head = text[: start + len(START_MARKER)]
    page.write_text(f"{head}\n{block}{text[end:]}", encoding="utf-8")
