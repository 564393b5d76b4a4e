"""A job for tests/unit/test_jobserver.py: a small seeded GPT-Neo training run that prints the hash of its
weights, where it ran and the environment mark it saw; `exit MESSAGE` ends with sys.exit(MESSAGE) and
`sleep FILE` writes its pid to FILE and sleeps (a job whose client is killed)."""

import hashlib
import os
import sys
import time

from unlearn_repro import numerics

numerics.pin()  # as `python -m unlearn_repro` does before torch loads

import torch  # noqa: E402
from transformers import GPTNeoConfig, GPTNeoForCausalLM  # noqa: E402

if sys.argv[1:2] == ["sleep"]:
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
torch.manual_seed(0)
config = GPTNeoConfig(
    vocab_size=64,
    max_position_embeddings=32,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    attention_types=[[["global", "local"], 1]],
    intermediate_size=64,
    window_size=8,
)
model = GPTNeoForCausalLM(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
tokens = torch.randint(0, 64, (4, 16))
for _ in range(3):
    model(input_ids=tokens, labels=tokens).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
print(os.getcwd(), os.environ.get("JOB_MARK"), oct(os.umask(0)))
if sys.argv[1:2] == ["exit"]:
    sys.exit(sys.argv[2])
