"""Classification fine-tuning (pretrained vs scratch) and soft committees, end to end on tiny models."""

import json

import pytest
import torch

from tinylm.errors import UserError
from tinylm.eval.committee import committee_layers, paper_layers, soft_committee
from tinylm.models import resolve_model_config


def test_committee_sums_raw_logits():
    a = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    b = torch.tensor([[-3.0, 0.5, 0.0], [0.0, -4.0, 1.0]])
    summed = soft_committee([a, b])
    torch.testing.assert_close(summed, a + b)  # no softmax: the raw fields add
    # a confident member outweighs: softmax-averaging would pick class 0 for row 0, the raw sum picks 1
    assert summed.argmax(-1).tolist() == [1, 2]
    probs = (a.softmax(-1) + b.softmax(-1)).argmax(-1).tolist()
    assert probs != summed.argmax(-1).tolist()
    with pytest.raises(UserError, match="output shape"):
        soft_committee([a, b[:, :2]])


def test_paper_latency_layer_counts():
    assert paper_layers(resolve_model_config("bert-6")) == 25  # 6 x 4 + 1
    assert paper_layers(resolve_model_config("bert-1+conv2x64k3x3")) == 7  # 4 + 3
    assert paper_layers(resolve_model_config("bert-1-conv3x32k3x3")) == 8
    members = [resolve_model_config(n) for n in ("bert-1", "bert-1-conv2x64k3x3", "bert-1-conv3x32k3x3")]
    assert committee_layers(members) == 8  # members in parallel: the deepest


@pytest.fixture(scope="module")
def pretrained(pretrain_tiny_encoder, tmp_path_factory):
    return pretrain_tiny_encoder(tmp_path_factory.mktemp("runs") / "mlm", name="bert-tiny-cls",
                                 model="L1-2-32x2+conv1x4k3x3", steps=6, log_every=3, windows=8)


def test_finetune_gap_and_committee_cli(pretrained, tmp_path, capsys, agnews_csv, one_line_error):
    from tinylm.cli.main import main

    ag = f"agnews:{agnews_csv}"
    split = ["--task", ag, "--train-per-label", "6", "--test-per-label", "5"]
    out = tmp_path / "ft"
    assert main(["finetune", str(pretrained), *split, "--seeds", "2", "--max-steps", "3", "--lr", "1e-3",
                 "--gap", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train"] == 24 and report["test"] == 20 and report["labels"] == 4
    assert report["pretrained"]["n"] == 2 and report["scratch"]["n"] == 2
    assert report["gap"] == pytest.approx(report["pretrained"]["mean"] - report["scratch"]["mean"])
    assert report["pretrained"]["runs"][0]["steps"] == 3
    # the fine-tuned model reloads with its conv stem and head, and reproduces its accuracy
    from tinylm.runs.finetune import load_finetuned
    loaded, info = load_finetuned(out / "pretrained" / "seed-0")
    assert loaded.model.config.conv_stem == "1x4k3x3" and loaded.model.config.n_classes == 4
    assert info["accuracy"] == report["pretrained"]["runs"][0]["accuracy"]

    members = [str(out / "pretrained" / "seed-0"), str(out / "pretrained" / "seed-1"), str(out / "scratch" / "seed-0")]
    assert main(["committee", *members, "--task", ag, "--deep", str(out / "scratch" / "seed-1"),
                 "--repeats", "1", "--json"]) == 0
    com = json.loads(capsys.readouterr().out)
    assert [m["accuracy"] for m in com["members"]][:2] == [r["accuracy"] for r in report["pretrained"]["runs"]]
    assert com["committee"]["layers"] == 4 + 1 + 1 and com["committee"]["members_run"] == "in sequence"
    assert com["deep"]["accuracy"] == report["scratch"]["runs"][1]["accuracy"]
    assert com["committee"]["ms_per_batch"] > 0
    # the committee's accuracy is that of the summed logits, recomputed here by hand
    from tinylm.data.task_spec import TaskSpec
    from tinylm.runs.finetune import Base, prepare_task
    from tinylm.train.finetune import accuracy, predict_logits
    spec = TaskSpec(ag, None, 6, 5, 0)
    data = prepare_task(spec, Base(None, loaded.model.config, loaded.tokenizer_path, loaded.special_ids, "x"))
    logits = [predict_logits(load_finetuned(m)[0].model, *data.test[:2]) for m in members]
    assert com["committee"]["accuracy"] == accuracy(sum(logits), data.test[2])

    one_line_error(["committee", *members, "--task", "dbpedia"], "fine-tuned on agnews (agnews)", "not 'dbpedia'")
    one_line_error(["committee", str(pretrained), "--task", ag], "not a fine-tuned model")
    one_line_error(["finetune", "bert-1", *split], "add --scratch")


def test_classifier_from_pretrained_copies_the_body(pretrained):
    from tinylm.runs.finetune import load_base
    from tinylm.train.finetune import classifier_from
    base = load_base(str(pretrained))
    model = classifier_from(base.model, base.config, 3, seed=0)
    src = base.model.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith(("pooler.", "classifier.")):
            assert torch.equal(v, src[k]), k
    scratch = classifier_from(None, base.config, 3, seed=0)
    assert not torch.equal(scratch.embed_tokens.weight, model.embed_tokens.weight)
