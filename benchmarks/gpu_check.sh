#!/usr/bin/env bash
# One-shot GPU check (not part of the pipeline): run from anywhere on a machine that has this working tree and
# the ignored folder .gpu/ (carried wheels + ARC-Easy mirror + GPT-2 BPE files); results go to $OUT.
#   1. benchmarks/bench_second_order.py --device cuda  -> per_sample_cuda.md, fisher_cycle_cuda.md, inversion_cuda.md
#   2. one paper-profile unlearning job (GPU_CHECK_METHOD, arc_easy, seed 0, m = 1024, B = 48, per_batch) on a
#      random-init GPT-Neo-125M built from its hub config, through the project's own CLI -> paper_job.json
# Every step runs under a time cap taken from one overall budget (GPU_CHECK_BUDGET_S, default 420 s); a failing
# step is recorded and the next one runs. GPU_CHECK_SMOKE=1: the same steps on CPU with tiny sizes (venv, no
# wheel install). Other knobs: GPU_CHECK_CYCLES (unlearning cycles, default 1), GPU_CHECK_FINETUNE=1 (also
# fine-tune before unlearning; default: unlearn the pretrained model), GPU_CHECK_WORK (scratch folder),
# GPU_CHECK_METHOD (default fisher_removal), GPU_CHECK_REBUILD (fisher.rebuild), GPU_CHECK_BENCH=0 (no benchmark).
# .gpu/ (ignored by git) is built once where there is network and the data mirror, from the repo root:
#   mkdir -p .gpu/data/tokenizers && cp -r ../shared/data/arc_easy .gpu/data/ && cp -r ../shared/data/tokenizers/gpt2 .gpu/data/tokenizers/
#   for w in jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 \
#            typing_extensions==4.16.0 transformers==5.23.0 huggingface_hub==2.4.0; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl "$w"; done
# (the wheels: what the GPU machine's image lacks of requirements.lock; a machine with the project installed needs none)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
SMOKE=${GPU_CHECK_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$(mktemp -d /tmp/gpu_check_out.XXXXXX)}
  WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check_work.XXXXXX)}
  DEVICE=cpu
else
  : "${OUT:?set OUT to the folder for the results}"
  WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
  DEVICE=cuda
fi
mkdir -p "$OUT" "$WORK"
( cd "$WORK" && rm -rf runs models hub processed splits bench blocked cli_*.json build_model.json hf_try*.txt )  # a rerun starts clean
BUDGET=${GPU_CHECK_BUDGET_S:-420}
CYCLES=${GPU_CHECK_CYCLES:-1}
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
       HF_HOME="$WORK/hf_home" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset UNLEARN_CONFIG
STEPS="$WORK/steps.tsv"
: > "$STEPS"

stamp() { while IFS= read -r line; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done; }
log() { printf '%(%H:%M:%S)T [gpu_check +%ss] %s\n' -1 "$SECONDS" "$*"; }

# step NAME CAP_S CMD...: run CMD under min(CAP_S, what is left of the budget), record rc and seconds, go on
step() {
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET - SECONDS - 15))
  local t=$(( cap < left ? cap : left ))
  if [ "$t" -lt 5 ]; then
    log "SKIP $name: budget spent"; printf '%s\t%s\t%s\t%s\n' "$name" skipped 0 "$t" >> "$STEPS"; return 1
  fi
  log "START $name (cap ${t}s)"
  local t0=$SECONDS
  timeout --kill-after=10 "$t" "$@" 2>&1 | stamp
  local rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - t0))
  [ "$rc" = 124 ] && log "TIMEOUT $name after ${dt}s"
  log "END $name rc=$rc in ${dt}s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$t" >> "$STEPS"
  return "$rc"
}

