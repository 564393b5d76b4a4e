"""Normalizers: the mirror's formats and the hub's formats land in the same internal schema."""

import json

import pytest

from tests.conftest import ROOT
from unlearn_repro.config import load
from unlearn_repro.data import load_split, training_text
from unlearn_repro.data.registry import DATASETS, choose_source
from unlearn_repro.data.splits import prepare_task
from unlearn_repro.io import read_json, read_jsonl

ARC_AI2 = {
    "id": "q1",
    "question": {
        "stem": "Which is a gas?",
        "choices": [{"text": "ice", "label": "A"}, {"text": "steam", "label": "B"}],
    },
    "answerKey": "B",
}
ARC_HUB = {
    "id": "q1",
    "question": "Which is a gas?",
    "choices": {"text": ["ice", "steam"], "label": ["A", "B"]},
    "answerKey": "B",
}


def _hub_folder(tmp_path, split, rows):
    folder = tmp_path / "hub"
    folder.mkdir(exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def test_arc_mirror_and_hub_formats_agree(tmp_path):
    (tmp_path / "arc_easy").mkdir()
    (tmp_path / "arc_easy" / "train.jsonl").write_text(json.dumps(ARC_AI2) + "\n")
    mirror = load_split("arc_easy", "train", "mirror", tmp_path)
    hub = load_split("arc_easy", "train", "hub", tmp_path, hub_path=_hub_folder(tmp_path, "train", [ARC_HUB]))
    assert (
        mirror
        == hub
        == [
            {
                "id": "q1",
                "query": "Question: Which is a gas?\nAnswer: ",
                "choices": ["ice", "steam"],
                "gold": 1,
            }
        ]
    )
    assert training_text(mirror[0], "multiple_choice").endswith("Answer: steam")


def test_piqa_mathqa_lambada_hub_rows(tmp_path):
    piqa = load_split(
        "piqa",
        "train",
        "hub",
        tmp_path,
        _hub_folder(
            tmp_path,
            "train",
            [
                {"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0},
                {"goal": "hidden", "sol1": "a", "sol2": "b", "label": -1},
            ],
        ),
    )
    assert piqa == [
        {
            "id": "piqa-0",
            "query": "Question: Open a jar\n",
            "choices": ["twist the lid", "eat the lid"],
            "gold": 0,
        }
    ]
    math = load_split(
        "mathqa",
        "test",
        "hub",
        tmp_path,
        _hub_folder(
            tmp_path,
            "test",
            [
                {
                    "Problem": "2 + 2 ?",
                    "options": "a ) 3 , b ) 4 , c ) 5 , d ) 6.5 , e ) none of these",
                    "correct": "b",
                }
            ],
        ),
    )
    assert math[0]["choices"] == ["A", "B", "C", "D", "E"] and math[0]["gold"] == 1
    assert "B. 4\n" in math[0]["query"] and "E. none of these\n" in math[0]["query"]
    lam = load_split(
        "lambada",
        "test",
        "hub",
        tmp_path,
        _hub_folder(tmp_path, "test", [{"text": "she said hello to Shane"}]),
    )
    assert lam == [{"id": "lambada-0", "context": "she said hello to", "continuation": "Shane"}]


def test_missing_split_and_folder_errors(tmp_path):
    with pytest.raises(KeyError, match="no 'train' split"):
        load_split("piqa", "train", "mirror", tmp_path)
    with pytest.raises(FileNotFoundError, match="mirror folder of data set 'mathqa' is missing"):
        load_split("mathqa", "test", "mirror", tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"none of default/test\.\{parquet,jsonl,json,csv\}, .*test\.\{parquet"
    ):
        load_split("lambada", "test", "hub", tmp_path, str(tmp_path))
    with pytest.raises(KeyError, match="valid choices"):
        DATASETS.get("arc")


def test_source_auto(tmp_path):
    assert choose_source("auto", tmp_path) == "mirror"
    assert choose_source("auto", tmp_path / "absent") == "hub"


def test_real_mirror_files(mirror):
    arc = load_split("arc_easy", "test", "mirror", mirror)
    assert len(arc) == 2376 and all(0 <= r["gold"] < len(r["choices"]) for r in arc)
    assert len(load_split("piqa", "validation", "mirror", mirror)) == 1838
    assert len(load_split("lambada", "test", "mirror", mirror)) == 5153
    mt = load_split("mtsamples", "train", "mirror", mirror)
    assert mt[0]["text"].startswith("SUBJECTIVE:")  # the headerless CSV is read by position
    enron = load_split("enron", "train", "mirror", mirror)
    assert len(enron) == 540 and any(r["id"].startswith("enron-pile") for r in enron)
    tofu = load_split("tofu", "full", "mirror", mirror)  # two JSON arrays back to back in one file
    assert len(tofu) == 4000 and set(tofu[0]) == {"id", "question", "answer"}
    assert len(load_split("tofu", "forget01", "mirror", mirror)) == 40
    tdec = load_split("tdec", "validation", "mirror", mirror)
    assert len(tdec) == 1000 and len(tdec[0]["ids"]) == 200


def test_a_data_set_without_a_hub_release_is_read_from_the_mirror_at_every_scale(tmp_path, mirror):
    """TDEC has no hub release: the hub source reads the mirror, and a missing mirror names the release."""
    assert load_split("tdec", "validation", "hub", mirror) == load_split(
        "tdec", "validation", "mirror", mirror
    )
    with pytest.raises(FileNotFoundError, match="lm-extraction-benchmark"):
        load_split("tdec", "validation", "hub", tmp_path)


def test_missing_split_is_derived_deterministically_and_recorded(tmp_path, mirror):
    cfg = load(ROOT / "params.yaml", "ci")
    meta = prepare_task("piqa", cfg, tmp_path / "a")
    prepare_task("piqa", cfg, tmp_path / "b")
    assert (
        meta["splits"]["train"] == "derived from validation"
        and "seeded permutation" in meta["splits"]["derivation"]
    )
    assert meta["rows_before_cap"] == {"train": 1470, "test": 368}
    assert meta["rows"]["heldout"] == 1470 - 96 + 368
    assert read_jsonl(tmp_path / "a/train.jsonl") == read_jsonl(tmp_path / "b/train.jsonl")
    train_ids = {r["id"] for r in read_jsonl(tmp_path / "a/train.jsonl")}
    assert not train_ids & {r["id"] for r in read_jsonl(tmp_path / "a/test.jsonl")}
    assert read_json(tmp_path / "a/meta.json")["rows"] == {
        "train": 96,
        "test": 24,
        "heldout": 1470 - 96 + 368,
    }
    heldout_ids = {r["id"] for r in read_jsonl(tmp_path / "a/heldout.jsonl")}
    assert not heldout_ids & train_ids


def test_bad_mirror_rows_and_files_name_file_line_and_field(tmp_path):
    from unlearn_repro.io import map_jsonl

    f = tmp_path / "train.jsonl"
    f.write_text('{"query": "q", "choices": ["a"], "gold": 0}\n\n{"query": "q", "choices": ["a"]}\n')
    norm = lambda r, i: {"query": r["query"], "gold": int(r["gold"])}  # noqa: E731
    with pytest.raises(ValueError, match=r"train.jsonl:3: bad row, missing or malformed field 'gold'"):
        map_jsonl(f, norm)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"empty.jsonl: the file is empty"):
        map_jsonl(tmp_path / "empty.jsonl", norm)


def test_a_missing_mirror_is_caught_before_any_job(tmp_path, mirror):
    from unlearn_repro.data.registry import check_mirror

    check_mirror(mirror, ["arc_easy", "wikitext2"])
    with pytest.raises(
        FileNotFoundError, match=r"offline data mirror is missing \(params.yaml `data.mirror_dir`"
    ):
        check_mirror(tmp_path / "shraed", ["arc_easy"])
    (tmp_path / "m" / "arc_easy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"mirror folder of data set 'arc_easy' is missing or empty"):
        check_mirror(tmp_path / "m", ["arc_easy"])
    with pytest.raises(FileNotFoundError, match=r"'echr' has no offline mirror"):
        check_mirror(mirror, ["echr"])
    (tmp_path / "m" / "arc_easy" / "train.jsonl").write_text("{}\n")  # one of its three files
    with pytest.raises(FileNotFoundError, match=r"'arc_easy' needs validation.jsonl, test.jsonl"):
        check_mirror(tmp_path / "m", ["arc_easy"])
