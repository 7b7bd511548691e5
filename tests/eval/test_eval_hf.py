"""Export to and import from transformers directories, and BLiMP log-probabilities recomputed by
an independent scorer through the exported transformers model. Never touches the network."""

import inspect
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402

from tinylm.data.tokenizer import load_tokenizer, special_ids, train_tokenizer, vocab_size  # noqa: E402
from tinylm.eval.export import export_hf  # noqa: E402
from tinylm.eval.hf_import import load_any  # noqa: E402
from tinylm.eval.minimal_pairs import read_minimal_pairs, sentence_logprobs  # noqa: E402
from tinylm.eval.scoring import Scorer  # noqa: E402
from tinylm.models import ModelConfig, build_model  # noqa: E402
from tinylm.loading import load_model  # noqa: E402

FLAVOURS = {  # flavour -> (tokenizer, extra config)
    "llama": ("bpe", dict(n_kv_heads=2, pad_token_id=0)),
    "gemma": ("gpt2", dict(n_kv_heads=1, head_dim=16)),
    "gpt2": ("gpt2", {}),
    "neox": ("gpt-neox-20b", dict(rotary_pct=0.25)),
    "bert": ("bert-base-uncased", dict(pad_token_id=0)),
}


@pytest.fixture(scope="module")
def alice(book):
    return book("AliceInWonderland")[2000:40000]


@pytest.fixture(scope="module")
def tokenizers_dir(tmp_path_factory, alice):
    """tokenizer.json files: the shipped ones, and a small trained bpe:N (with <pad> <s> </s>)."""
    d = tmp_path_factory.mktemp("tokenizers")
    out = {}
    for name in ("gpt2", "gpt-neox-20b", "bert-base-uncased"):
        out[name] = d / f"{name}.json"
        load_tokenizer(name).save(str(out[name]))
    out["bpe"] = d / "bpe.json"
    train_tokenizer("bpe:600", [alice]).save(str(out["bpe"]))
    return out


def _checkpoint(root, flavour, tokenizer_file):
    """A checkpoint directory as `tinylm train` writes one (weights, config, tokenizer files)."""
    tok = load_tokenizer(tokenizer_file)
    kind, extra = FLAVOURS[flavour]
    cfg = ModelConfig(flavour=flavour, n_layers=2, n_heads=4, d_model=32, vocab_size=vocab_size(tok), max_seq_len=64,
                      **extra)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # move norms and biases off their init so every parameter matters
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    ckpt = root / flavour / "checkpoints" / "step-00000001"
    ckpt.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(cfg.to_dict()))
    shutil.copyfile(tokenizer_file, ckpt / "tokenizer.json")
    (ckpt / "tokenizer_meta.json").write_text(json.dumps({"name": kind, "vocab_size": cfg.vocab_size,
                                                          "special_ids": special_ids(tok)}))
    return ckpt


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizers_dir):
    root = tmp_path_factory.mktemp("export")
    out = {}
    for flavour, (tok, _) in FLAVOURS.items():
        loaded = load_model(_checkpoint(root / "ckpts", flavour, tokenizers_dir[tok]))
        result = export_hf(loaded, root / flavour)
        out[flavour] = (loaded, root / flavour, result)
    return out


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@torch.no_grad()
def test_exported_directory_loads_with_auto_classes_and_gives_our_logits(exported, alice, flavour):
    loaded, out, result = exported[flavour]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(result["files"])
    auto_tok = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    text = alice[:400]
    ids = auto_tok(text)["input_ids"][:64]
    assert ids == loaded.tokenizer.encode(text).ids[:64]  # the same tokens, specials included
    cls = transformers.AutoModelForMaskedLM if flavour == "bert" else transformers.AutoModelForCausalLM
    hf = cls.from_pretrained(str(out), local_files_only=True).eval()
    x = torch.tensor([ids])
    diff = (hf(input_ids=x).logits - loaded.model(x)).abs().max().item()
    assert diff <= 1e-4, f"{flavour}: max |logit diff| {diff}"
    specials = special_ids(loaded.tokenizer)
    if "bos" in specials:
        assert auto_tok.bos_token_id == specials["bos"] and hf.config.bos_token_id == specials["bos"]
    if flavour == "bert":
        assert (auto_tok.mask_token_id, auto_tok.cls_token_id) == (specials["mask"], specials["cls"])


def test_export_refuses_a_non_empty_directory(exported):
    from tinylm.errors import UserError

    loaded, out, _ = exported["gpt2"]
    with pytest.raises(UserError, match="--force"):
        export_hf(loaded, out)
    assert export_hf(loaded, out, force=True, verify=False)["hf_class"] == "GPT2LMHeadModel"


