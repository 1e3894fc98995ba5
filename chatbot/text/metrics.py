"""Text metrics of replies: BLEU and chrF against references, distinct-n, the most common reply.

Pure functions over token lists and texts (chatbot.evaluate reports them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from chatbot.errors import ChatbotError
from chatbot.text.vocab import UNK


def distinct_n(replies: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams / all n-grams, counted within each reply (none spans two); 0 if none."""
    grams = [tuple(r[i: i + n]) for r in replies for i in range(len(r) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def most_common_reply(replies: Sequence[str]) -> str:
    """The most frequent reply (ties: the first seen); "" when there are none."""
    return Counter(replies).most_common(1)[0][0] if replies else ""


def same_reply_share(replies: Sequence[str]) -> float:
    """The share of replies equal to the most common one; 0 when there are none."""
    return Counter(replies).most_common(1)[0][1] / len(replies) if replies else 0.0


def unk_rate(replies: Sequence[Sequence[str]]) -> float:
    """The share of generated tokens that are <UNK>; 0 when no token was generated."""
    total = sum(len(r) for r in replies)
    return sum(r.count(UNK) for r in replies) / total if total else 0.0


def empty_reply_share(replies: Sequence[str]) -> float:
    return sum(not r for r in replies) / len(replies) if replies else 0.0


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]
              ) -> tuple[float, float]:
    """Corpus BLEU and chrF (0-100, sacrebleu) of hypotheses[i] against all of references[i].

    sacrebleu takes references as streams (stream k holds the k-th reference of every
    hypothesis); a hypothesis with fewer references has `None` in the streams it lacks, which
    sacrebleu documents as "variable number of references" and skips. (Repeating a reference
    would give the same scores: both metrics take the best match over references.)

    BLEU tokenizes with sacrebleu's "zh" tokenizer: each Chinese character is a word and other
    text is tokenized as by the default "13a", so English scores equal standard sacreBLEU while
    Chinese replies are not scored as one long word. `effective_order` leaves out n-gram orders
    that no hypothesis is long enough to have, so a corpus of short replies is not scored 0.
    """
    from sacrebleu.metrics import BLEU, CHRF  # imported here: training needs only answer_rate

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        raise ChatbotError("no replies to score")
    if any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    width = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    bleu = BLEU(tokenize="zh", effective_order=True).corpus_score(list(hypotheses), streams)
    chrf = CHRF().corpus_score(list(hypotheses), streams)
    return float(bleu.score), float(chrf.score)
