"""Metrics of generated text, from the standard packages: detokenised corpus BLEU (sacreBLEU,
default ``13a`` tokenisation, as the WMT tables report it) and ROUGE-1/2/L F-measures
(``rouge-score`` with Porter stemming). Values are on sacreBLEU's 0-100 scale for BLEU and
fractions for ROUGE (tables multiply by 100)."""
from __future__ import annotations

from typing import Dict, List, Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _check(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"{len(predictions)} predictions and {len(references)} reference lists: "
                         "need equally many, at least one")
    if any(isinstance(r, str) or not r for r in references):
        raise ValueError("references must be one non-empty list of reference strings per prediction")


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> Dict[str, float]:
    """Corpus BLEU of detokenised ``predictions`` against ``references`` (one list of reference
    strings per prediction, any number each):
    ``BLEU = BP exp(mean_n log p_n)``, ``n = 1..4``, ``BP = min(1, exp(1 - r / c))``
    (Papineni et al., 2002). Returns ``{"bleu": 0-100, "bleu_bp": BP}``."""
    import sacrebleu

    _check(predictions, references)
    width = max(len(r) for r in references)
    streams: List[List[str]] = [[r[i] if i < len(r) else None for r in references] for i in range(width)]
    score = sacrebleu.corpus_bleu(list(predictions), streams)
    return {"bleu": float(score.score), "bleu_bp": float(score.bp)}


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> Dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Lin, 2004) with stemming; with several
    references an example scores its best reference per metric (as SciTLDR reports).
    Returns ``{"rouge1", "rouge2", "rougeL"}`` as fractions."""
    from rouge_score import rouge_scorer

    _check(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, refs in zip(predictions, references):
        scores = [scorer.score(ref, prediction) for ref in refs]
        for key in ROUGE_TYPES:
            totals[key] += max(s[key].fmeasure for s in scores)
    return {key: total / len(predictions) for key, total in totals.items()}
