"""GLUE metrics as the SpikeLM paper reports them, computed with scikit-learn and scipy.

| task | reported (``main``) | also returned |
|---|---|---|
| CoLA | Matthews correlation ``mcc`` | ``accuracy`` |
| STS-B | Spearman ``spearman`` | ``pearson`` |
| MRPC, QQP | ``f1`` of the positive class (label 1) | ``accuracy`` |
| SST-2, MNLI, QNLI, RTE | ``accuracy`` | |

Values are fractions (MCC and correlations in [-1, 1]); tables multiply by 100.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

MAIN_METRIC = {"cola": "mcc", "stsb": "spearman", "mrpc": "f1", "qqp": "f1",
               "sst2": "accuracy", "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy"}


def glue_metrics(task: str, predictions: Sequence, labels: Sequence) -> Dict[str, float]:
    """All metrics of ``task`` (a key of :data:`MAIN_METRIC`) for class ids (or, for
    ``stsb``, real-valued scores) ``predictions`` against ``labels``."""
    if task not in MAIN_METRIC:
        raise ValueError(f"task={task!r}; accepted: {', '.join(MAIN_METRIC)}")
    preds, gold = np.asarray(predictions), np.asarray(labels)
    if preds.shape != gold.shape or preds.ndim != 1 or len(preds) == 0:
        raise ValueError(f"predictions {preds.shape} and labels {gold.shape} must be equal-length "
                         "non-empty 1-D sequences")
    if task == "stsb":
        preds, gold = preds.astype(np.float64), gold.astype(np.float64)
        return {"spearman": float(spearmanr(preds, gold)[0]), "pearson": float(pearsonr(preds, gold)[0])}
    out = {"accuracy": float(accuracy_score(gold, preds))}
    if task == "cola":
        out["mcc"] = float(matthews_corrcoef(gold, preds))
    elif task in ("mrpc", "qqp"):
        out["f1"] = float(f1_score(gold, preds, pos_label=1, average="binary", zero_division=0))
    return out
