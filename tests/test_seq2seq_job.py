"""The seq2seq job end to end on tiny files: a trained tokenizer saved with the model, BLEU and
ROUGE from generate() (checked by regenerating with the saved best model), firing rates of the
spiking model, resuming a finished run, a spiking student initialised from the ANN twin, errors."""
import json

import pytest
import torch
from seq2seq_tiny import args, make_data

from sj_spikelm.generation_metrics import bleu
from sj_spikelm.train import seq2seq


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("s2s"))


def read(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ann_run(root, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "ann"
    seq2seq.main(args(root, run))
    return run


def test_translation_job_reports_the_bleu_of_its_best_model(ann_run, root):
    metrics = read(ann_run)
    assert metrics["job"] == "seq2seq" and metrics["metric"] == "bleu" and metrics["num_beams"] == 4
    assert metrics["model"] == {"class": "SpikeLMForConditionalGeneration", "model_type": "spikelm_seq2seq",
                                "neuron": "ann", "T": 1}
    assert set(metrics["scores"]) == {"BLEU"} and metrics["eval_examples"] == 8
    assert metrics["energy_mj_per_sequence"] > 0  # the ANN twin: all MACs
    # regenerate with the saved best model and tokenizer: the same BLEU
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    best = ann_run / "best"
    tok, model = AutoTokenizer.from_pretrained(best), AutoModelForSeq2SeqLM.from_pretrained(best).eval()
    assert (ann_run / "tokenizer" / "tokenizer.json").is_file() and len(tok) <= 300
    src = (root / "multi30k" / "val.en").read_text(encoding="utf-8").splitlines()
    ref = (root / "multi30k" / "val.de").read_text(encoding="utf-8").splitlines()
    batch = tok(src, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, num_beams=4, max_length=12)
    texts = [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]
    assert metrics["scores"]["BLEU"] == pytest.approx(bleu(texts, [[r] for r in ref])["bleu"])
    # a second invocation returns the finished result
    assert seq2seq.run(*seq2seq.parse_args(seq2seq.ARGUMENTS, args(root, ann_run))) == metrics


@pytest.fixture(scope="module")
def student_run(ann_run, root, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "student"
    seq2seq.main(args(root, run, task="aeslc", init_from=str(ann_run / "best"), model_config="{}",
                      neuron="elastic_bi(k=2)", T=2, max_source_length=16))
    return run


def test_spiking_student_from_the_ann_twin_on_summarization(student_run, ann_run):
    run = student_run
    metrics = read(run)
    assert metrics["metric"] == "rougeL" and set(metrics["scores"]) == {"ROUGE-1", "ROUGE-2", "ROUGE-L"}
    assert metrics["model"]["neuron"] == "elastic_bi" and metrics["model"]["T"] == 2
    assert 0 < metrics["firing_rate"] < 1
    assert any(".encoder_attn.k_proj.neuron" in name for name in metrics["best"]["firing_rates"])
    assert set(metrics["firing_rate_per_layer"]) == {"0", "decoder.0"}
    assert metrics["energy_mj_per_sequence"] > 0
    assert json.loads((run / "best" / "config.json").read_text())["vocab_size"] == \
        json.loads((ann_run / "best" / "config.json").read_text())["vocab_size"]


def test_job_errors_name_the_argument(student_run, root, tmp_path):
    with pytest.raises(ValueError, match="model='spikelm'"):
        seq2seq.main(args(root, tmp_path / "a", model="bert"))
    student = str(student_run / "best")  # a trained spiking model keeps its neuron and T
    with pytest.raises(ValueError, match="T=3 differs"):
        seq2seq.main(args(root, tmp_path / "b", init_from=student, neuron="elastic_bi(k=2)", T=3,
                          model_config="{}"))
    with pytest.raises(ValueError, match="differs from the spiking checkpoint's 'elastic_bi'"):
        seq2seq.main(args(root, tmp_path / "b", init_from=student, neuron="ste_lif", T=2, model_config="{}"))
    with pytest.raises(ValueError, match="eval_split"):
        seq2seq.main(args(root, tmp_path / "c", eval_split="dev"))
    with pytest.raises(ValueError, match="task="):
        seq2seq.main(args(root, tmp_path / "d", task="wmt14"))
    with pytest.raises(ValueError, match="model='bert'"):  # a grid's check, before anything loads
        seq2seq.check_config({"model": "bert", "task": "multi30k"})
    with pytest.raises(ValueError, match="unknown neuron 'nope'"):
        seq2seq.check_config({"neuron": "nope"})
    seq2seq.check_config({"neuron": "lif", "T": 4, "task": "aeslc"})
