"""Data sets: one normalizer per source family, all mapping hub rows AND mirror files to a small schema.

Kinds of normalized rows (plain dicts, one json line each in data/processed/<name>/<split>.jsonl):
  multiple_choice  {id, query, choices[list], gold[int]}    ARC-Easy, PIQA, MathQA
  cloze            {id, context, continuation}              LAMBADA
  text             {id, text}                               WikiText-2, medical transcriptions, Enron, ECHR
  qa               {id, question, answer}                   TOFU
  token_ids        {id, ids[list[int]]}                     TDEC (GPT-Neo token ids)
"""

from unlearn_repro.data import corpora, tasks, tdec, tofu  # noqa: F401  (registers the data sets)
from unlearn_repro.data.registry import DATASETS, DatasetSpec, load_split, training_text  # noqa: F401
