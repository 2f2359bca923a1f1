"""seqkit export: exported graphs decode as the eager model does, and errors.

The exported graphs are driven as a program without seqkit would drive them:
through manifest.json and vocabulary.json, by input and output names.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import json
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from helpers import char_recipe, train_recipe, write_recipe
from PIL import Image, ImageDraw
from seqkit_builtins.images import image_transform
from torch.nn.utils.rnn import pad_sequence

import seqkit
from seqkit.cli import main
from seqkit.export import export_run
from seqkit.run import load_run

FORMATS = ("torchscript", "onnx")
# Exported graphs may use other kernels than eager PyTorch, so the two agree
# to within float32 rounding, not exactly.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}

# Spelling to phones on 120 cmudict words: a 2-layer bidirectional LSTM
# encoder and an attention decoder, 3 steps.
G2P_RECIPE = {
    "data": {"plugin": "cmudict", "max_examples": 120},
    "source_tokenizer": {"plugin": "char"},
    "tokenizer": {"plugin": "whitespace"},
    "encoder": {
        "plugin": "rnn",
        "bidirectional": True,
        "embedding_size": 8,
        "hidden_size": 8,
        "layers": 2,
    },
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 16},
    "sampler": {"plugin": "greedy"},
    "train": {"max_steps": 3, "batch_size": 16, "seq_len": 12, "lr": 0.01},
    "evaluate": {"metrics": ["word_acc"], "samples": 0},
}

RECIPES = {
    # A 2-layer character LSTM language model on Macbeth.
    "language-model": char_recipe(
        decoder={"layers": 2},
        train={"max_steps": 3, "eval_every": 0},
        evaluate={"samples": 0},
    ),
    # Luong attention after a GRU, with input feeding.
    "luong": {
        **G2P_RECIPE,
        "decoder": {**G2P_RECIPE["decoder"], "cell": "gru", "input_feeding": True},
        "attention": {"plugin": "luong", "score": "general"},
    },
    # Bahdanau attention before a 2-layer LSTM.
    "bahdanau": {
        **G2P_RECIPE,
        "decoder": {**G2P_RECIPE["decoder"], "attend": "before", "layers": 2},
        "attention": {"plugin": "bahdanau", "size": 8},
    },
    # Beam search whose length limits bind: max_length caps long words and
    # max_length_ratio short ones, and min_length bans an early <eos>.
    "beam-limits": {
        **G2P_RECIPE,
        "attention": {"plugin": "luong"},
        "sampler": {
            "plugin": "beam",
            "beam_size": 3,
            "min_length": 2,
            "max_length": 5,
            "max_length_ratio": 1.5,
        },
    },
    # The small convnet over 16 x 16 glyphs and an LSTM with Luong attention.
    "captioning": {
        "data": {
            "plugin": "glyphs",
            "characters": ["U+0041..U+005A"],
            "fonts": ["DejaVuSans", "DejaVuSerif"],
            "sizes": [12],
            "image_size": 16,
            "valid_fraction": 0.2,
            "test_fraction": 0.2,
        },
        "tokenizer": {"plugin": "word"},
        "encoder": {
            "plugin": "cnn",
            "backbone": "small",
            "image_size": 16,
            "channels": 4,
        },
        "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 16},
        "attention": {"plugin": "luong"},
        "sampler": {"plugin": "greedy"},
        "train": {"max_steps": 3, "batch_size": 4, "seq_len": 8},
        "evaluate": {"metrics": ["exact_match"], "samples": 0},
    },
}

# A plugin file of components that export rejects: a state that is not
# tensors, and Python code that tracing records as constants.
UNEXPORTABLE_PLUGIN = '''
"""Components that seqkit export rejects."""

import torch
from torch import nn

import seqkit


class SmallGRU(seqkit.Decoder):
    """A one-layer GRU language model of width 8."""

    def __init__(self, options, context):
        super().__init__()
        size = len(context.vocab)
        self.bos_id = context.vocab.bos_id
        self.embedding = nn.Embedding(size, 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.output = nn.Linear(8, size)

    def init_state(self, batch_size, encoder_output=None):
        return self.output.weight.new_zeros(1, batch_size, 8)

    def forward(self, tokens, state, encoder_output=None):
        outputs, state = self.rnn(self.embedding(tokens), state)
        return seqkit.DecoderOutput(self.output(outputs), state)


class DictStateGRU(SmallGRU):
    """Keeps its state in a dict."""

    def init_state(self, batch_size, encoder_output=None):
        return {"hidden": super().init_state(batch_size)}

    def forward(self, tokens, state, encoder_output=None):
        output = super().forward(tokens, state["hidden"])
        return seqkit.DecoderOutput(output.logits, {"hidden": output.state})


class StartBranchGRU(SmallGRU):
    """Doubles the logits when the batch starts with <bos>: a Python branch."""

    def forward(self, tokens, state, encoder_output=None):
        output = super().forward(tokens, state)
        if int(tokens[0, 0]) == self.bos_id:
            return seqkit.DecoderOutput(output.logits * 2, output.state)
        return output


class ListMaskEncoder(seqkit.Encoder):
    """Embeddings as memory, with a mask built from Python lists."""

    def __init__(self, options, context):
        super().__init__()
        self.embedding = nn.Embedding(len(context.source_vocab), 8)
        self.output_size = 8

    def forward(self, source, lengths=None):
        rows = [[t < n for t in range(source.shape[1])] for n in lengths.tolist()]
        mask = torch.tensor(rows)
        memory = self.embedding(source) * mask[..., None]
        summary = memory.sum(dim=1) / lengths[:, None]
        return seqkit.EncoderOutput(summary=summary, memory=memory, mask=mask)


@seqkit.hookimpl
def seqkit_add_decoders():
    return {"dict-state": DictStateGRU, "start-branch": StartBranchGRU}


@seqkit.hookimpl
def seqkit_add_encoders():
    return {"list-mask": ListMaskEncoder}
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The trained run folder of each recipe in RECIPES, by name."""
    folder = tmp_path_factory.mktemp("export_runs")
    trained = {}
    for name, table in RECIPES.items():
        train_recipe(
            write_recipe(folder / "recipes", table, f"{name}.toml"), folder / name
        )
        trained[name] = folder / name
    return trained


