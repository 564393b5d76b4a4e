"""The metric registry: a scorer per name, `fn(model, tokenizer, inputs, forget_idx, cfg) -> value`.
Evaluation runs the scorers a study names on the inputs that study prepared (read and tokenized once per
run), so a study adds its metrics here or in its own module without touching the others' scoring."""

from __future__ import annotations

from collections.abc import Callable

from unlearn_repro.metrics.collect import exposures, mean_token_nll, task_accuracy
from unlearn_repro.registry import Registry

Scorer = Callable[..., object]
METRICS: Registry[Scorer] = Registry("metric")


def score(names, model, tokenizer, inputs: dict, forget_idx: list[int], cfg) -> dict:
    """{name: value} for each named metric."""
    return {name: METRICS.get(name)(model, tokenizer, inputs, forget_idx, cfg) for name in names}


def _device(model):
    return next(model.parameters()).device


@METRICS.register("accuracy")
def _accuracy(model, tok, inputs, forget_idx, cfg) -> float:
    """Task accuracy on the test rows (paper §4.2.2)."""
    return task_accuracy(
        model,
        tok,
        inputs["test"],
        inputs["kind"],
        cfg.data.max_length,
        _device(model),
        cfg.evaluation.batch_size,
    )


@METRICS.register("test_nll")
def _test_nll(model, tok, inputs, forget_idx, cfg) -> float:
    """Mean per-token NLL of the test rows (utility, finer than accuracy near chance)."""
    return mean_token_nll(
        model, inputs["test_seqs"], tok.pad_token_id, _device(model), cfg.evaluation.batch_size
    )


@METRICS.register("exposure")
def _exposure(model, tok, inputs, forget_idx, cfg) -> list[float]:
    """Exposure of each forgotten training sample against the reference set (paper §4.2.1)."""
    samples = [inputs["train_seqs"][i] for i in forget_idx]
    return exposures(model, tok, samples, inputs["refs"], _device(model), cfg.evaluation.batch_size).tolist()


@METRICS.register("retain_accuracy")
def _retain_accuracy(model, tok, inputs, forget_idx, cfg) -> float:
    """Accuracy on training rows the model keeps (D+): TOFU's "retain accuracy". Unlike test accuracy it
    moves at the embedded scale, where the fine-tuned tiny models answer their training rows above chance."""
    return task_accuracy(
        model,
        tok,
        inputs["retain"],
        inputs["kind"],
        cfg.data.max_length,
        _device(model),
        cfg.evaluation.batch_size,
    )
