"""GLUE metrics against hand-computed values."""
import math

import pytest

from sj_spikelm.data.glue import TASKS
from sj_spikelm.metrics import MAIN_METRIC, glue_metrics

# TP = 2 (0, 4), FP = 1 (1), TN = 1 (2), FN = 1 (3)
PREDS, GOLD = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]


def test_cola_mcc_by_hand():
    m = glue_metrics("cola", PREDS, GOLD)
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2)
    assert m["mcc"] == pytest.approx(1 / 6)
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_mrpc_qqp_f1_of_positive_class():
    for task in ("mrpc", "qqp"):
        m = glue_metrics(task, PREDS, GOLD)
        assert m["f1"] == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
        assert m["accuracy"] == pytest.approx(3 / 5)
    # all negative predictions: F1 is 0, not an error
    assert glue_metrics("mrpc", [0, 0], [1, 0])["f1"] == 0.0


def test_stsb_spearman_and_pearson_by_hand():
    m = glue_metrics("stsb", [1.0, 2.0, 3.0, 10.0], [1.0, 3.0, 2.0, 4.0])
    # ranks [1,2,3,4] vs [1,3,2,4]: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    assert m["spearman"] == pytest.approx(0.8)
    # centred x = [-3,-2,-1,6], y = [-1.5,.5,-.5,1.5]: 13 / sqrt(50 * 5)
    assert m["pearson"] == pytest.approx(13 / math.sqrt(250))


def test_accuracy_tasks():
    for task in ("sst2", "mnli", "qnli", "rte"):
        assert glue_metrics(task, [0, 2, 1, 1], [0, 2, 2, 1]) == {"accuracy": 0.75}


def test_main_metric_per_task_matches_the_paper():
    assert {t: TASKS[t].metric for t in TASKS} == {
        "cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "qqp": "f1",
        "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy"}
    assert set(MAIN_METRIC) == set(TASKS)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="task='wnli'"):
        glue_metrics("wnli", [1], [1])
    with pytest.raises(ValueError, match="equal-length"):
        glue_metrics("sst2", [1, 0], [1])