class Exported:
    """Exported graphs loaded through the manifest, run by input and output names."""

    def __init__(self, folder: Path):
        self.manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        vocabularies = json.loads((folder / "vocabulary.json").read_text("utf-8"))
        self.target_tokens = vocabularies["target"]
        self.format = self.manifest["format"]
        self.graphs = {}
        for name, graph in self.manifest["graphs"].items():
            path = str(folder / graph["file"])
            if self.format == "torchscript":
                with warnings.catch_warnings():
                    # torch 2.14 deprecates TorchScript.
                    warnings.simplefilter("ignore", FutureWarning)
                    self.graphs[name] = torch.jit.load(path)
            else:
                import onnxruntime

                self.graphs[name] = onnxruntime.InferenceSession(
                    path, providers=["CPUExecutionProvider"]
                )

    def run(self, graph: str, inputs: dict[str, torch.Tensor]) -> dict:
        spec = self.manifest["graphs"][graph]
        names = [entry["name"] for entry in spec["inputs"]]
        output_names = [entry["name"] for entry in spec["outputs"]]
        if self.format == "torchscript":
            with torch.no_grad():
                outputs = self.graphs[graph](*(inputs[name] for name in names))
        else:
            feed = {name: inputs[name].numpy() for name in names}
            outputs = [torch.from_numpy(a) for a in self.graphs[graph].run(None, feed)]
        return dict(zip(output_names, outputs, strict=True))

    def greedy(
        self, encoder_inputs: dict | None, prefix: torch.Tensor, steps: int
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Feed `prefix` (B, P), then choose `steps` tokens greedily.

        Returns the logits of every step and the chosen tokens (B, steps).
        """
        manifest = self.manifest
        batch = prefix.shape[0]
        encoder = {}
        if encoder_inputs is not None:
            encoder = self.run("encoder", encoder_inputs)
        state = {}
        for entry in manifest["state"]:
            if entry["initial"] == "encoder":
                state[entry["input"]] = encoder.pop(entry["input"])
            else:
                assert entry["initial"] == "zeros"
                spec = next(
                    spec
                    for spec in manifest["graphs"]["step"]["inputs"]
                    if spec["name"] == entry["input"]
                )
                shape = [batch if size == "batch" else size for size in spec["shape"]]
                state[entry["input"]] = torch.zeros(shape)
        banned = manifest["banned_tokens"]
        token = prefix[:, 0]
        all_logits, chosen = [], []
        for index in range(prefix.shape[1] - 1 + steps):
            outputs = self.run("step", {"token": token, **state, **encoder})
            state = {e["input"]: outputs[e["output"]] for e in manifest["state"]}
            all_logits.append(outputs["logits"])
            if index + 1 < prefix.shape[1]:
                token = prefix[:, index + 1]
                continue
            logits = outputs["logits"].clone()
            logits[:, banned] = -torch.inf
            token = logits.argmax(dim=-1)
            chosen.append(token)
        return all_logits, torch.stack(chosen, dim=1)

    def decode(self, source_ids: list[int]) -> list[str]:
        """Translate one source greedily as docs/export.md describes, with limits."""
        manifest = self.manifest
        special = manifest["special_tokens"]
        limits = manifest["length_limits"]
        source = torch.tensor([source_ids])
        encoder = self.run(
            "encoder", {"source": source, "lengths": torch.tensor([len(source_ids)])}
        )
        state = {e["input"]: encoder.pop(e["input"]) for e in manifest["state"]}
        cap = manifest["max_new_tokens"]
        if limits.get("max_length") is not None:
            cap = min(cap, limits["max_length"])
        cap = max(cap, 1)
        if limits.get("max_length_ratio") is not None:
            # float32, as seqkit computes it
            relative = torch.tensor(len(source_ids), dtype=torch.float32)
            relative = math.ceil(relative * limits["max_length_ratio"])
            cap = min(cap, max(relative, 1))
        token = torch.tensor([special["<bos>"]])
        output = []
        for step in range(1, cap + 1):
            outputs = self.run("step", {"token": token, **state, **encoder})
            state = {e["input"]: outputs[e["output"]] for e in manifest["state"]}
            logits = outputs["logits"].clone()
            logits[:, manifest["banned_tokens"]] = -torch.inf
            if step <= limits.get("min_length", 0):
                logits[:, special["<eos>"]] = -torch.inf
            token = logits.argmax(dim=-1)
            if token[0] == special["<eos>"]:
                break
            output.append(self.target_tokens[token[0]])
        return output

    def text_tokens(self, ids: list[int]) -> list[str]:
        """Return the tokens of `ids` before the first <eos>."""
        eos = self.manifest["special_tokens"]["<eos>"]
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return [self.target_tokens[i] for i in ids]


def eager_greedy(
    model: seqkit.SequenceModel,
    encoder_output,
    prefix: torch.Tensor,
    steps: int,
    banned: list[int],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run the greedy loop of `Exported.greedy` on the eager decoder."""
    decoder = model.decoder
    state = decoder.init_state(prefix.shape[0], encoder_output)
    token = prefix[:, 0]
    all_logits, chosen = [], []
    with torch.no_grad():
        for index in range(prefix.shape[1] - 1 + steps):
            output = decoder.step(token, state, encoder_output)
            state = output.state
            all_logits.append(output.logits)
            if index + 1 < prefix.shape[1]:
                token = prefix[:, index + 1]
                continue
            logits = output.logits.clone()
            logits[:, banned] = -torch.inf
            token = logits.argmax(dim=-1)
            chosen.append(token)
    return all_logits, torch.stack(chosen, dim=1)


def assert_same_logits(exported: list, eager: list) -> None:
    assert len(exported) == len(eager)
    for step, (actual, expected) in enumerate(zip(exported, eager, strict=True)):
        assert actual.shape == expected.shape, f"step {step}"
        torch.testing.assert_close(actual, expected, **TOLERANCE, msg=f"step {step}")


def export(run_dir: Path, format: str, out_dir: Path) -> Exported:
    if format == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    export_run(run_dir, format, out_dir)
    return Exported(out_dir)


@pytest.mark.parametrize("format", FORMATS)
def test_language_model_step_matches_eager(runs, tmp_path, format):
    run = seqkit.load_run(runs["language-model"])
    exported = export(runs["language-model"], format, tmp_path / "out")
    vocab = run.built.vocabularies["target"]
    prompts = ["MACBETH:", "DUNCAN. "]
    prefix = torch.tensor([vocab.encode(list(prompt)) for prompt in prompts])

    logits, chosen = exported.greedy(None, prefix, steps=10)
    eager_logits, eager_chosen = eager_greedy(
        run.built.model, None, prefix, 10, exported.manifest["banned_tokens"]
    )

    assert_same_logits(logits, eager_logits)
    assert torch.equal(chosen, eager_chosen)
    for row, prompt in enumerate(prompts):
        (generated,) = run.generate(prompt, max_new_tokens=10, temperature=0)
        text = prompt + "".join(exported.text_tokens(chosen[row].tolist()))
        assert text == generated


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_translation_graphs_match_eager(runs, tmp_path, attention, format):
    run = seqkit.load_run(runs[attention])
    exported = export(runs[attention], format, tmp_path / "out")
    task = run.built.task
    words = ["cat", "pronunciation", "a", "seqkit"]
    sources = [task.source_ids(word) for word in words]
    source = pad_sequence(sources, batch_first=True)  # <pad> is 0
    lengths = torch.tensor([len(ids) for ids in sources])
    bos = exported.manifest["special_tokens"]["<bos>"]
    prefix = torch.full((len(words), 1), bos)
    steps = exported.manifest["max_new_tokens"]

    logits, chosen = exported.greedy(
        {"source": source, "lengths": lengths}, prefix, steps
    )
    with torch.no_grad():
        encoder_output = run.built.model.encode(source, lengths)
    eager_logits, eager_chosen = eager_greedy(
        run.built.model, encoder_output, prefix, steps, [0, 1, bos]
    )

    # train.seq_len (12) caps the source, longer than the traced 7 steps.
    assert source.shape[1] == 12
    assert_same_logits(logits, eager_logits)
    assert torch.equal(chosen, eager_chosen)
    for row, translation in enumerate(run.translate(words)):
        assert exported.text_tokens(chosen[row].tolist()) == translation.tokens


@pytest.mark.parametrize("format", FORMATS)
def test_length_limits_match_beam_size_one(runs, tmp_path, format):
    run = seqkit.load_run(runs["beam-limits"])
    exported = export(runs["beam-limits"], format, tmp_path / "out")
    task = run.built.task
    words = ["a", "cat", "pronunciation", "seqkit"]

    assert exported.manifest["sampler"] == "beam"
    assert exported.manifest["length_limits"] == {
        "min_length": 2,
        "max_length": 5,
        "max_length_ratio": 1.5,
    }
    translations = run.translate(words, beam_size=1)
    for word, translation in zip(words, translations, strict=True):
        decoded = exported.decode(task.source_ids(word).tolist())
        assert decoded == translation.tokens, word
    # The 3-step model emits no <eos>, so each output is as long as its cap:
    # "a" and <eos> make 2 source tokens, so ceil(1.5 * 2) = 3, and the other
    # words stop at max_length, below max_new_tokens (12).
    assert [len(translation.tokens) for translation in translations] == [3, 5, 5, 5]


def letter_image(letter: str) -> Image.Image:
    image = Image.new("RGB", (20, 20), "white")
    ImageDraw.Draw(image).text((6, 4), letter, fill="black")
    return image


@pytest.mark.parametrize("format", FORMATS)
def test_captioning_graphs_match_eager(runs, tmp_path, format):
    run = seqkit.load_run(runs["captioning"])
    exported = export(runs["captioning"], format, tmp_path / "out")
    size = exported.manifest["image_size"]
    images = [letter_image("Q")]  # one image: a batch of 1
    pixels = torch.stack([image_transform(size, train=False)(i) for i in images])
    bos = exported.manifest["special_tokens"]["<bos>"]
    prefix = torch.full((1, 1), bos)
    steps = exported.manifest["max_new_tokens"]

    logits, chosen = exported.greedy({"images": pixels}, prefix, steps)
    with torch.no_grad():
        encoder_output = run.built.model.encode(pixels)
    eager_logits, eager_chosen = eager_greedy(
        run.built.model, encoder_output, prefix, steps, [0, 1, bos]
    )

    assert_same_logits(logits, eager_logits)
    assert torch.equal(chosen, eager_chosen)
    (caption,) = run.caption(images)
    assert exported.text_tokens(chosen[0].tolist()) == caption.tokens


def test_manifest_names_state_and_vocabulary(runs, tmp_path):
    export_run(runs["luong"], "torchscript", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))
    vocabularies = json.loads((tmp_path / "vocabulary.json").read_text("utf-8"))
    built = load_run(runs["luong"])
    encoder = manifest["graphs"]["encoder"]
    step = manifest["graphs"]["step"]

    assert vocabularies["target"] == built.vocabularies["target"].to_list()
    assert vocabularies["source"] == built.vocabularies["source"].to_list()
    assert manifest["special_tokens"] == {
        "<pad>": 0,
        "<unk>": 1,
        "<bos>": 2,
        "<eos>": 3,
    }
    assert [s["name"] for s in encoder["inputs"]] == ["source", "lengths"]
    assert encoder["inputs"][0]["shape"] == ["batch", "source_length"]
    assert [s["name"] for s in encoder["outputs"]] == [
        "h",
        "feed",
        "memory",
        "mask",
        "keys",
    ]
    assert [s["name"] for s in step["inputs"]] == [
        "token",
        "h",
        "feed",
        "memory",
        "mask",
        "keys",
    ]
    assert [s["name"] for s in step["outputs"]] == [
        "logits",
        "new_h",
        "new_feed",
        "attention",
    ]
    assert step["inputs"][1]["shape"] == [1, "batch", 16]
    assert step["inputs"][4]["dtype"] == "bool"
    assert step["outputs"][0]["shape"] == ["batch", len(vocabularies["target"])]
    assert manifest["state"][0] == {
        "input": "h",
        "output": "new_h",
        "batch_dim": 1,
        "initial": "encoder",
    }
    assert manifest["source_max_tokens"] == 11
    assert manifest["max_new_tokens"] == 12
    assert manifest["sampler"] == "greedy"
    assert manifest["length_limits"] == {}