main() {
  log "smoke=$SMOKE device=$DEVICE budget=${BUDGET}s cycles=$CYCLES repo=$REPO work=$WORK out=$OUT"

  # ---- 0. packages carried as wheels, environment -------------------------------------------------------------
  if [ "$SMOKE" = 1 ]; then
    export PATH="$REPO/.venv/bin:$PATH"
    # the GPU machine lacks these: make them fail to import here too (tracking off must make mlflow unneeded)
    mkdir -p "$WORK/blocked"
    for m in mlflow datasets opacus snakemake dvc rouge_score; do
      mkdir -p "$WORK/blocked/$m"; echo "raise ImportError('$m is not installed on the GPU machine')" > "$WORK/blocked/$m/__init__.py"
    done
    export PYTHONPATH="$WORK/blocked:$REPO/src"
    step wheels_valid 30 python3 -m zipfile -t .gpu/whl/jsonschema-4.26.0-py3-none-any.whl
  else
    # install TARGET WHEEL...: pip, else plain unzip (a wheel is a zip laid out for site-packages)
    local install=(bash -c 'python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$0" "$@" ||
      python3 -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" "$0" "$@"')
    step install_jsonschema 60 "${install[@]}" /tmp/site_js .gpu/whl/jsonschema-*.whl .gpu/whl/jsonschema_specifications-*.whl \
      .gpu/whl/referencing-*.whl .gpu/whl/rpds_py-*.whl .gpu/whl/attrs-*.whl .gpu/whl/typing_extensions-*.whl
    step install_hf 90 "${install[@]}" /tmp/site_tf .gpu/whl/transformers-*.whl
    step install_hub 60 "${install[@]}" /tmp/site_hub .gpu/whl/huggingface_hub-*.whl
    # the project's pins (transformers 5.23, hub 2.4) where they import with what is installed, else the machine's
    CHECK='import transformers, huggingface_hub, tokenizers; from transformers import GPTNeoForCausalLM, AutoTokenizer'
    if PYTHONPATH=/tmp/site_tf:/tmp/site_hub:/tmp/site_js python3 -c "$CHECK" 2> "$WORK/hf_try1.txt"; then
      HF=/tmp/site_tf:/tmp/site_hub:; log "using carried transformers 5.23 + huggingface_hub 2.4"
    elif PYTHONPATH=/tmp/site_tf:/tmp/site_js python3 -c "$CHECK" 2> "$WORK/hf_try2.txt"; then
      HF=/tmp/site_tf:; log "using carried transformers 5.23 with the installed huggingface_hub ($(tail -1 "$WORK/hf_try1.txt"))"
    else
      HF=; log "using the installed transformers ($(tail -1 "$WORK/hf_try2.txt"))"
    fi
    export PYTHONPATH="${HF}/tmp/site_js:$REPO/src"
  fi
  log "PYTHONPATH=$PYTHONPATH python3=$(command -v python3)"
  command -v nvidia-smi > /dev/null && nvidia-smi 2>&1 | stamp
  python3 - <<'EOF' 2>&1 | stamp
import importlib, sys, torch, transformers, huggingface_hub, tokenizers
print("python", sys.version.split()[0], "| torch", torch.__version__, "| transformers", transformers.__version__,
      transformers.__file__, "| huggingface_hub", huggingface_hub.__version__, "| tokenizers", tokenizers.__version__)
print("cuda", torch.cuda.is_available(), torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "")
for mod in ("jsonschema", "unlearn_repro.cli", "unlearn_repro.methods", "mlflow", "opacus", "datasets"):
    try:
        importlib.import_module(mod)
        print(f"import {mod}: ok")
    except Exception as e:  # noqa: BLE001
        print(f"import {mod}: FAILED {type(e).__name__}: {e}")
EOF

  # ---- 1. the second-order benchmark on the device --------------------------------------------------------------
  mkdir -p "$WORK/bench"
  if [ "$SMOKE" = 1 ]; then
    step benchmark 240 nice -n 19 python3 benchmarks/bench_second_order.py --device cpu --quick --skip-100m --out-dir "$WORK/bench"
  else
    [ "${GPU_CHECK_BENCH:-1}" = 1 ] && step benchmark 150 python3 benchmarks/bench_second_order.py --device cuda --out-dir "$WORK/bench"
  fi
  cp "$WORK"/bench/per_sample_*.md "$WORK"/bench/fisher_cycle_*.md "$WORK"/bench/inversion_*.md "$OUT/" 2>/dev/null

  # ---- 2. one paper-profile unlearning job of GPT-Neo-125M (random init, built from its hub config) -------------
  local model_dir="$WORK/hub/gpt-neo-125m" data="$WORK/processed/arc_easy" params="$WORK/params_gpu_check.yaml"
  local pre="$WORK/models/gpt-neo-125m/pretrained" split="$WORK/splits/arc_easy/seed0.json"
  local method=${GPU_CHECK_METHOD:-fisher_removal}
  local run="$WORK/runs/$method/arc_easy/gpt-neo-125m/seed0"
  local nice=(); [ "$SMOKE" = 1 ] && nice=(nice -n 19)
  cat > "$WORK/build_model.py" <<'EOF'
"""GPT-Neo-125M's architecture (the hub's config.json values), random init with seed 0, in the hub's folder layout,
with the real GPT-2/GPT-Neo BPE (vocab.json + merges.txt of the offline mirror) as its tokenizer."""
import json, sys, time
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM
from unlearn_repro.models import tokenizers
out, tok_dir, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t0 = time.perf_counter()
tok = tokenizers.from_vocab_files(tok_dir, "gpt_neo")
arch = dict(hidden_size=768, num_layers=12, num_heads=12, attention_types=[[["global", "local"], 6]])
if smoke:
    arch = dict(hidden_size=64, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]])
config = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, window_size=256, intermediate_size=None,
                      activation_function="gelu_new", embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0,
                      layer_norm_epsilon=1e-5, initializer_range=0.02, bos_token_id=50256, eos_token_id=50256,
                      tie_word_embeddings=True, use_cache=True, **arch)
torch.manual_seed(0)
model = GPTNeoForCausalLM(config)
n = sum(p.numel() for p in model.parameters())
model.save_pretrained(out)
tok.save_pretrained(out)
back = tokenizers.from_hub(out, "gpt_neo")          # what the project's loader gives (base_models.load_tokenizer)
ids = back("Hello world", add_special_tokens=False)["input_ids"]
info = {"n_params": n, "expected_n_params": None if smoke else 125_198_592, "smoke": smoke,
        "tokenizer": {"len": len(back), "hello_world": ids, "eos": back.eos_token_id, "pad": back.pad_token_id,
                      "bos": back.bos_token_id}, "seconds": time.perf_counter() - t0,
        "config": {k: v for k, v in config.to_dict().items() if not k.startswith("_")}}
print(json.dumps({k: v for k, v in info.items() if k != "config"}))
json.dump(info, open(sys.argv[4], "w"), indent=1, default=str)
assert ids == [15496, 995] and len(back) == 50257 and back.eos_token_id == back.pad_token_id == 50256, info["tokenizer"]
assert smoke or n == 125_198_592, n
EOF
  step build_model 120 "${nice[@]}" python3 "$WORK/build_model.py" "$model_dir" .gpu/data/tokenizers/gpt2 "$SMOKE" "$WORK/build_model.json"

  # params.yaml with `profile: paper` and, in that profile, what keeps this one job short and offline
  python3 - "$params" "$model_dir" "$REPO/.gpu/data" "$DEVICE" "$CYCLES" "$SMOKE" <<'EOF' 2>&1 | stamp
import json, os, sys, yaml
path, model_dir, mirror, device, cycles, smoke = sys.argv[1:]
raw = yaml.safe_load(open("params.yaml"))
raw["profile"] = "paper"
over = {"device": device,
        "data": {"source": "mirror", "mirror_dir": mirror, "reference_corpus": "heldout"},
        "models": ["gpt-neo-125m"], "model_sources": {"gpt-neo-125m": model_dir},
        "unlearn": {"table_cycles": [int(cycles)], "max_cycles": int(cycles)},
        "tracking": {"enabled": False}}
if os.environ.get("GPU_CHECK_REBUILD"):
    over["fisher"] = {"rebuild": os.environ["GPU_CHECK_REBUILD"]}
if smoke == "1":   # sizes only
    over["data"].update(max_train=200, max_test=24)
    over["unlearn"].update(cycle_size=32, forget_batch_size=16)
    over.setdefault("fisher", {}).update(num_grads=16, chunk=4)
def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
merge(raw["profiles"]["paper"], over)
yaml.safe_dump(raw, open(path, "w"), sort_keys=False)
print("params overrides (profile paper):", json.dumps(over))
EOF
  cat > "$WORK/cli_wrap.py" <<'EOF'
"""python -m unlearn_repro ARGS, recording at exit the peak CUDA memory (the project does not log it) and every
memory plan the Fisher step chose (plan_layout's result: devices, storage, chunk, GiB per shard)."""
import atexit, json, os, resource, runpy, sys, time
rec = {"argv": sys.argv[1:], "plans": [], "t0": time.time()}
def dump():
    rec["seconds"] = time.time() - rec.pop("t0")
    rec["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rec.update(cuda_device=torch.cuda.get_device_name(), cuda_max_memory_allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
                       cuda_max_memory_reserved_gib=torch.cuda.max_memory_reserved() / 2**30,
                       cuda_total_gib=torch.cuda.get_device_properties(0).total_memory / 2**30)
    except Exception as e:  # noqa: BLE001
        rec["cuda_error"] = repr(e)
    with open(os.environ["WRAP_RECORD"], "w") as f:
        json.dump(rec, f, indent=1, default=str)
