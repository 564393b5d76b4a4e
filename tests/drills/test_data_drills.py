"""Drills on data preparation: a failed re-preparation, and a mirror named by another path or moved."""

import json
import shutil

from tests.drills.conftest import ARC, edit_params, mirror_copy, out, snakemake, workspace


def _break_row(path, line: int, field: str) -> str:
    """Drop `field` from row `line` (0-based) of a jsonl file; return the original text."""
    text = path.read_text()
    lines = text.splitlines()
    row = json.loads(lines[line])
    del row[field]
    lines[line] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    return text


def test_data_is_identified_by_content_and_a_failed_re_preparation_reruns(tmp_path, mirror):
    """1. The same mirror moved and named by an absolute path reruns nothing (its path was a param: the whole
    DAG reran). 2. max_train changed with a bad row in the mirror -> the job fails -> the row fixed: the rerun
    re-prepares with the new max_train (it said "Nothing to be done" and kept the old 96 rows)."""
    copy = mirror_copy(tmp_path / "mirror", mirror)
    ws = workspace(tmp_path, copy)
    target = f"{ARC}/meta.json"
    assert snakemake(ws, target).returncode == 0
    good = (ws / ARC / "train.jsonl").read_bytes()
    moved = tmp_path / "elsewhere" / "mirror"
    moved.parent.mkdir()
    shutil.move(copy, moved)
    edit_params(ws, lambda p: p["data"].update(mirror_dir=str(moved)))
    dry = snakemake(ws, target, "-n")
    assert "Nothing to be done" in out(dry), out(dry)

    edit_params(ws, lambda p: p["profiles"]["ci"]["data"].update(max_train=88))
    original = _break_row(moved / "arc_easy/train.jsonl", 4, "answerKey")
    bad = snakemake(ws, target)
    log = (ws / "logs/ci/prepare_data/arc_easy.log").read_text()
    assert bad.returncode != 0 and "train.jsonl:5: bad row, missing or malformed field 'answerKey'" in log, (
        log
    )
    assert not (ws / target).exists()  # nothing passes as made with max_train 88
    assert (ws / "data/processed/ci/.arc_easy.last_good/train.jsonl").read_bytes() == good  # kept aside
    (moved / "arc_easy/train.jsonl").write_text(original)
    fixed = snakemake(ws, target)
    assert fixed.returncode == 0 and "Nothing to be done" not in out(fixed), out(fixed)
    assert json.loads((ws / target).read_text())["rows"]["train"] == 88