def test_language_model_has_no_encoder_graph(runs, tmp_path):
    paths = export_run(runs["language-model"], "torchscript", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))

    assert [path.name for path in paths] == [
        "step.pt",
        "vocabulary.json",
        "manifest.json",
    ]
    assert list(manifest["graphs"]) == ["step"]
    assert [s["name"] for s in manifest["graphs"]["step"]["inputs"]] == [
        "token",
        "h",
        "c",
    ]
    assert [entry["initial"] for entry in manifest["state"]] == ["zeros", "zeros"]


def test_cli_exports_into_default_folder(runs, capsys):
    run_dir = runs["captioning"]

    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0
    printed = capsys.readouterr().out.split()
    folder = run_dir / "export" / "torchscript"
    assert printed == [
        str(folder / name)
        for name in ("encoder.pt", "step.pt", "vocabulary.json", "manifest.json")
    ]
    for name in printed:
        assert Path(name).is_file()


def test_cli_rejects_unknown_format(runs, tmp_path, capsys):
    status = main(["export", str(runs["language-model"]), "--format", "tflite"])

    assert status == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown export format 'tflite'; use one of torchscript, onnx"
    )


def test_cli_rejects_missing_run_folder(tmp_path, capsys):
    missing = tmp_path / "missing"

    assert main(["export", str(missing), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run folder not found: {missing}; pass the --out folder of `seqkit run`"
    )


def test_cli_rejects_file_as_run_folder(runs, capsys):
    metrics = runs["language-model"] / "metrics.json"

    assert main(["export", str(metrics), "--format", "torchscript"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {metrics} is a file, not a run folder; pass its run folder "
        f"{runs['language-model']} instead"
    )


def test_export_replaces_files_of_other_run(runs, tmp_path):
    export_run(runs["luong"], "torchscript", tmp_path)
    assert (tmp_path / "encoder.pt").is_file()

    export_run(runs["language-model"], "torchscript", tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "manifest.json",
        "step.pt",
        "vocabulary.json",
    ]


def test_export_replaces_files_of_other_format(runs, tmp_path):
    pytest.importorskip("onnx")
    export_run(runs["luong"], "onnx", tmp_path)
    (tmp_path / "notes.txt").write_text("kept", encoding="utf-8")

    export_run(runs["luong"], "torchscript", tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "encoder.pt",
        "manifest.json",
        "notes.txt",
        "step.pt",
        "vocabulary.json",
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))
    assert manifest["format"] == "torchscript"


def test_failed_export_keeps_earlier_files(unexportable, runs, tmp_path):
    export_run(runs["language-model"], "torchscript", tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    with pytest.raises(seqkit.SeqkitError, match="differs from the eager"):
        export_run(unexportable["start-branch"], "torchscript", tmp_path)

    after = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert after == before


def test_folder_under_export_name_is_rejected(runs, tmp_path):
    (tmp_path / "step.onnx").mkdir()
    (tmp_path / "step.onnx" / "mine.txt").write_text("kept", encoding="utf-8")

    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(runs["language-model"], "torchscript", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'step.onnx'} is a folder, but an export writes a file of "
        "that name; move or remove the folder, or choose another folder with --out"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step.onnx"]
    assert (tmp_path / "step.onnx" / "mine.txt").is_file()


def test_unwritable_folder_names_path(runs, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr("seqkit.export.tempfile.mkdtemp", fail)

    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(runs["language-model"], "torchscript", tmp_path)

    assert str(error.value) == (
        f"cannot write into {tmp_path}: Permission denied; check that {tmp_path} "
        "is writable and has free space, or choose another folder with --out"
    )


def test_folder_without_checkpoint_is_rejected(tmp_path):
    with pytest.raises(seqkit.SeqkitError, match="contains no checkpoint.pt"):
        export_run(tmp_path, "torchscript")


def test_onnx_without_onnx_package_names_install(runs, tmp_path, monkeypatch):
    # A None entry in sys.modules makes `import onnx` raise ImportError.
    monkeypatch.setitem(sys.modules, "onnx", None)

    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(runs["language-model"], "onnx", tmp_path)
    assert str(error.value) == (
        "--format onnx needs the onnx package, which is not installed; "
        "install it with `pip install onnx`"
    )
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_onnxruntime_warns(runs, tmp_path, monkeypatch, caplog):
    pytest.importorskip("onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)

    paths = export_run(runs["language-model"], "onnx", tmp_path)

    assert [path.name for path in paths] == [
        "step.onnx",
        "vocabulary.json",
        "manifest.json",
    ]
    assert "onnxruntime is not installed" in caplog.text
    assert "were not compared with the eager model" in caplog.text


@pytest.mark.parametrize("raised", [KeyboardInterrupt, ImportError])
def test_onnxruntime_import_error_is_raised(
    runs, tmp_path, monkeypatch, caplog, raised
):
    # A Ctrl-C while onnxruntime's C extension loads can surface as either.
    pytest.importorskip("onnx")
    real_find_spec, real_import = importlib.util.find_spec, builtins.__import__

    def find_spec(name, *args):
        if name == "onnxruntime":
            return importlib.machinery.ModuleSpec("onnxruntime", None)
        return real_find_spec(name, *args)

    def fake_import(name, *args, **kwargs):
        if name == "onnxruntime":
            raise raised("interrupted while loading onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(builtins, "__import__", fake_import)

    with pytest.raises(raised, match="interrupted while loading onnxruntime"):
        export_run(runs["language-model"], "onnx", tmp_path)
    assert "onnxruntime is not installed" not in caplog.text
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def unexportable(tmp_path_factory) -> dict[str, Path]:
    """Runs with the components of UNEXPORTABLE_PLUGIN, by component name."""
    folder = tmp_path_factory.mktemp("unexportable")
    plugin = folder / "unexportable.py"
    plugin.write_text(UNEXPORTABLE_PLUGIN, encoding="utf-8")
    language_model = char_recipe(
        train={"max_steps": 1, "eval_every": 0}, evaluate={"samples": 0}
    )
    tables = {
        "dict-state": {**language_model, "decoder": {"plugin": "dict-state"}},
        "start-branch": {**language_model, "decoder": {"plugin": "start-branch"}},
        "list-mask": {
            **G2P_RECIPE,
            "encoder": {"plugin": "list-mask"},
            "attention": {"plugin": "luong"},
            "train": {**G2P_RECIPE["train"], "max_steps": 1},
        },
    }
    trained = {}
    for name, table in tables.items():
        table = {**table, "plugins": [str(plugin)]}
        train_recipe(write_recipe(folder, table, f"{name}.toml"), folder / name)
        trained[name] = folder / name
    return trained


def test_dict_state_decoder_is_named(unexportable, tmp_path):
    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(unexportable["dict-state"], "torchscript", tmp_path)

    message = str(error.value)
    assert message.startswith("cannot export decoder 'dict-state' (plugin ")
    assert "its state contains a dict" in message
    assert "make init_state return a tensor or a tuple of tensors" in message


def test_branching_decoder_is_named(unexportable, tmp_path):
    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(unexportable["start-branch"], "torchscript", tmp_path)

    message = str(error.value)
    assert message.startswith("cannot export decoder 'start-branch' (plugin ")
    assert "'logits' of the exported step graph differs from the eager" in message
    assert "at step 2" in message
    assert list(tmp_path.iterdir()) == []  # no files of a failed export


def test_list_mask_encoder_is_named(unexportable, tmp_path):
    with pytest.raises(seqkit.SeqkitError) as error:
        export_run(unexportable["list-mask"], "torchscript", tmp_path)

    assert "encoder 'list-mask' (plugin " in str(error.value)
