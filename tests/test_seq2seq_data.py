"""Seq2seq data on tiny local folders (and the real ones when present), the trained subword
tokenizer, and the BLEU / ROUGE wiring against hand-computed pairs."""
import math
from pathlib import Path

import datasets
import pytest
from seq2seq_tiny import make_data

from sj_spikelm.data.seq2seq import TASKS, load_seq2seq, seq2seq_task
from sj_spikelm.data.subword import train_bpe_tokenizer
from sj_spikelm.generation_metrics import bleu, rouge

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("s2s"))


def test_multi30k_reads_line_aligned_pairs(root):
    ds = load_seq2seq(seq2seq_task("multi30k"), "validation", root)
    assert len(ds) == 8 and ds.column_names == ["source", "target", "references"]
    en = (root / "multi30k" / "val.en").read_text(encoding="utf-8").splitlines()
    de = (root / "multi30k" / "val.de").read_text(encoding="utf-8").splitlines()
    assert ds["source"] == en and ds["target"] == de and ds["references"] == [[t] for t in de]
    assert len(load_seq2seq(TASKS["multi30k"], "test", root)) == 8


def test_summarization_sets_keep_every_reference(root):
    sci = load_seq2seq(TASKS["scitldr"], "validation", root)
    assert all(len(r) == 2 and r[0] == t for r, t in zip(sci["references"], sci["target"]))
    assert sci["source"][0].count(".") == 2  # the abstract's sentences joined
    aeslc = load_seq2seq(TASKS["aeslc"], "train", root)
    assert aeslc["source"][0].startswith("Hi, ") and aeslc["references"][0] == [aeslc["target"][0]]
    assert TASKS["aeslc"].metric == "rougeL" and TASKS["multi30k"].metric == "bleu"


def test_data_errors_name_the_argument(root, tmp_path):
    with pytest.raises(ValueError, match="accepted: multi30k, scitldr, aeslc, xsum, cnn_dailymail, wmt16"):
        seq2seq_task("wmt14")
    with pytest.raises(ValueError, match="no hub source"):
        load_seq2seq(TASKS["scitldr"], "train", "hub")
    with pytest.raises(ValueError, match="split='dev'"):
        load_seq2seq(TASKS["multi30k"], "dev", root)
    with pytest.raises(FileNotFoundError, match="multi30k"):
        load_seq2seq(TASKS["multi30k"], "train", tmp_path)
    bad = make_data(tmp_path / "bad")
    (bad / "multi30k" / "val.de").write_text("one line\n")
    with pytest.raises(ValueError, match="8 lines but val.de has 1"):
        load_seq2seq(TASKS["multi30k"], "validation", bad)


def test_hub_tasks_map_their_columns(monkeypatch):
    calls = []
    rows = {"EdinburghNLP/xsum": [{"document": "doc one", "summary": "sum one", "id": "1"}],
            "wmt/wmt16": [{"translation": {"en": "a house", "ro": "o casa"}}],
            "bentrevett/multi30k": [{"en": "a dog", "de": "ein Hund"}],
            "abisee/cnn_dailymail": [{"article": "art", "highlights": "high", "id": "x"}]}

    def fake_load(path, config, split):
        calls.append((path, config, split))
        return rows[path]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    xsum = load_seq2seq(TASKS["xsum"], "validation")  # hub-only: no data_dir needed
    assert xsum.to_dict() == {"source": ["doc one"], "target": ["sum one"], "references": [["sum one"]]}
    assert load_seq2seq(TASKS["wmt16"], "test")["target"] == ["o casa"]
    assert load_seq2seq(TASKS["multi30k"], "train", "hub")["source"] == ["a dog"]
    assert load_seq2seq(TASKS["cnn_dailymail"], "train")["target"] == ["high"]
    assert calls == [("EdinburghNLP/xsum", None, "validation"), ("wmt/wmt16", "ro-en", "test"),
                     ("bentrevett/multi30k", None, "train"), ("abisee/cnn_dailymail", "3.0.0", "train")]
    assert TASKS["wmt16"].metric == "bleu" and TASKS["xsum"].metric == "rougeL"


@pytest.mark.skipif(not (SHARED / "multi30k").is_dir(), reason="../shared/data/multi30k is not present")
def test_real_multi30k_sizes():
    task = TASKS["multi30k"]
    sizes = [len(load_seq2seq(task, s, SHARED)) for s in ("train", "validation", "test")]
    assert sizes == [29000, 1014, 1000]


def test_bpe_tokenizer_round_trips_german_and_uses_bart_ids(root):
    ds = load_seq2seq(TASKS["multi30k"], "train", root)
    tok = train_bpe_tokenizer(list(ds["source"]) + list(ds["target"]), 300)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    text = "Der große Hund schläft jetzt, Ärger über ß."  # unseen characters too: byte level
    ids = tok(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids
    assert tok.decode(ids, skip_special_tokens=True).strip() == text
    assert len(tok) <= 300
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_bpe_tokenizer(["a b"], 100)


def test_bleu_against_a_hand_computed_pair():
    # all n-gram precisions 1, hypothesis 4 tokens vs reference 5: BLEU = 100 exp(1 - 5/4)
    assert bleu(["a b c d"], [["a b c d e"]])["bleu"] == pytest.approx(100 * math.exp(-0.25))
    # the closest reference length counts (5 for the second line): BP = exp(1 - 10/9)
    two = bleu(["a b c d", "x y z w v"], [["a b c d e"], ["x y z w v", "x"]])
    assert two["bleu_bp"] == pytest.approx(math.exp(1 - 10 / 9))
    assert bleu(["Ein Hund läuft ."], [["Ein Hund läuft ."]])["bleu"] == pytest.approx(100)


def test_rouge_with_stemming_and_best_reference():
    # "cats" stems to "cat"; unigrams: 2 of 3 match either reference; bigram "cat sat": 1 of 2
    scores = rouge(["the cats sat"], [["the cat ran", "a cat sat"]])
    assert scores["rouge1"] == pytest.approx(2 / 3) and scores["rougeL"] == pytest.approx(2 / 3)
    assert scores["rouge2"] == pytest.approx(0.5)
    assert rouge(["x"], [["y"]]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_metric_errors():
    with pytest.raises(ValueError, match="equally many"):
        bleu(["a"], [])
    with pytest.raises(ValueError, match="one non-empty list"):
        rouge(["a"], ["a"])
