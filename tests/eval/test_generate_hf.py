"""`tinylm generate` against transformers: greedy decoding token for token equal to `generate(do_sample=False)`
on the exported model; a transformers directory generated from by transformers itself; streaming, fill-mask,
and the one-line refusals. Never touches the network."""

import contextlib
import io
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402

from tinylm.cli.main import main  # noqa: E402
from tinylm.data.tokenizer import load_tokenizer, special_ids, vocab_size  # noqa: E402
from tinylm.eval.export import export_hf  # noqa: E402
from tinylm.eval.generation import generate  # noqa: E402
from tinylm.models import ModelConfig, build_model  # noqa: E402
from tinylm.loading import load_model  # noqa: E402

PROMPT = "Alice was beginning to get very tired of sitting by her sister"
NEW = 24
# flavour -> extra config; both use the shipped GPT-2 tokenizer (it has an EOS). Rotary with grouped-query attention,
# and learned positions: the cache's two ways to place a position (every flavour's cached logits are checked against
# a full recomputation in tests/models/test_models_kv_cache.py; each export costs ~3 s here).
FLAVOURS = {"llama": dict(n_kv_heads=2), "gpt2": {}}


def write_checkpoint(root, flavour, tokenizer="gpt2"):
    """A checkpoint directory as `tinylm train` writes one, with weights sharp enough that no argmax is a near-tie."""
    tok = load_tokenizer(tokenizer)
    cfg = ModelConfig(flavour=flavour, n_layers=2, n_heads=4, d_model=32, vocab_size=vocab_size(tok), max_seq_len=64,
                      **FLAVOURS.get(flavour, {}))
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    ckpt = root / flavour / "checkpoints" / "step-00000001"
    ckpt.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(cfg.to_dict()))
    tok.save(str(ckpt / "tokenizer.json"))
    (ckpt / "tokenizer_meta.json").write_text(json.dumps({"name": tokenizer, "vocab_size": cfg.vocab_size,
                                                          "special_ids": special_ids(tok)}))
    return ckpt


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """flavour -> (checkpoint, its transformers export)."""
    root = tmp_path_factory.mktemp("generate-hf")
    out = {}
    for flavour in FLAVOURS:
        ckpt = write_checkpoint(root / "ckpts", flavour)
        export_hf(load_model(ckpt), root / "hf" / flavour, verify=False)
        out[flavour] = ckpt, root / "hf" / flavour
    return out


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_greedy_equals_transformers_generate_token_for_token(exported, flavour):
    ckpt, hf_dir = exported[flavour]
    loaded = load_model(ckpt)
    [ours] = generate(loaded.model, loaded.tokenizer, [PROMPT], max_new_tokens=NEW, temperature=0)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True)
    ids = torch.tensor([[tok.eos_token_id] + tok(PROMPT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)[0, ids.shape[1]:].tolist()
    assert len(ours.ids) == NEW and len(set(ours.ids)) > 3  # a real continuation, not one token repeated
    assert ours.ids == theirs


@pytest.mark.parametrize("settings", [["--temperature", "0"], ["--seed", "3", "--top-k", "0", "--temperature", "1"]])
def test_a_transformers_directory_writes_what_its_checkpoint_writes(exported, settings):
    ckpt, hf_dir = exported["llama"]
    argv = ["--prompt", PROMPT, "--prompt", "Tom said", "--max-new-tokens", "12", *settings]
    code, ours, _ = run_cli(["generate", str(ckpt), *argv])
    assert code == 0
    code, theirs, _ = run_cli(["generate", str(hf_dir), *argv])
    assert code == 0 and theirs == ours
    assert ours.count(PROMPT) == 1 and "\n\nTom said" in ours  # prompt + continuation, a blank line between


def test_a_transformers_directory_runs_in_transformers_own_model(exported):
    from tinylm.eval.hf_causal import HFCausalLM, load_hf_causal

    loaded = load_hf_causal(exported["gpt2"][1])
    assert isinstance(loaded.model, HFCausalLM) and loaded.model.config.max_seq_len == 64
    assert type(loaded.model.hf).__name__ == "GPT2LMHeadModel"


def test_the_terminal_gets_the_text_a_token_at_a_time(exported, monkeypatch):
    class Recording(io.StringIO):
        flushes = []

        def flush(self):
            self.flushes.append(self.getvalue())

    out = Recording()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["generate", str(exported["gpt2"][0]), "--prompt", "Alice", "--max-new-tokens", "10",
                 "--temperature", "0"]) == 0
    grown = [s for a, s in zip(out.flushes, out.flushes[1:]) if s != a]
    assert out.flushes[0] == "Alice" and len(grown) >= 8  # the prompt, then (nearly) every token on its own
    assert out.getvalue() == out.flushes[-1] and out.getvalue().endswith("\n")


def test_num_samples_prints_each_continuation(exported):
    code, text, _ = run_cli(["generate", str(exported["gpt2"][0]), "--prompt", "Alice", "--num-samples", "3",
                             "--max-new-tokens", "6", "--temperature", "1.5", "--top-p", "0.95"])
    samples = text.split("\n\n")
    assert code == 0 and len(samples) == 3 and all(s.startswith("Alice") for s in samples)
    assert len(set(samples)) == 3


def test_a_checkpoint_without_its_tokenizer_is_one_line(exported, tmp_path, one_line_error):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(exported["gpt2"][0], ckpt)
    (ckpt / "tokenizer.json").unlink()
    one_line_error(["generate", str(ckpt), "--prompt", "Alice"], "has no tokenizer.json", "copy the run's token store")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    tok = load_tokenizer("bert-base-uncased")
    cfg = ModelConfig(flavour="bert", n_layers=1, n_heads=2, d_model=32, vocab_size=vocab_size(tok), max_seq_len=32)
    torch.manual_seed(0)
    model = build_model(cfg)
    ckpt = tmp_path_factory.mktemp("encoder") / "ckpt"
    ckpt.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(cfg.to_dict()))
    tok.save(str(ckpt / "tokenizer.json"))
    return ckpt, model.eval(), tok


def test_an_encoder_fills_in_its_mask(encoder):
    ckpt, model, tok = encoder
    code, text, _ = run_cli(["generate", str(ckpt), "--fill", "the [MASK] sat on the mat", "--top-k", "3"])
    assert code == 0
    head, line = text.strip().splitlines()
    assert head == "the [MASK] sat on the mat" and line.startswith("  mask 1: ")
    ids = tok.encode("the [MASK] sat on the mat").ids
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids]))[0, ids.index(special_ids(tok)["mask"])], -1)
    top = probs.topk(3)
    expected = "  ".join(f"{tok.decode([int(i)]).strip()} {p:.3f}" for p, i in zip(top.values, top.indices))
    assert line == f"  mask 1: {expected}"


@pytest.mark.parametrize("argv, needles", [
    (["--prompt", "Alice"], ("encoder", "--fill")),
    (["--fill", "no mask here"], ("has no [MASK]",)),
])
def test_an_encoder_refuses_a_prompt_and_a_text_without_mask_in_one_line(encoder, one_line_error, argv, needles):
    one_line_error(["generate", str(encoder[0]), *argv], *needles)


def test_a_decoder_refuses_fill_and_nothing_to_do_is_one_line(exported, one_line_error):
    one_line_error(["generate", str(exported["gpt2"][0]), "--fill", "the [MASK] sat"], "decoder", "--prompt")
    one_line_error(["generate", str(exported["gpt2"][0])], "--prompt", "--fill")
