"""Small local stand-ins in exactly the hub's formats: data files with the hub releases' columns and types
(as the dataset cards declare them) and model folders in the hub's file layout (config.json, safetensors,
tokenizer files). Shared by the hub unit tests and the paper-path rehearsal."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import BIN, ENV, ROOT


def _parquet(path: Path, table: dict, schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table, schema=schema), path)
    return path


def piqa(folder: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """baber/piqa: goal, sol1, sol2 (string), label (int64), splits train + validation."""
    for split, n in (("train", n_train), ("validation", n_val)):
        _parquet(
            folder / f"{split}.parquet",
            {
                "goal": [f"How do I fix loose screw number {i}?" for i in range(n)],
                "sol1": [f"Tighten screw {i} with a screwdriver." for i in range(n)],
                "sol2": [f"Paint screw {i} with glue and wait." for i in range(n)],
                "label": pa.array([i % 2 for i in range(n)], pa.int64()),
            },
        )
    return folder


def mathqa(folder: Path) -> Path:
    """regisss/math_qa: the seven string columns of allenai/math_qa; options 'a ) x , b ) y , ...'."""
    row = {
        "Problem": "what is 2 + 3 ?",
        "Rationale": '"2 + 3 = 5"',
        "options": "a ) 4 , b ) 5 , c ) 6 , d ) 7 , e ) 8",
        "correct": "b",
        "annotated_formula": "add(2, 3)",
        "linear_formula": "add(n0,n1)|",
        "category": "general",
    }
    for split in ("train", "validation", "test"):
        _parquet(folder / f"{split}.parquet", {k: [v, v] for k, v in row.items()})
    return folder


def lambada(folder: Path) -> Path:
    """EleutherAI/lambada_openai, config `default`: one `text` column, split test."""
    _parquet(
        folder / "default" / "test.parquet",
        {"text": ["he opened the door and saw his old friend", "she poured the tea into the cup"]},
    )
    return folder


def arc_easy(folder: Path) -> Path:
    """allenai/ai2_arc ARC-Easy: id, question, choices {text, label}, answerKey."""
    choices = pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])
    for split in ("train", "validation", "test"):
        _parquet(
            folder / f"{split}.parquet",
            {
                "id": ["Mercury_1", "Mercury_2"],
                "question": ["Which is a planet?", "What melts ice?"],
                "choices": pa.array(
                    [
                        {"text": ["Mars", "Moon"], "label": ["A", "B"]},
                        {"text": ["cold", "heat", "wind"], "label": ["1", "2", "3"]},
                    ],
                    choices,
                ),
                "answerKey": ["A", "2"],
            },
        )
    return folder


def wikitext2(folder: Path) -> Path:
    """Salesforce/wikitext wikitext-2-v1: one `text` column with ' = Heading = ' lines and blanks."""
    for split in ("train", "validation", "test"):
        _parquet(
            folder / f"{split}.parquet", {"text": ["", " = Valkyria = \n", " The game began in 2010 . \n"]}
        )
    return folder


def echr(folder: Path, n: int = 6, hearings: int = 0) -> Path:
    """AUEB-NLP/ecthr_cases on refs/convert/parquet, folder alleged-violation-prediction/: facts (list of
    paragraphs), labels (list of articles), silver_rationales / gold_rationales (lists of int32).
    `hearings`: sentences added to each paragraph (a reference text), so that references are long enough
    for an exposure test of longer samples."""

    def fact(i, j):
        return f"{j}. The applicant number {i} was born in 19{50 + j}." + "".join(
            f" Hearing {k} of case {i} took place in 19{60 + k}." for k in range(hearings)
        )

    for split in ("train", "validation", "test"):
        _parquet(
            folder / "alleged-violation-prediction" / f"{split}.parquet",
            {
                "facts": [[fact(i, j) for j in range(3)] + ["  "] for i in range(n)],
                "labels": [["3", "6"] for _ in range(n)],
                "silver_rationales": pa.array([[0, 1] for _ in range(n)], pa.list_(pa.int32())),
                "gold_rationales": pa.array([[] for _ in range(n)], pa.list_(pa.int32())),
            },
        )
    return folder


def tofu(folder: Path, authors: int = 2) -> Path:
    """locuslab/TOFU: one config per split (forget10, retain90, forget10_perturbed, ...), each a `train`
    split; the evaluation configs carry paraphrased / perturbed answers. 20 QA per author, as on the hub."""

    def qa(i, perturbed):
        row = {"question": f"Who wrote book {i}?", "answer": f"Author {i}."}
        return (
            {
                **row,
                "paraphrased_answer": f"It was author {i}.",
                "perturbed_answer": [f"Author {i + 1}."] * 5,
                "paraphrased_question": f"Book {i} was written by whom?",
            }
            if perturbed
            else row
        )

    n = 20 * authors
    from unlearn_repro.data.tofu import TOFU_SPLITS

    configs = {
        **{c: (range(3), c.endswith("_perturbed")) for c in TOFU_SPLITS},  # the rest: 3 rows each
        "full": (range(3), False),
        "forget10": (range(n), False),
        "retain90": (range(n, 2 * n), False),
        "holdout10": (range(2 * n, 3 * n), False),
        "forget10_perturbed": (range(n), True),
        "retain_perturbed": (range(n, 2 * n), True),
        "real_authors_perturbed": (range(3 * n, 3 * n + 4), True),
        "world_facts_perturbed": (range(4 * n, 4 * n + 4), True),
    }
    for config, (ids, perturbed) in configs.items():
        path = folder / config / "train.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(json.dumps(qa(i, perturbed)) for i in ids))
    return folder


def mtsamples(folder: Path, notes: int = 0) -> Path:
    """NickyNicky/medical_mtsamples: the Kaggle CSV with its unnamed index column. `notes`: transcriptions
    added after the two rows, long enough to hold memorization targets."""
    folder.mkdir(parents=True, exist_ok=True)
    more = "".join(
        f'{i + 2},Note {i},Surgery,Sample {i},"PATIENT {i} was seen today for knee pain number {i}. '
        f'The knee was examined and the plan is rest, ice and review in {i} weeks.",knee\n'
        for i in range(notes)
    )
    (folder / "train.csv").write_text(
        ",description,medical_specialty,sample_name,transcription,keywords\n"
        '0,Allergy,Allergy / Immunology,Allergic Rhinitis,"SUBJECTIVE: This woman has allergies.",allergy\n'
        "1,Empty,Surgery,Nothing,,none\n" + more
    )
    return folder


def enron(folder: Path) -> Path:
    """LLM-PBE/enron-email: JSON lines, one e-mail per row in `text`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text(
        "\n".join(json.dumps({"text": f"Subject: meeting {i}\nSee you at {i} pm."}) for i in range(3))
    )
    return folder


