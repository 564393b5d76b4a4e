"""Tokenizers: the real GPT-2/GPT-Neo and OPT BPEs (hub or local vocab/merges files) and a small
byte-level BPE trained deterministically on WikiText-2 for the tiny models (a 50k vocabulary would make
the embedding most of a tiny model and slow it ~8x on a CPU)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import ByteLevelBPETokenizer

from unlearn_repro.errors import HubError, one_line

if TYPE_CHECKING:  # imported where used: the DAG build imports this module (the scorers'), never a tokenizer
    import transformers

EOS = "<|endoftext|>"
PAD = "<pad>"


def train_bpe(texts: Iterable[str], vocab_size: int) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE fit on `texts`; the same texts and vocab size give the same tokenizer."""
    import transformers

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD], show_progress=False
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=PAD
    )


def from_vocab_files(folder: str | Path, family: str) -> transformers.PreTrainedTokenizerFast:
    """GPT-2 (GPT-Neo) or OPT tokenizer from a vocab.json + merges.txt pair (the offline mirror's format)."""
    import transformers

    folder = Path(folder)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    for f in (vocab, merges):
        if not f.exists():
            raise FileNotFoundError(f"{f}: tokenizer file missing")
    bpe = ByteLevelBPETokenizer(str(vocab), str(merges))
    if family == "opt":
        # OPT: RoBERTa ids, </s> is bos and eos; madeupword0000..0002 pad the vocabulary to 50265
        bpe.add_tokens([f"madeupword{i:04d}" for i in range(3)])
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=bpe._tokenizer,
            bos_token="</s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
        )
        tok._unlearn_add_bos = True
        return tok
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS
    )
    tok.pad_token = EOS
    return tok


def from_hub(hub_id: str, family: str, revision: str | None = None) -> transformers.PreTrainedTokenizerFast:
    """The model's own tokenizer from the hub (or the cache), or from a local folder in the hub's layout."""
    import transformers

    try:
        tok = transformers.AutoTokenizer.from_pretrained(hub_id, revision=revision)
    except OSError as e:  # not cached while offline, unreachable hub
        raise HubError(
            f"tokenizer {hub_id}{'@' + revision if revision else ''}: {one_line(e)}; fetch it first with "
            "`python -m unlearn_repro download` or point model_sources at a local folder"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok._unlearn_add_bos = family in BOS_FAMILIES
    return tok


BOS_FAMILIES = (
    "opt",
    "llama",
)  # trained with a leading bos token: OPT's </s>, Llama's <s> (TOFU's llama format)


def bos_ids(tok) -> list[int]:
    """[bos] for models trained with a leading bos token (OPT), else []."""
    return [tok.bos_token_id] if getattr(tok, "_unlearn_add_bos", False) else []


def encode(tok, text: str, max_length: int | None = None, keep: str = "left") -> list[int]:
    """Token ids with the model's bos (OPT prepends </s>); over-long texts keep their start or end."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    bos = bos_ids(tok)
    if max_length is not None and len(ids) + len(bos) > max_length:
        n = max_length - len(bos)
        ids = ids[:n] if keep == "left" else ids[-n:]
    return bos + ids
