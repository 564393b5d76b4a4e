"""The paper path's sources: hub-format files through each normalizer, model sources, download / check-hub
offline (clear per-item lines, no traceback), one GPU per job, one-line errors."""

import os
import subprocess
import sys

import pytest
import yaml

from tests import hub_fixtures as fx
from tests.conftest import ROOT
from unlearn_repro import config, gpus, hub, hub_check
from unlearn_repro.data.registry import DATASETS, load_split


def _hub(name, split, folder):
    return load_split(name, split, "hub", "unused-mirror", str(folder))


def test_normalizers_read_the_hub_formats(tmp_path):
    rows = _hub("piqa", "train", fx.piqa(tmp_path / "piqa", n_train=3))
    assert rows[1] == {
        "id": "piqa-1",
        "query": "Question: How do I fix loose screw number 1?\n",
        "gold": 1,
        "choices": ["Tighten screw 1 with a screwdriver.", "Paint screw 1 with glue and wait."],
    }
    mq = _hub("mathqa", "test", fx.mathqa(tmp_path / "mathqa"))[0]
    assert mq["choices"] == ["A", "B", "C", "D", "E"] and mq["gold"] == 1
    assert mq["query"] == "Question: what is 2 + 3 ?\nA. 4\nB. 5\nC. 6\nD. 7\nE. 8\nAnswer: "
    assert _hub("lambada", "test", fx.lambada(tmp_path / "lambada"))[1] == {
        "id": "lambada-1",
        "context": "she poured the tea into the",
        "continuation": "cup",
    }
    arc = _hub("arc_easy", "test", fx.arc_easy(tmp_path / "arc"))
    assert [(r["choices"], r["gold"]) for r in arc] == [(["Mars", "Moon"], 0), (["cold", "heat", "wind"], 1)]
    assert _hub("wikitext2", "test", fx.wikitext2(tmp_path / "wiki")) == [
        {"id": "wikitext2-2", "text": "The game began in 2010 ."}
    ]
    echr = _hub("echr", "test", fx.echr(tmp_path / "echr", n=2))
    assert len(echr) == 6 and echr[4] == {
        "id": "echr-1-1",
        "text": "1. The applicant number 1 was born in 1951.",
    }
    tofu = _hub("tofu", "forget10", fx.tofu(tmp_path / "tofu"))
    assert tofu[2] == {"id": "tofu-2", "question": "Who wrote book 2?", "answer": "Author 2."}
    assert _hub("mtsamples", "train", fx.mtsamples(tmp_path / "mt")) == [
        {"id": "mtsamples-0", "text": "SUBJECTIVE: This woman has allergies."}
    ]


def test_hub_ids_need_no_loading_script():
    """The releases chosen for datasets 5 (script-based ones replaced; see docs/paper-scale.md)."""
    want = {
        "piqa": ("baber/piqa", None, None),
        "mathqa": ("regisss/math_qa", None, None),
        "lambada": ("EleutherAI/lambada_openai", "default", None),
        "echr": ("AUEB-NLP/ecthr_cases", "alleged-violation-prediction", "refs/convert/parquet"),
    }
    for name, (repo, conf, rev) in want.items():
        spec = DATASETS.get(name)
        assert (spec.hub_id, spec.hub_config, spec.hub_revision) == (repo, conf, rev)
    assert DATASETS.get("tofu").hub_location("forget10") == ("forget10", "train")


PIQA_ONLY = {"unlearn": {"extended_datasets": ["piqa"]}, "discussions": {"dataset": "piqa"}}


def _paper(**over):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if over.get("data", {}).get("tasks") == ["piqa"]:
        over = config.deep_merge(PIQA_ONLY, over)
    raw["profiles"]["paper"] = config.deep_merge(raw["profiles"]["paper"], over)
    return raw, config.resolve(raw, "paper")