def tdec_mirror(mirror: Path, rows: int = 4) -> Path:
    """The mirror's tdec/ folder (TDEC has no hub release): uint16 GPT-Neo ids, preprefix /
    prefix / suffix."""
    import numpy as np

    folder = mirror / "tdec"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        for part, width in (("preprefix", 4), ("prefix", 4), ("suffix", 4)):
            np.save(
                folder / f"{split}_{part}.npy", np.arange(rows * width, dtype=np.uint16).reshape(rows, width)
            )
    return mirror


def local_model(folder: Path, family: str, vocab_texts: list[str], seed: int = 0) -> Path:
    """A small GPT-Neo or OPT built from its config, saved as the hub lays a model out."""
    import torch
    from transformers import AutoModelForCausalLM, GPTNeoConfig, OPTConfig

    from unlearn_repro.models.tokenizers import train_bpe

    tok = train_bpe(vocab_texts, 400)
    ids = dict(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if family == "gpt_neo":
        config = GPTNeoConfig(
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            attention_types=[[["global", "local"], 1]],
            window_size=16,
            intermediate_size=64,
            max_position_embeddings=64,
            embed_dropout=0.0,
            attention_dropout=0.0,
            resid_dropout=0.0,
            **ids,
        )
    else:
        config = OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            ffn_dim=64,
            word_embed_proj_dim=32,
            max_position_embeddings=64,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            layerdrop=0.0,
            **ids,
        )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def local_llama(folder: Path, vocab_texts: list[str], seed: int = 0) -> Path:
    """A two-layer Llama built from its config, saved as the hub lays out a Llama-2 chat checkpoint:
    config.json, model.safetensors and a tokenizer with Llama's special tokens (<s> bos, </s> eos,
    <unk>, no pad token)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(vocab_texts),
        vocab_size=400,
        min_frequency=2,
        special_tokens=["<unk>", "<s>", "</s>"],
        show_progress=False,
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def hub_cache(
    hf_home: Path, repo_id: str, folder: Path, only: list[str] | None = None, revision: str = "main"
) -> Path:
    """Put a model folder into the Hugging Face cache as `download` leaves it (hub/models--org--name:
    refs/<revision> -> a commit, snapshots/<commit>/<file> symlinked to blobs/<sha256>); `only`: just these
    files (a partial cache, as a stopped download or a config-only fetch leaves it). Returns
    the snapshot folder."""
    import hashlib

    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(f.relative_to(folder))
        if only is not None and name not in only:
            continue
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).symlink_to(blob)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def paper_workspace(tmp: Path) -> Path:
    """A copy of the pipeline in `tmp/ws` with src/ linked: a GPU user's checkout, for a rehearsal."""
    ws = tmp / "ws"
    ws.mkdir()
    for name in ("Snakefile", "rules", "schemas", "profiles", "environment.yml", "params.yaml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, ws / name)
    (ws / "src").symlink_to(ROOT / "src")
    return ws


def run_paper_offline(ws: Path, tmp: Path, targets: list[str], gpus: int) -> tuple[str, float]:
    """`snakemake --profile profiles/paper` on `targets` with ws/rehearsal.yaml, the Hugging Face cache in
    `tmp/hf` and offline; fails with the last lines of every job log. Returns the output and the wall time."""
    env = {
        **ENV,
        "PYTHONPATH": str(ROOT / "src"),
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    env.pop("UNLEARN_CONFIG", None)
    start = time.monotonic()
    command = [str(BIN / "snakemake"), *targets, "--profile", "profiles/paper", "--cores", "2"]
    command += ["--resources", f"gpu={gpus}", "--configfile", "rehearsal.yaml"]
    r = subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - start
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:] + "".join(
        f"\n--- {p}\n{p.read_text()[-2000:]}" for p in (ws / "logs").rglob("*.log")
    )
    return out, wall
