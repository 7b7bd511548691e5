"""`tinylm surgery reset-embeddings`: on tinylm checkpoints (then resumed) and on Hugging Face
model directories; the source is never changed and mistakes are one line."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.models import ModelConfig, build_model
from tinylm.runs.execute import execute
from tinylm.train.recipe import load_recipe
from tinylm.rundir.serialize import load_tree

EMB = "embed_tokens.weight"


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_tinylm_checkpoint_then_resume(tiny_recipe, tmp_path, capsys):
    recipe = load_recipe(str(tiny_recipe()), ["train.duration=16", "checkpoint.every=0"])

    def stop_at_8(run, record):
        if run.step == 8:
            run.stop_requested = True

    execute(recipe, tmp_path / "run", on_step=stop_at_8)
    src = tmp_path / "run" / "checkpoints" / "step-00000008"
    before = _files(src)
    out = tmp_path / "run" / "checkpoints" / "step-00000008-reset"
    assert main(["surgery", "reset-embeddings", str(tmp_path / "run"), "--out", str(out), "--seed", "3",
                 "--latest"]) == 0
    assert "embed_tokens.weight" in capsys.readouterr().out
    assert _files(src) == before  # the source is untouched

    old, new = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    cfg = ModelConfig.from_dict(json.loads((src / "model_config.json").read_text()))
    with torch.device("meta"):
        model = build_model(cfg)
    expected = torch.empty_like(new[EMB])
    model.init_parameter_(EMB, expected, seed=3)  # the model's own init, from the given seed
    assert torch.equal(new[EMB], expected) and not torch.equal(new[EMB], old[EMB])
    assert all(torch.equal(new[k], old[k]) for k in old if k != EMB)  # untied lm_head kept
    s_old, s_new = load_tree(src, "state"), load_tree(out, "state")
    assert EMB in s_old["optimizer"] and EMB not in s_new["optimizer"]
    for name, moments in s_new["optimizer"].items():  # the rest of the optimizer, bit for bit
        assert all(torch.equal(v, s_old["optimizer"][name][k]) for k, v in moments.items())
    copied = _files(out)
    for name in ("model_config.json", "tokenizer.json", "tokenizer_meta.json"):
        assert copied[name] == before[name]
    assert json.loads(copied["surgery.json"])["seed"] == 3
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == out.name

    summary = execute(recipe, tmp_path / "run", resume=True)  # continues from the surgered checkpoint
    assert summary["complete"] and summary["steps"] == 16
    final = load_tree(tmp_path / "run" / "checkpoints" / "step-00000016", "state")["optimizer"]
    assert float(final[EMB]["step"]) == 8 and float(final["lm_head.weight"]["step"]) == 16


@pytest.mark.parametrize("tied", [False, True])
def test_huggingface_directory(tmp_path, monkeypatch, capsys, tied):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=5, initializer_range=0.05,
                         tie_word_embeddings=tied)
    src, out = tmp_path / "hf", tmp_path / "hf-reset"
    LlamaForCausalLM(config).save_pretrained(src, safe_serialization=True)
    (src / "optimizer.pt").write_bytes(b"a pickle tinylm must not open")
    (src / "trainer_state.json").write_text("{}")
    old = load_file(str(src / "model.safetensors"))

    assert main(["surgery", "reset-embeddings", str(src), "--out", str(out), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "optimizer.pt" in captured.err and "never unpickles" in captured.err
    assert not (out / "optimizer.pt").exists() and (out / "trainer_state.json").read_text() == "{}"
    new = load_file(str(out / "model.safetensors"))
    name = "model.embed_tokens.weight"
    assert not torch.equal(new[name], old[name]) and torch.all(new[name][5] == 0)
    assert abs(float(new[name].std()) - 0.05) < 0.005  # normal(0, initializer_range)
    assert all(torch.equal(new[k], old[k]) for k in old if k != name and k != "lm_head.weight")
    if "lm_head.weight" in old:
        assert torch.equal(new["lm_head.weight"], new[name]) if tied else torch.equal(new["lm_head.weight"],
                                                                                      old["lm_head.weight"])
    model = LlamaForCausalLM.from_pretrained(out)  # still a loadable HF model
    assert torch.equal(model.model.embed_tokens.weight.detach(), new[name])
    if tied:
        assert torch.equal(model.lm_head.weight.detach(), new[name])


def test_huggingface_sharded_with_untied_output(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    src, out = tmp_path / "hf", tmp_path / "hf-reset"
    LlamaForCausalLM(config).save_pretrained(src, safe_serialization=True, max_shard_size="10KB")
    assert main(["surgery", "reset-embeddings", str(src), "--out", str(out), "--params", "embeddings,output"]) == 0
    old, new = LlamaForCausalLM.from_pretrained(src), LlamaForCausalLM.from_pretrained(out)
    changed = {n for (n, p), (_, q) in zip(old.named_parameters(), new.named_parameters()) if not torch.equal(p, q)}
    assert changed == {"model.embed_tokens.weight", "lm_head.weight"}
    assert json.loads((out / "surgery.json").read_text())["params"] == sorted(changed, reverse=True)

def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_mistakes_are_one_line(tmp_path, capsys):
    (tmp_path / "exists").mkdir()
    _one_line_error(capsys, ["surgery", "reset-embeddings", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                    "does not exist")
    _one_line_error(capsys, ["surgery", "reset-embeddings", str(tmp_path / "nowhere"), "--out",
                             str(tmp_path / "exists")], "already exists")
    _one_line_error(capsys, ["surgery", "reset-embeddings", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                             "--latest"], "--latest needs --out inside")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"pickle")
    _one_line_error(capsys, ["surgery", "reset-embeddings", str(tmp_path / "hf"), "--out", str(tmp_path / "o")],
                    "no model.safetensors")
    assert not (tmp_path / "o").exists() and not (tmp_path / ".tmp-o").exists()