def test_model_sources_and_needed_items(tmp_path):
    folder = fx.local_model(tmp_path / "neo", "gpt_neo", ["a small corpus of words"] * 20)
    _, cfg = _paper(model_sources={"gpt-neo-125m": str(folder), "opt-125m": "facebook/opt-125m@refs/pr/7"})
    assert hub.model_source(cfg, "gpt-neo-125m") == hub.ModelSource(str(folder))
    assert hub.model_source(cfg, "opt-125m") == hub.ModelSource("facebook/opt-125m", "refs/pr/7")
    _, cfg = _paper(model_sources={"opt-125m": "@abc123"})
    assert hub.model_source(cfg, "opt-125m") == hub.ModelSource("facebook/opt-125m", "abc123")
    assert hub.model_source(cfg, "gpt-neo-125m") == hub.ModelSource("EleutherAI/gpt-neo-125m")
    _, cfg = _paper(model_sources={"opt-125m": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="model_sources.opt-125m is not a model folder"):
        hub.model_source(cfg, "opt-125m")
    # hub models come pretrained: no WikiText-2 on the paper path; tiny models still need it
    assert "wikitext2" not in hub.needed_datasets(cfg) and "echr" in hub.needed_datasets(cfg)
    assert "wikitext2" in hub.needed_datasets(config.load(ROOT / "params.yaml", "embedded"))
    # the TOFU study's released checkpoints (SOUL's Llama-2-7B-chat on TOFU and its retain model) come too
    assert hub.needed_models(cfg) == [
        "gpt-neo-125m",
        "opt-125m",
        "tofu-llama2-7b-chat",
        "tofu-llama2-7b-chat-retain90",
    ]
    assert hub.model_source(cfg, "tofu-llama2-7b-chat") == hub.ModelSource(
        "open-unlearning/tofu_Llama-2-7b-chat-hf_full"
    )
    _, recipe = _paper(
        tofu={"retain": "recipe", "forget_split": "forget05"}
    )  # the retain model by TOFU's recipe
    assert hub.needed_models(recipe)[2:] == ["tofu-llama2-7b-chat", "llama2-7b-chat"]
    _, five = _paper(tofu={"forget_split": "forget05"})
    assert hub.needed_models(five)[3] == "tofu-llama2-7b-chat-retain95"
    with pytest.raises(config.ConfigError, match="is fine-tuned on TOFU retain90, not full"):
        _paper(tofu={"model": "tofu-llama2-7b-chat-retain90"})
    # download / check-hub cover every study of the default target, not only the main one
    assert {"mtsamples", "enron", "tdec", "tofu", "wikitext2"} <= set(hub_check.all_datasets(cfg))
    with pytest.raises(config.ConfigError, match="tofu.model = 'gpt-neo-1.3b' is not in models"):
        _paper(
            tofu={"model": "gpt-neo-1.3b"}
        )  # every study's model is one of `models`: needed_models lists them


def _cli(tmp_path, params: dict, *args, **env):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    full = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **env,
    }
    full.pop("UNLEARN_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "unlearn_repro", "--params", str(path), "--profile", "paper", *args],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_hub_offline_reports_each_item_and_local_files_pass(tmp_path):
    raw, _ = _paper(data={"tasks": ["piqa"]})
    r = _cli(tmp_path, raw, "check-hub")
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out, out
    fails = [ln for ln in out.splitlines() if ln.strip().startswith("FAIL")]
    # every study's data (main: piqa, echr; memorization: mtsamples, enron; tdec: tdec, wikitext2; tofu) and
    # both models and the TOFU study's two released Llama checkpoints, each on its own line with the reason
    assert len(fails) == 11, out
    assert any("baber/piqa" in ln and "OfflineMode" in ln for ln in fails), out
    assert any("data tofu: locuslab/TOFU" in ln and "OfflineMode" in ln for ln in fails), out
    assert any(
        "data tdec" in ln and "no hub release: get it from https://github.com" in ln for ln in fails
    ), out
    assert any(
        "model gpt-neo-125m: not in the cache (no snapshot of EleutherAI/gpt-neo-125m at main)" in ln
        for ln in fails
    ), out
    assert any(
        "model tofu-llama2-7b-chat-retain90: not in the cache (no snapshot of "
        "open-unlearning/tofu_Llama-2-7b-chat-hf_retain90 at main)" in ln
        for ln in fails
    ), out
    # the same profile on local files in the hub's formats: every item ok, and `download` has nothing to fetch
    texts = ["the applicant was born", "tighten the screw"] * 20
    hub_paths = {
        "piqa": fx.piqa(tmp_path / "piqa"),
        "echr": fx.echr(tmp_path / "echr"),
        "mtsamples": fx.mtsamples(tmp_path / "mt"),
        "enron": fx.enron(tmp_path / "enron"),
        "wikitext2": fx.wikitext2(tmp_path / "wiki"),
        "tofu": fx.tofu(tmp_path / "tofu"),
    }
    raw, _ = _paper(
        data={
            "tasks": ["piqa"],
            "hub_paths": {k: str(v) for k, v in hub_paths.items()},
            "mirror_dir": str(fx.tdec_mirror(tmp_path / "mirror")),
        },
        model_sources={
            "gpt-neo-125m": str(fx.local_model(tmp_path / "neo", "gpt_neo", texts)),
            "opt-125m": str(fx.local_model(tmp_path / "opt", "opt", texts)),
            "tofu-llama2-7b-chat": str(fx.local_llama(tmp_path / "llama", texts)),
            "tofu-llama2-7b-chat-retain90": str(fx.local_llama(tmp_path / "ret", texts)),
        },
    )
    r = _cli(tmp_path, raw, "check-hub", "--out", "check.json")
    assert r.returncode == 0 and "11 ok, 0 failing" in r.stdout, r.stdout + r.stderr
    assert "model tofu-llama2-7b-chat: " in r.stdout and "llama, hidden size 32; local folder" in r.stdout
    assert "6 files in the mirror folder (nothing to fetch)" in r.stdout, r.stdout
    # the hub's own columns beside the normalized ones (Enron's real column name is confirmed, not assumed)
    assert "hub columns goal, label, sol1, sol2 -> columns choices, gold, id, query" in r.stdout, r.stdout
    assert "data enron: " in r.stdout and "hub columns text -> columns id, text" in r.stdout, r.stdout
    assert "gpt_neo, hidden size 32; local folder: config.json, model.safetensors, tokenizer.json" in r.stdout
    r = _cli(tmp_path, raw, "download")
    assert r.returncode == 0 and "local folder (nothing to fetch)" in r.stdout, r.stdout
    assert "12 rows in 2 split(s)" in r.stdout, r.stdout


def test_check_hub_reads_the_cache_a_job_loads_and_names_a_missing_file(tmp_path):
    """Offline, a model is ok only when the cache holds its config, weights and tokenizer: a cache holding
    only config.json (a stopped download) is a FAIL naming the weights file, not an 'ok' from
    the config alone."""
    texts = ["tighten the screw", "the applicant was born"] * 20
    fx.hub_cache(
        tmp_path / "hf", "EleutherAI/gpt-neo-125m", fx.local_model(tmp_path / "neo", "gpt_neo", texts)
    )
    fx.hub_cache(
        tmp_path / "hf",
        "facebook/opt-125m",
        fx.local_model(tmp_path / "opt", "opt", texts),
        only=["config.json"],
    )
    raw, _ = _paper(data={"tasks": ["piqa"]})
    r = _cli(tmp_path, raw, "check-hub")
    models = {ln.split(":")[0].split()[-1]: ln for ln in r.stdout.splitlines() if " model " in ln}
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert models["gpt-neo-125m"].lstrip().startswith("ok") and "cached in " in models["gpt-neo-125m"], (
        r.stdout
    )
    assert "config.json, model.safetensors, tokenizer.json" in models["gpt-neo-125m"], r.stdout
    assert (
        models["opt-125m"].lstrip().startswith("FAIL") and "missing model.safetensors" in models["opt-125m"]
    ), r.stdout
    # with the weights but not the tokenizer: the tokenizer file is named
    fx.hub_cache(tmp_path / "hf", "facebook/opt-125m", tmp_path / "opt", only=["model.safetensors"])
    r = _cli(tmp_path, raw, "check-hub")
    assert "FAIL  model opt-125m: missing tokenizer.json" in r.stdout, r.stdout


def test_a_sharded_model_needs_every_shard(tmp_path):
    import json

    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": shards[0], "b": shards[1]}})
    )
    (folder / shards[0]).write_bytes(b"")
    with pytest.raises(
        hub.HubError, match="missing model-00002-of-00002.safetensors \\(weights shard 2 of 2"
    ):
        hub.model_files(hub.ModelSource(str(folder)))
    (folder / shards[1]).write_bytes(b"")
    assert hub.model_files(hub.ModelSource(str(folder))) == (
        "local folder",
        ["config.json", "model.safetensors.index.json", *shards, "tokenizer.json"],
    )


