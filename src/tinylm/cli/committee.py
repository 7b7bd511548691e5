"""`tinylm committee MEMBER... [--task KIND:PATH] [--deep MODEL] [--json]`

Score a soft committee of fine-tuned classifiers (each a directory written by `tinylm finetune
--out`, e.g. OUT/pretrained/seed-0): every member's accuracy, the committee's (the sum of the raw
logits, no softmax, as the committee paper), and optionally a deep model beside them. Members may
have different architectures; they must share the tokenizer and the task, read from their
finetune.json: the file (by content: its SHA-256), the label and text columns, the split seed and
the per-label counts. --task (or --train/--test) says where the file is when it has moved, and is
checked by content: the same file by any path is accepted, another file of the same name refused.
Latency: the paper's layer count (members in parallel: the deepest member's) and milliseconds per
batch measured on this machine with the members run one after another.
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("committee", help="soft committee (summed logits) of fine-tuned classifiers, with latency",
                       description=__doc__)
    p.add_argument("members", nargs="+", metavar="MEMBER", help="fine-tuned model directories")
    p.add_argument("--task", help="the task file the members were fine-tuned on, as KIND:PATH (default: the one "
                                  "their finetune.json names); checked by content")
    p.add_argument("--train", dest="train_file", help="with a train/test pair: where the train file is now")
    p.add_argument("--test", dest="test_file", help="with a train/test pair: where the test file is now")
    p.add_argument("--deep", help="a fine-tuned deep model to report beside the committee")
    p.add_argument("--batch-size", type=int, default=32, help="batch for the latency measure (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per latency measure (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.data.task_spec import mismatch
    from tinylm.errors import UserError
    from tinylm.eval.committee import committee_layers, ms_per_batch, paper_layers, soft_committee
    from tinylm.eval.ensemble import same_tokenizer
    from tinylm.runs.finetune import Base, load_finetuned, prepare_task
    from tinylm.train.finetune import accuracy, predict_logits

    paths = list(args.members) + ([args.deep] if args.deep else [])
    loaded = [load_finetuned(p) for p in paths]
    expected = loaded[0][1]["task"]
    for path, (member, info) in zip(paths[1:], loaded[1:]):
        why = mismatch(expected, info["task"])
        if why:
            raise UserError(f"{path} was fine-tuned on another task than {paths[0]} ({why}): committee members "
                            "must share the task file, its columns, the split seed and the per-label sizes")
        if not same_tokenizer(member.tokenizer_path, loaded[0][0].tokenizer_path):
            raise UserError(f"{path} uses another tokenizer than {paths[0]}; committee members must share one")
    spec = committee_spec(args, expected, paths[0])
    first = loaded[0][0]
    data = prepare_task(spec, Base(None, first.model.config, first.tokenizer_path, first.special_ids, paths[0]))
    why = mismatch(expected, data.description)
    if why:
        raise UserError(f"the task given is not the one {paths[0]} was fine-tuned on: {why}; give the same file "
                        "(by any path), or leave --task out to read the file its finetune.json names")
    ids, mask, labels = data.test
    rows, logits = [], []
    batch = (ids[: args.batch_size], mask[: args.batch_size])
    for path, (member, _) in zip(paths, loaded):
        if member.model.config.n_classes != data.task.n_labels:
            raise UserError(f"{path} has {member.model.config.n_classes} classes but the task has {data.task.n_labels}")
        out = predict_logits(member.model, ids, mask)
        logits.append(out)
        rows.append({"model": path, "accuracy": accuracy(out, labels), "layers": paper_layers(member.model.config),
                     "ms_per_batch": ms_per_batch([member.model], *batch, repeats=args.repeats)})
    members = rows[: len(args.members)]
    models = [m.model for m, _ in loaded[: len(args.members)]]
    report = {"task": data.task.name, "test_items": len(labels), "batch_size": len(batch[0]), "members": members,
              "committee": {"accuracy": accuracy(soft_committee(logits[: len(args.members)]), labels),
                            "layers": committee_layers([m.config for m in models]),
                            "ms_per_batch": ms_per_batch(models, *batch, repeats=args.repeats),
                            "members_run": "in sequence"}}
    if args.deep:
        report["deep"] = rows[-1]
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"soft committee on {data.task.name} ({len(labels):,} test items); latency per batch of {len(batch[0])}")
    print(f"  {'model':<48} {'accuracy':>8} {'layers':>6} {'ms/batch':>9}")
    for r in members:
        print(f"  {str(r['model'])[-48:]:<48} {r['accuracy']:>8.4f} {r['layers']:>6} {r['ms_per_batch']:>9.1f}")
    c = report["committee"]
    print(f"  {'committee (sum of logits; members in sequence)':<48} {c['accuracy']:>8.4f} {c['layers']:>6} "
          f"{c['ms_per_batch']:>9.1f}")
    if args.deep:
        d = report["deep"]
        print(f"  {'deep: ' + str(d['model'])[-42:]:<48} {d['accuracy']:>8.4f} {d['layers']:>6} {d['ms_per_batch']:>9.1f}")
    print("  layers: the paper's count (4 per block + conv layers + 1); a committee run in parallel is as deep as "
          "its deepest member")
    return 0


def committee_spec(args, expected: dict, first: str):
    """The members' task spec, with the files found where --task/--train/--test say (or where it was)."""
    from pathlib import Path

    from tinylm.data.task_spec import file_sha256, spec_from_description
    from tinylm.errors import UserError

    kind = expected["spec"]["task"].split(":", 1)[0]
    if args.task and args.task.split(":", 1)[0].strip().lower() != kind:
        raise UserError(f"{first} was fine-tuned on {expected['name']} ({kind}), not {args.task!r}: give "
                        f"--task {kind}:PATH, or leave --task out")
    spec = spec_from_description(expected, args.task, args.train_file, args.test_file)
    named = {"data": spec.task.partition(":")[2], "train": spec.train_file, "test": spec.test_file}
    for role, file in expected["files"].items():
        flag = f"--task {kind}:PATH" if role == "data" else f"--{role} FILE"
        if not Path(named[role]).expanduser().is_file():
            raise UserError(f"the task file {named[role]} that {first} was fine-tuned on is not there; say where "
                            f"it is now with {flag}")
        if file_sha256(named[role]) != file["sha256"]:
            raise UserError(f"{named[role]} is not the file {first} was fine-tuned on ({file['path']}, sha256 "
                            f"{file['sha256'][:12]}...): its content differs; give that file ({flag})")
    return spec
