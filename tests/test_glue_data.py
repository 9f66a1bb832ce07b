"""GLUE loading from local TSV files: every task's layout, label mapping and errors; the real
files of ../shared/data when present."""
import collections

import pytest

from sj_spikelm.data.glue import glue_task, load_glue, read_glue_tsv


def write(path, lines, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_task_names():
    for name in ("sst2", "SST-2", "glue/sst2", "GLUE/SST2"):
        assert glue_task(name).name == "sst2"
    assert glue_task("STS-B").name == "stsb" and glue_task("sts-b").num_labels == 1
    assert glue_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert [glue_task("mnli").column(s) for s in glue_task("mnli").eval_splits] == ["MNLI-m", "MNLI-mm"]
    with pytest.raises(ValueError, match="task='wnli2'.*accepted: cola, sst2"):
        glue_task("wnli2")


def test_cola_has_no_header(tmp_path):
    f = write(tmp_path / "CoLA/dev.tsv", ["gj04\t1\t\tThe sailors rode the breeze.",
                                          "gj04\t0\t*\tThe more he eat."])
    cols = read_glue_tsv(f, glue_task("cola"))
    assert cols == {"sentence": ["The sailors rode the breeze.", "The more he eat."],
                    "label": [1, 0], "idx": [0, 1]}


def test_mrpc_bom_header_and_unbalanced_quotes(tmp_path):
    f = write(tmp_path / "MRPC/dev.tsv", [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t1355540\t1355592\tHe said "no.\t"The pie business does not fit.',
        "0\t1\t2\tA\tB"], bom=True)
    cols = read_glue_tsv(f, glue_task("mrpc"))
    assert cols["sentence1"] == ['He said "no.', "A"]
    assert cols["sentence2"] == ['"The pie business does not fit.', "B"]
    assert cols["label"] == [1, 0]


@pytest.mark.parametrize("header", [
    "index\tgenre\tfilename\tyear\told_index\tsentence1\tsentence2\tscore",  # STS Benchmark files
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"])  # GLUE
def test_stsb_reads_columns_by_name(tmp_path, header):
    extra = "\ts1\ts2" if "source1" in header else ""
    row = f"0\tmain-captions\tMSRvid\t2012test\t0000{extra}\tA man.\tA guy.\t4.750"
    f = write(tmp_path / "STS-B/dev.tsv", [header, row])
    cols = read_glue_tsv(f, glue_task("stsb"))
    assert cols["sentence1"] == ["A man."] and cols["sentence2"] == ["A guy."] and cols["label"] == [4.75]


def test_string_labels_become_hub_ids(tmp_path):
    rte = write(tmp_path / "RTE/dev.tsv", ["index\tsentence1\tsentence2\tlabel",
                                           "0\tA\tB\tnot_entailment", "1\tC\tD\tentailment"])
    assert read_glue_tsv(rte, glue_task("rte"))["label"] == [1, 0]
    header = "\t".join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                        "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                        "sentence2", "label1", "gold_label"])
    mnli = tmp_path / "MNLI"
    for split, gold in (("dev_matched", "neutral"), ("dev_mismatched", "contradiction")):
        row = ["0", "1", "2", "g", "", "", "", "", "P", "H", gold, gold]
        write(mnli / f"{split}.tsv", [header, "\t".join(row)])
    m = load_glue("mnli", "validation_matched", str(tmp_path))
    assert m[0] == {"premise": "P", "hypothesis": "H", "label": 1, "idx": 0}
    assert load_glue("mnli", "validation_mismatched", str(tmp_path))["label"] == [2]


def test_qqp_skips_malformed_rows_but_others_raise(tmp_path):
    qqp = write(tmp_path / "QQP/train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                             "0\t1\t2\tWhy?\tHow?\t0", "1\t3\t4\tbroken row",
                                             "2\t5\t6\tA?\tB?\t1"])
    assert read_glue_tsv(qqp, glue_task("qqp"))["label"] == [0, 1]
    rte = write(tmp_path / "RTE/train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA\tentailment"])
    with pytest.raises(ValueError, match=r"train.tsv:2: 3 fields, expected 4"):
        read_glue_tsv(rte, glue_task("rte"))


def test_bad_labels_and_missing_columns(tmp_path):
    f = write(tmp_path / "RTE/dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA\tB\tmaybe"])
    with pytest.raises(ValueError, match=r"dev.tsv:2: label 'maybe'.*entailment"):
        read_glue_tsv(f, glue_task("rte"))
    f = write(tmp_path / "SST-2/dev.tsv", ["sentence\tlabel", "ok\t2"])
    with pytest.raises(ValueError, match="label 2 outside 0..1"):
        read_glue_tsv(f, glue_task("sst2"))
    f = write(tmp_path / "QNLI/dev.tsv", ["index\tquestion\ttext\tlabel", "0\tq\ts\tentailment"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['sentence'\]"):
        read_glue_tsv(f, glue_task("qnli"))


def test_load_glue_finds_the_task_folder(tmp_path):
    write(tmp_path / "glue/SST-2/train.tsv", ["sentence\tlabel", "fine film\t1"])
    for root in (tmp_path, tmp_path / "glue", tmp_path / "glue" / "SST-2"):
        ds = load_glue("sst2", "train", str(root))
        assert ds[0] == {"sentence": "fine film", "label": 1, "idx": 0}
    with pytest.raises(FileNotFoundError, match="holds no CoLA/"):
        load_glue("cola", "train", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dev.tsv not found"):
        load_glue("sst2", "validation", str(tmp_path))
    with pytest.raises(ValueError, match="split='dev'"):
        load_glue("sst2", "dev", str(tmp_path))


# Official split sizes and dev label counts of GLUE (CoLA 721 acceptable / 322, SST-2 444 / 428
# positive / negative, MRPC 279 / 129 paraphrase, RTE 146 entailment / 131).
REAL = {"cola": (8551, 1043, {1: 721, 0: 322}), "sst2": (67349, 872, {1: 444, 0: 428}),
        "mrpc": (3668, 408, {1: 279, 0: 129}), "rte": (2490, 277, {0: 146, 1: 131}),
        "stsb": (5749, 1500, None)}


@pytest.mark.parametrize("task", sorted(REAL))
def test_real_glue_files(shared_data, task):
    n_train, n_dev, counts = REAL[task]
    train, dev = load_glue(task, "train"), load_glue(task, "validation")
    assert (len(train), len(dev)) == (n_train, n_dev)
    if counts:
        assert dict(collections.Counter(dev["label"])) == counts
    else:
        assert min(dev["label"]) == 0.0 and max(dev["label"]) == 5.0
    for column in glue_task(task).text_columns:
        assert all(isinstance(s, str) and s.strip() for s in dev[column])


def test_real_pair_tokenisation(shared_data, minilm_dir):
    from transformers import AutoTokenizer

    from sj_spikelm.train.finetune import tokenize

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    task = glue_task("mrpc")
    ds = tokenize(load_glue(task, "validation").select(range(4)), task, tok, max_length=16)
    assert ds.column_names == ["labels", "input_ids", "token_type_ids", "attention_mask"]
    ids = ds[0]["input_ids"]
    assert len(ids) <= 16 and ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2