def test_missing_cache_cuda_and_network_errors_are_one_line(tmp_path, monkeypatch):
    raw, _ = _paper(device="cpu")
    r = _cli(
        tmp_path,
        raw,
        "base-model",
        "--model",
        "gpt-neo-125m",
        "--corpus",
        "none",
        "--tokenizer",
        "none",
        "--out",
        "m",
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "error (base-model): tokenizer EleutherAI/gpt-neo-125m:" in r.stderr and "download" in r.stderr
    import torch

    if not torch.cuda.is_available():
        raw, _ = _paper(device="cuda")
        r = _cli(
            tmp_path,
            raw,
            "finetune",
            "--model",
            "opt-125m",
            "--dataset",
            "piqa",
            "--pretrained",
            "p",
            "--data",
            "d",
            "--out",
            "o",
        )
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "cuda was asked for" in r.stderr and "torch sees no CUDA device" in r.stderr
    from dataclasses import replace

    from unlearn_repro import cli
    from unlearn_repro.commands import COMMANDS

    def unreachable(*a, **k):
        raise ConnectionError("HTTPSConnectionPool(host='huggingface.co'): Max retries exceeded\nsecond line")

    monkeypatch.setitem(
        COMMANDS._items, "check-config", replace(COMMANDS.get("check-config"), handler=unreachable)
    )
    with pytest.raises(SystemExit) as e:
        cli.main(["--params", str(ROOT / "params.yaml"), "--profile", "paper", "check-config"])
    message = str(e.value)
    assert (
        message.startswith("error (check-config): ConnectionError: HTTPSConnectionPool")
        and "\n" not in message
    )


def test_each_gpu_job_takes_its_own_slot(tmp_path, monkeypatch):
    a = gpus.acquire_slot(2, tmp_path)
    b = gpus.acquire_slot(2, tmp_path)
    assert (a, b) == (0, 1)
    with pytest.raises(RuntimeError, match="no free GPU slot among 2"):
        gpus.acquire_slot(2, tmp_path, wait_s=0.2, poll_s=0.05)
    gpus._held.pop(0).close()  # job on GPU 0 ends: its slot is free again
    assert gpus.acquire_slot(2, tmp_path) == 0
    # another process sees the held slots (the locks are OS file locks) and takes none of them
    code = "import sys; from unlearn_repro import gpus; print(gpus.acquire_slot(3, sys.argv[1]))"
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert r.stdout.strip() == "2", r.stderr
    while gpus._held:
        gpus._held.pop().close()
    monkeypatch.setenv(gpus.SLOTS_ENV, "2")
    monkeypatch.setenv(gpus.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # chosen already (by the user or the scheduler): kept
    assert gpus.pin_gpu() is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpus.pin_gpu() == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    while gpus._held:
        gpus._held.pop().close()


def test_an_unreachable_hub_is_found_at_once(monkeypatch):
    """check-hub / download probe the hub first: offline they read the cache only, instead of
    minutes of retries."""
    for k in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.invalid")  # .invalid never resolves (RFC 2606)
    why = hub.probe_hub(timeout_s=2)
    assert why is not None and why.startswith("hub.example.invalid: ")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.probe_hub() is None