@pytest.mark.parametrize("flavour", ["llama", "gpt2", "neox", "bert"])
@torch.no_grad()
def test_import_a_transformers_directory(tmp_path, tokenizers_dir, alice, flavour, monkeypatch):
    """A model made by transformers itself loads as a tinylm model with the same logits."""
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    tok_name = FLAVOURS[flavour][0]
    tok_file = tokenizers_dir[tok_name]
    n_vocab = vocab_size(load_tokenizer(tok_file))
    torch.manual_seed(1)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=n_vocab)
    if flavour == "llama":
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(num_key_value_heads=2, max_position_embeddings=64, **small))
    elif flavour == "neox":
        hf = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(max_position_embeddings=64, **small))
    elif flavour == "gpt2":
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                                  vocab_size=n_vocab))
    else:
        hf = transformers.BertForMaskedLM(transformers.BertConfig(max_position_embeddings=64, **small))
    hf.eval()
    d = tmp_path / "hf"
    hf.save_pretrained(str(d))
    specials = special_ids(load_tokenizer(tok_file))
    names = {f"{r}_token": load_tokenizer(tok_file).id_to_token(i) for r, i in specials.items()}
    if flavour == "bert":  # slow-tokenizer files only: the import builds tokenizer.json from vocab.txt
        vocab = str(_vocab_txt(tmp_path, tok_file))
        v5 = "vocab" in inspect.signature(transformers.BertTokenizer.__init__).parameters
        bert_tok = transformers.BertTokenizer(**({"vocab": vocab} if v5 else {"vocab_file": vocab}))
        bert_tok.save_pretrained(str(d))
        (d / "tokenizer.json").unlink(missing_ok=True)
        shutil.copyfile(vocab, d / "vocab.txt")  # transformers 5 writes only tokenizer.json
    else:
        transformers.PreTrainedTokenizerFast(tokenizer_file=str(tok_file), **names).save_pretrained(str(d))
    loaded = load_any(d)
    assert loaded.run_dir is None and loaded.tokenizer_path.is_file()
    assert {k: loaded.special_ids[k] for k in specials} == specials
    ids = loaded.tokenizer.encode(alice[:300]).ids[:64]
    x = torch.tensor([ids])
    diff = (hf(input_ids=x).logits - loaded.model(x)).abs().max().item()
    assert diff <= 1e-4


def _vocab_txt(tmp_path, tok_file):
    vocab = json.loads(open(tok_file).read())["model"]["vocab"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    return path


def _blimp_sample(fixtures, n):
    """n pairs spread evenly over the BLiMP fixture (5 paradigms x 40 pairs)."""
    pairs = read_minimal_pairs(fixtures / "blimp")
    sample = pairs[:: len(pairs) // n][:n]
    assert len(sample) == n
    return sample


@pytest.mark.parametrize("flavour", ["llama", "gpt2"])
@torch.no_grad()
def test_blimp_logprobs_equal_an_independent_transformers_scorer(exported, fixtures, flavour):
    """50 pairs: our batched log-probabilities = a one-sentence-at-a-time scorer on the export."""
    loaded, out, _ = exported[flavour]
    pairs = _blimp_sample(fixtures, 50)
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    ours, how = sentence_logprobs(Scorer.for_model(loaded.model), loaded.tokenizer, special_ids(loaded.tokenizer),
                                  sentences)
    tok = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True).eval()
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id  # lm-eval's prefix token
    assert how["start_token_id"] == prefix
    theirs = []
    for s in sentences:
        ids = [prefix] + tok(s, add_special_tokens=False)["input_ids"]
        logp = torch.log_softmax(hf(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        theirs.append(float(logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum()))
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    n = len(pairs)
    assert ((ours[:n] >= ours[n:]) == (np.array(theirs[:n]) >= np.array(theirs[n:]))).all()


@torch.no_grad()
def test_encoder_pll_equals_an_independent_masked_lm_scorer(exported, fixtures):
    loaded, out, _ = exported["bert"]
    pairs = _blimp_sample(fixtures, 8)
    sentences = [p.good for p in pairs]
    ours, how = sentence_logprobs(Scorer.for_model(loaded.model), loaded.tokenizer, special_ids(loaded.tokenizer),
                                  sentences)
    tok = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(str(out), local_files_only=True).eval()
    for s, mine in zip(sentences, ours):
        ids = tok(s)["input_ids"]  # [CLS] ... [SEP]
        total = 0.0
        for j in range(1, len(ids) - 1):
            masked = list(ids)
            masked[j] = tok.mask_token_id
            logp = torch.log_softmax(hf(input_ids=torch.tensor([masked])).logits[0, j].double(), -1)
            total += float(logp[ids[j]])
        assert mine == pytest.approx(total, abs=1e-4)
