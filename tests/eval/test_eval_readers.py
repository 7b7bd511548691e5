"""BLiMP (original, BabyLM filtered, supplement-style) and HellaSwag (text and JSONL) readers."""

import json

import pytest

from tinylm.errors import UserError
from tinylm.eval.minimal_pairs import limit_per_paradigm, read_minimal_pairs
from tinylm.eval.multiple_choice import preprocess, read_hellaswag


FIELDS = {"syntax", "morphology", "semantics", "syntax/semantics"}


def test_original_and_filtered_blimp(fixtures):
    original = read_minimal_pairs(fixtures / "blimp")  # 5 paradigms x 40 pairs; pairID a string
    assert len(original) == 200 and len({p.paradigm for p in original}) == 5
    assert {p.field for p in original} == FIELDS  # tough_vs_raising_1 spells it syntax_semantics
    assert [p.source for p in original[::40]] == sorted(f.name for f in (fixtures / "blimp").glob("*.jsonl"))
    filtered = read_minimal_pairs(fixtures / "blimp-filtered")  # 5 x 20; pair_id an integer
    assert len(filtered) == 100 and len({p.paradigm for p in filtered}) == 5 and {p.field for p in filtered} == FIELDS
    first = read_minimal_pairs(fixtures / "blimp" / "adjunct_island.jsonl")[0]
    assert (first.good, first.bad, first.paradigm, first.field, first.line) == (
        "Who should Derek hug after shocking Richard?", "Who should Derek hug Richard after shocking?",
        "adjunct_island", "syntax", 1)
    last = original[-1]
    assert (last.paradigm, last.source, last.line) == ("tough_vs_raising_1", "tough_vs_raising_1.jsonl", 40)
    limited = limit_per_paradigm(original, 3)
    assert len(limited) == 15 and [p.line for p in limited[:4]] == [1, 2, 3, 1]
    assert limit_per_paradigm(original, None) == original


@pytest.mark.shared_data
def test_all_of_original_and_filtered_blimp(shared_data):
    original = read_minimal_pairs(shared_data / "blimp")
    assert len(original) == 67_000 and len({p.paradigm for p in original}) == 67
    assert {p.field for p in original} == FIELDS
    filtered = read_minimal_pairs(shared_data / "blimp-filtered")
    assert len(filtered) == 59_875 and len({p.paradigm for p in filtered}) == 67
    assert len(limit_per_paradigm(original, 3)) == 201


def test_supplement_style_files_group_by_file(tmp_path):
    d = tmp_path / "supplement"
    d.mkdir()
    rows = [{"sentence_good": "A: Did you go?\nB: Yes, I did.", "sentence_bad": "A: Did you go?\nB: Yes, I do.",
             "row": 1, "contrast": "tense"},
            {"sentence_good": "She is here.", "sentence_bad": "She are here.", "row": 2}]
    (d / "qa_congruence_easy.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pairs = read_minimal_pairs(d)
    assert [p.paradigm for p in pairs] == ["qa_congruence_easy"] * 2
    assert pairs[0].field == "supplement" and "\n" in pairs[0].good


@pytest.mark.parametrize("content, needles", [
    ('{"sentence_good": "a b", "sentence_bad": "b a"}\n{"sentence_good": "x"}\n', [":2:", "sentence_bad"]),
    ('{"sentence_good": "a b", "sentence_bad": "b a"}\n\n{"sentence_good": "a", "sentence_bad": \n', [":3:", "JSON"]),
    ("", ["empty"]),
    ("\n  \n", ["empty"]),
    ('["a", "b"]\n', [":1:", "object"]),
    ('{"sentence_good": "", "sentence_bad": "b"}\n', [":1:", "empty sentence"]),
])
def test_bad_minimal_pair_files(tmp_path, content, needles):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError) as e:
        read_minimal_pairs(path)
    for needle in needles:
        assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_and_empty_dirs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_minimal_pairs(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no .jsonl"):
        read_minimal_pairs(tmp_path)


def test_hellaswag_text_format(fixtures):
    items, fmt = read_hellaswag(fixtures / "hellaswag" / "val-first30.txt")
    assert fmt == "text" and len(items) == 30
    assert items[0].query == "Roof shingle removal: A man is sitting on a roof. he"
    assert items[0].gold == 3 and items[0].choices[3] == "starts pulling up roofing on a roof."
    assert items[1].line == 7 and items[-1].line == 175
    assert items[1].query == ("Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. "
                              "the lady") and items[1].gold == 3


@pytest.mark.shared_data
def test_hellaswag_text_format_on_the_first_500_items(shared_data):
    items, fmt = read_hellaswag(shared_data / "hellaswag" / "val-first500.txt")
    assert fmt == "text" and len(items) == 500 and items[-1].line == 2995


def test_hellaswag_jsonl_follows_lm_eval_preprocessing(tmp_path):
    doc = {"ind": 4, "activity_label": "Making a sandwich", "ctx_a": "A man takes bread.", "ctx_b": "then he",
           "endings": ["spreads butter [title] on it.", "eats  it.", "sleeps.", "runs."], "label": "1"}
    path = tmp_path / "hs.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    items, fmt = read_hellaswag(path)
    assert fmt == "jsonl"
    assert items[0].query == "Making a sandwich: A man takes bread. Then he"
    assert items[0].choices[:2] == ("spreads butter. on it.", "eats it.") and items[0].gold == 1
    # lm-eval strips before removing brackets, so a leading tag leaves its space: kept as the reference does
    assert preprocess(" [header] How to x [title] Do y. ") == " How to x. Do y."


def test_hellaswag_wrong_number_of_endings(tmp_path, fixtures):
    lines = (fixtures / "hellaswag" / "val-first30.txt").read_text().splitlines()[:18]
    del lines[9]  # the second item loses an ending
    path = tmp_path / "hs.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="hs.txt:14: .*wrong number of endings"):
        read_hellaswag(path)
    path.write_text("\n".join(lines[:11]) + "\n")  # the last item cut short
    with pytest.raises(UserError, match="3 endings"):
        read_hellaswag(path)
    doc = {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y", "z"], "label": 0}
    path.write_text(json.dumps(doc) + "\n")
    with pytest.raises(UserError, match=r"hs.txt:1: 3 endings"):
        read_hellaswag(path)
    doc.update(endings=["w", "x", "y", "z"], label="")
    path.write_text(json.dumps(doc) + "\n")
    with pytest.raises(UserError, match="gold label"):
        read_hellaswag(path)
    path.write_text("")
    with pytest.raises(UserError, match="empty"):
        read_hellaswag(path)