atexit.register(dump)
try:
    import unlearn_repro.methods.newton as newton
    _plan_layout = newton.plan_layout
    def plan_layout(*a, **k):
        devs, dtype, chunk, plan = _plan_layout(*a, **k)
        e = {"dim": a[0], "block_size": a[1], "devices": [str(d) for d in devs], "storage": str(dtype),
             "chunk": chunk, "asked_chunk": k.get("chunk"), "max_gib": (k.get("max_bytes") or 0) / 2**30,
             "grad_row_gib": k.get("grad_row_bytes", 0) / 2**30,
             "gib_per_shard": [{c: (v if c in ("shard", "blocks") else round(v / 2**30, 3)) for c, v in r.items()} for r in plan]}
        if not rec["plans"] or {**rec["plans"][-1], "calls": 0} != {**e, "calls": 0}:
            rec["plans"].append({**e, "calls": 0})
            print(f"[memory plan] {json.dumps(e)}", file=sys.stderr, flush=True)
        rec["plans"][-1]["calls"] += 1
        return devs, dtype, chunk, plan
    newton.plan_layout = plan_layout
except Exception as e:  # noqa: BLE001
    rec["patch_error"] = repr(e)
sys.argv = ["unlearn_repro"] + sys.argv[1:]
runpy.run_module("unlearn_repro", run_name="__main__", alter_sys=True)
EOF
  cli() { local name=$1 cap=$2; shift 2
          WRAP_RECORD="$WORK/cli_$name.json" step "$name" "$cap" "${nice[@]}" python3 "$WORK/cli_wrap.py" --params "$params" "$@"; }
  cli check_config 60 check-config | tail -n 4   # the resolved config is long: its end and the step's rc
  cli prepare_data 60 prepare-data --dataset arc_easy --out "$data"
  cli base_model 120 base-model --model gpt-neo-125m --corpus none --tokenizer none --out "$pre"
  local tuned=$pre
  if [ "${GPU_CHECK_FINETUNE:-0}" = 1 ]; then
    cli finetune 150 finetune --model gpt-neo-125m --dataset arc_easy --pretrained "$pre" --data "$data" \
      --out "$WORK/models/gpt-neo-125m/arc_easy/finetuned" && tuned="$WORK/models/gpt-neo-125m/arc_easy/finetuned"
  fi
  cli splits 60 splits --dataset arc_easy --data "$data" --seed 0 --out "$split"
  cli unlearn 600 unlearn --method "$method" --dataset arc_easy --model gpt-neo-125m --seed 0 \
    --finetuned "$tuned" --pretrained "$pre" --data "$data" --split "$split" --out "$run"

  # ---- results --------------------------------------------------------------------------------------------------
  python3 - "$WORK" "$run/run.json" "$OUT/paper_job.json" "$SMOKE" <<'EOF' 2>&1 | stamp
import json, subprocess, sys
from pathlib import Path
work, run_file, out, smoke = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
def load(p):
    try:
        return json.loads(Path(p).read_text())
    except Exception as e:  # noqa: BLE001
        return {"missing": f"{p}: {type(e).__name__}"}
steps = [dict(zip(("step", "rc", "seconds", "cap_s"), l.split("\t"))) for l in (work / "steps.tsv").read_text().splitlines()]
job = {"smoke": smoke, "steps": steps, "model": load(work / "build_model.json"),
       "cli": {p.stem[4:]: load(p) for p in sorted(work.glob("cli_*.json"))}, "run": load(run_file)}
try:
    job["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
except Exception as e:  # noqa: BLE001
    job["gpu"] = f"no nvidia-smi ({type(e).__name__})"
out.write_text(json.dumps(job, indent=1, default=str))
u = job["cli"].get("unlearn", {})
print("steps:", ", ".join(f"{s['step']} rc={s['rc']} {s['seconds']}s" for s in steps))
print("unlearn peak CUDA GiB:", u.get("cuda_max_memory_allocated_gib"), "| max RSS GiB:", u.get("max_rss_gib"))
for p in u.get("plans", []):
    print("memory plan:", json.dumps(p))
for c in job["run"].get("cycles", []):
    print("cycle", c.get("cycle"), {k: c.get(k) for k in ("runtime_s", "wall_time_s", "fisher_time_s", "fisher_rebuilds",
                                                           "forget_batches", "n_forget", "n_retain", "diverged")})
EOF
  tar -czf "$OUT/extra.tar.gz" -C "$WORK" --exclude='*.safetensors' --ignore-failed-read \
    steps.tsv build_model.json params_gpu_check.yaml $(cd "$WORK" && ls cli_*.json hf_try*.txt 2>/dev/null) bench \
    "runs/$method/arc_easy/gpt-neo-125m/seed0/run.json" 2>/dev/null
  log "done; failed steps: $(awk -F'\t' '$2 != 0 {printf "%s(%s) ", $1, $2}' "$STEPS")"
  ls -la "$OUT"
}

main 2>&1 | tee "$OUT/gpu_log.txt"
exit 0
