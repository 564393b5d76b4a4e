from unlearn_repro.models.tokenizers import encode, from_vocab_files, train_bpe


def test_gpt2_and_opt_ids_from_the_mirror_files(mirror):
    gpt2 = from_vocab_files(mirror / "tokenizers/gpt2", "gpt_neo")
    assert encode(gpt2, "Hello world") == [15496, 995]
    opt = from_vocab_files(mirror / "tokenizers/opt", "opt")
    assert encode(opt, "A photo of a cat") == [2, 250, 1345, 9, 10, 4758]
    assert len(opt) == 50265


def test_trained_bpe_is_deterministic_and_round_trips(tmp_path):
    texts = ["machine unlearning for language models"] * 20 + ["second order information matters"] * 20
    a, b = train_bpe(texts, 300), train_bpe(texts, 300)
    assert a.get_vocab() == b.get_vocab()
    a.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    c = AutoTokenizer.from_pretrained(tmp_path)
    assert encode(c, "unlearning matters") == encode(a, "unlearning matters")
    assert encode(a, "a b c d e f g", max_length=3, keep="right") == encode(a, "a b c d e f g")[-3:]
