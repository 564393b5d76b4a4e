"""LoRA adapters (peft) and FLoRA's Fisher-weighted initialization (FLoRA paper §3.4) on top of peft."""
