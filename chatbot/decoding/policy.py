"""The reply policy: how a Bot turns the prompts it read into candidate replies, and which wins.

    policy = bot.policy()                       # the bot's current settings and state
    candidates = policy.candidates(rows, prompts, known)
    policy.streams_live(turns)                  # can the reply be sent as it is generated?

The sampler proposes candidates (one, or beam search's n-best). With `retrieval` on and a
greedy or beam strategy (sampling asks for variety), the replies of the known prompts most
similar to the prompt join them (`matches`, chatbot.data.memory); with `mmi` > 0, or whenever
known replies joined, the model scores every candidate as a whole (chatbot.decoding.rerank):

    score = mean log p(reply | prompt) - mmi * mean log p(reply | empty prompt)
            + retrieval_weight * similarity of the most similar known prompt whose reply it is

and the best is the reply. Otherwise candidates keep the sampler's order and scores. With
greedy search and no MMI, candidates that could not be the best are not scored, and the search
is skipped for a prompt when one of its known replies is what it would write, or when a known
reply already beats anything it could write (`_drafts`). The chat, `chatbot reply` and
`chatbot serve` all reply through this one object.

Then `decide` settles what is said (chatbot.decoding.confidence, .fallback, chatbot.data.taught):

- with `closest_first` on (the default), one of the closest known prompt's replies, the best
  scored of them (the model's reply when no known prompt is close enough to join); off, the
  best candidate whatever prompt its reply is from, except that a prompt the memory holds
  exactly always gets one of its own replies;

- a reply taught for the prompt (or a prompt at least as close as the closest known one) is
  said, whatever the model thinks of it: that is the point of teaching;
- a known reply is said as the data wrote it (case, spacing, line breaks, its whole length);
- with the `fallback` setting on, the bot says it does not know when the reply's confidence is
  below `min_confidence`, when two known prompts about as close (within `ambiguity`) have
  different replies, or when the prompt has no word the bot knows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.data.memory import Match, Memory
from chatbot.data.taught import Taught
from chatbot.decoding.confidence import (
    LOGPROB_FLOOR,
    UNCALIBRATED,
    Calibration,
    Evidence,
    unmatched,
)
from chatbot.decoding.fallback import DEFAULT, Fallback
from chatbot.decoding.rerank import mmi_scores, reply_scores
from chatbot.decoding.samplers import GreedySampler, Sampler
from chatbot.decoding.settings import DecodeConfig
from chatbot.models.base import Engine
from chatbot.text.context import context_key
from chatbot.text.vocab import Vocabulary
from chatbot.text.words import TextTokenizer

RERANKED = ("greedy", "beam")  # the strategies whose candidates the memory may join
CLOSEST = 5  # known prompts looked at for a reply's evidence (the margin needs a rival)
EXACT = 1 - 1e-9  # a similarity this high: the prompt is a known one, as the memory folds it


@dataclass(frozen=True)
class Candidate:
    text: str
    tokens: list[str]
    logprob: float  # sum of the log-probabilities of the reply's tokens and its <EOS>
    score: float  # what candidates are ranked by (see the module docstring)
    source: str = "model"  # "model": generated; "memory": the reply of a similar known prompt;
    # "taught": a reply taught for a similar prompt; "fallback": the bot said it does not know
    match: Match | None = None  # the known prompt whose reply this is, and its similarity


def words(tokens: Sequence[str]) -> list[str]:
    """The tokens that are words (a letter, digit or CJK character), not punctuation."""
    return [t for t in tokens if any(ch.isalnum() for ch in t)]


@dataclass
class ReplyPolicy:
    """A bot's reply policy under its current settings (Bot.policy makes one per call: it
    holds no state of its own but the reply tokens it has tokenized in that call)."""

    engine: Engine
    vocab: Vocabulary
    tokenizer: TextTokenizer
    memory: Memory | None  # the known pairs, for retrieval; None: generation only
    decode: DecodeConfig
    sampler: Sampler
    context_turns: int  # the turns the bot reads now (1 with the `context` setting off)
    trained_turns: int  # the turns its model was trained to read (the memory's keys)
    taught: Taught | None = None  # pairs taught in chats, searched before the known ones
    calibration: Calibration = UNCALIBRATED  # evidence -> confidence
    fallback: Fallback = DEFAULT  # what it says when it does not know
    truecase: Callable[[list[str]], list[str]] | None = None  # case for generated words
    # (chatbot.text.truecase), with a lower-casing tokenizer
    _keys: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, repr=False)

    def streams_live(self, turns: Sequence[str]) -> bool:
        """Whether the reply is what the sampler generates, token by token, as it comes: no
        beam search, no MMI reranking, no fallback (it needs the whole reply's confidence), and
        no taught or known prompt to say or add the replies of."""
        if self.decode.strategy == "beam" or self.decode.mmi > 0 or self.decode.fallback:
            return False
        if self._taught(turns, self.closest(turns)) is not None:
            return False  # a taught reply is said, not what is generated
        return not self.matches(turns)

    def candidates(self, rows: list[int], prompts: dict[int, list[int]],
                  known: dict[int, dict]) -> dict[int, list[Candidate]]:
        """Each row's candidates: the sampler's (or the known reply it would write), then, with
        known replies or MMI, the pool ranked by the model's scores (see the module doc)."""
        scored: dict[int, dict] = {}  # row -> {reply tokens: log p(reply | prompt)}
        generated: dict[int, list[Candidate]] = {}
        if known and not self.decode.mmi and isinstance(self.sampler, GreedySampler):
            scored, generated = self._drafts(rows, prompts, known)
        searched = [i for i in rows if i not in generated]
        found = self.sampler(
            self.engine, [prompts[i] for i in searched], self.vocab,
            nbest=self.decode.nbest if self.decode.strategy == "beam" else 1,
        ) if searched else []
        generated |= {i: [self._candidate(c) for c in cands] for i, cands in zip(searched, found)}
        reranked = [i for i in rows if i in known or self.decode.mmi]
        if reranked:
            pools = [self._pool(generated[i], known.get(i, {}), scored.get(i)) for i in reranked]
            generated |= dict(zip(reranked, self._rank(
                pools, [prompts[i] for i in reranked], [scored.get(i, {}) for i in reranked])))
        return generated

    def _drafts(self, rows: list[int], prompts: dict[int, list[int]], known: dict[int, dict]
                ) -> tuple[dict[int, dict], dict[int, list[Candidate]]]:
        """The known replies scored best first, only as far as they could win, and greedy
        decoding checked against them as drafts (speculative decoding).

        Bounds (branch and bound): a reply's score is its mean log p, at most 0, plus
        retrieval_weight * similarity, so a known reply scores at most that bonus, and the
        model's own reply, unless it is a known reply, at most 0. So each row's known replies
        of its most similar known prompt are scored first; then, in one more pass, those of
        the others whose bonus alone could beat the best score so far. The rest could not
        win and are left out. A row whose best known reply scores above 0 needs no search:
        nothing else the model could write would win.

        The teacher-forced pass that scores a known reply also tells, at each position,
        whether its token was the model's most probable one of those a search may write. A
        known reply for which it always was, <EOS> included, and which no rule of the search
        bans (GreedySampler.writes), is the greedy reply: that row's search is skipped too,
        and the reply keeps its source, "model". (The scores come from one batched pass, the
        search's from steps: they agree to float32 rounding, which could only matter where
        two tokens tie.)

        Returns the scores, {row: {reply tokens: log p}}, and the generated candidates of the
        rows that need no search: [the greedy reply], or [] where a known reply wins anyway.
        """
        weight = self.decode.retrieval_weight
        waiting = {i: sorted(((key, match.similarity) for key, match in known[i].items()
                              if not self.vocab.unknown(key)),  # the known replies _pool keeps
                             key=lambda pair: -pair[1])
                   for i in rows if i in known}
        scored: dict[int, dict] = {i: {} for i, pairs in waiting.items() if pairs}
        best: dict[int, float] = {}  # row -> the best score of its known replies so far
        generated: dict[int, list[Candidate]] = {}
        first = [(i, key) for i, pairs in waiting.items() for key, similarity in pairs
                 if similarity == pairs[0][1]]
        for batch in (first, None):
            if batch is None:  # the rest, where its bonus alone could beat the best so far
                batch = [(i, key) for i, pairs in waiting.items() for key, similarity in pairs
                         if key not in scored[i] and weight * similarity >= best[i]]
            if not batch:
                continue
            ids = [self.vocab.encode(key) for _, key in batch]
            logprobs, hits = reply_scores(self.engine, [prompts[i] for i, _ in batch], ids,
                                          self.vocab.eos_id,
                                          never=self.sampler.never(self.vocab))
            for (i, key), reply, logprob, hit in zip(batch, ids, logprobs.tolist(),
                                                     hits.tolist()):
                scored[i][key] = logprob
                score = logprob / (len(key) + 1) + weight * known[i][key].similarity
                best[i] = max(best.get(i, -np.inf), score)  # (as _rank and _ranked score it)
                if hit == len(reply) + 1 and self.sampler.writes(reply, self.vocab):
                    generated[i] = [Candidate(self._text(key), list(key), logprob, logprob)]
        # A known reply max_len tokens long may be what a search writes, stopped by max_len
        # before its <EOS>, which hits cannot tell: such a row is searched, so that its reply
        # keeps its source.
        capped = {i for i, keys in scored.items() if any(len(key) >= self.sampler.max_len
                                                         for key in keys)}
        generated |= {i: [] for i, score in best.items()
                      if score > 0 and i not in generated and i not in capped}
        return scored, generated

    def closest(self, turns: Sequence[str]) -> list[Match]:
        """The known prompts closest to a prompt's `turns`, best first, whatever the settings
        (a reply's evidence); [] without a memory, or with the context setting off (the
        memory's keys hold turns the bot is not reading)."""
        if not self.memory or self.context_turns != self.trained_turns:
            return []
        return self.memory.search(context_key(turns, self.context_turns),
                                  max(self.decode.retrieval_k, CLOSEST))

    def matches(self, turns: Sequence[str], closest: list[Match] | None = None) -> list[Match]:
        """The known prompts whose replies join the candidates for a prompt's `turns` (oldest
        first, as Bot.clip cut them), best first; [] when retrieval does not apply to the
        current settings. `closest`: the prompt's closest(), if it was already searched."""
        # Sampling asks for variety: a known reply with its bonus would win nearly every time.
        if not (self.decode.retrieval and self.memory) or self.decode.strategy not in RERANKED:
            return []
        closest = self.closest(turns) if closest is None else closest
        return [m for m in closest[: self.decode.retrieval_k]
                if m.similarity >= self.decode.retrieval_min_similarity]

    # -- what is said -------------------------------------------------------------------------

    def decide(self, turns: Sequence[str], tokens: list[str], candidates: list[Candidate],
               closest: list[Match]) -> tuple[list[Candidate], Evidence | None, float]:
        """The candidates with what is said first (a taught reply, a known one as written, or
        the fallback; see the module doc), the evidence of the best candidate, and its
        confidence (for the fallback: of the reply it held back; for a taught reply: the
        similarity of its prompt)."""
        taught = self._taught(turns, closest)
        if taught is not None:
            reply = taught.replies[0]
            said = Candidate(reply, self.tokenizer.tokenize(reply), 0.0, 0.0, "taught", taught)
            return [said, *candidates], None, taught.similarity
        if not candidates:
            return [], None, 0.0
        candidates = self._own_first(candidates, closest)
        best = self.as_written(candidates[0], closest)
        candidates = [best, *candidates[1:]]
        evidence = self.evidence(best, tokens, closest)
        # Without a memory or a calibration, nothing but the model judges: its mean token
        # probability (a run trained before either existed).
        confidence = (self.calibration(evidence) if self.memory or self.calibration.calibrated
                      else math.exp(evidence.logprob))
        if self.decode.fallback and self.unsure(confidence, tokens, closest):
            text = self.fallback.say(turns[-1])
            said = Candidate(text, self.tokenizer.tokenize(text), 0.0, 0.0, "fallback")
            return [said, *candidates], evidence, confidence
        return candidates, evidence, confidence

    def unsure(self, confidence: float, tokens: list[str], closest: list[Match]) -> bool:
        """Whether the fallback is said instead of a reply of this `confidence` (with the
        `fallback` setting on): too low a confidence, an ambiguous pair of closest known
        prompts, or no known word in a prompt that is not itself a known one."""
        exact = bool(closest) and closest[0].similarity >= EXACT
        return (confidence < self.decode.min_confidence or self.ambiguous(closest)
                or (self.nothing_known(tokens) and not exact))

    def _taught(self, turns: Sequence[str], closest: list[Match]) -> Match | None:
        """The taught prompt that answers `turns`: close enough for retrieval, and at least as
        close as the closest known prompt."""
        if not self.taught or not turns:
            return None
        found = self.taught.search(turns[-1], self.decode.retrieval_min_similarity)
        if found is None or (closest and found.similarity < closest[0].similarity - 1e-9):
            return None
        return found

    def _own_first(self, candidates: list[Candidate], closest: list[Match]) -> list[Candidate]:
        """With retrieval on and a known prompt close enough to join (retrieval_min_similarity):
        the best scored of the closest known prompt's own replies first, as ChatterBot answers
        the closest known statement (with `closest_first` off, only for a prompt the memory
        holds exactly, as it folds case and spacing). The model still chooses among them; a
        reply it cannot write (a word outside its vocabulary) is said when no other of them
        is a candidate."""
        if not closest or not self.matches([], closest):
            return candidates
        if not self.decode.closest_first and closest[0].similarity < EXACT:
            return candidates
        first = [m for m in closest if m.similarity >= closest[0].similarity - 1e-9]
        own = {self.reply_key(text): match for match in first for text in match.replies}
        best = next((c for c in candidates if tuple(c.tokens) in own), None)
        if best is None:  # the model cannot score it: its evidence is the lowest log-prob
            key, match = next(iter(own.items()))
            floor = LOGPROB_FLOOR * (len(key) + 1)
            best = Candidate(self._text(key), list(key), floor, floor, "memory", match)
        return [best, *(c for c in candidates if c is not best)]

    def as_written(self, candidate: Candidate, closest: Sequence[Match] = ()) -> Candidate:
        """A candidate that is a known reply (of its match, or of one of the `closest` known
        prompts), with the text the data wrote (whole, with its case, spacing and line
        breaks), not its tokens detokenized."""
        tokens = tuple(candidate.tokens)
        for match in ([candidate.match] if candidate.match else []) + list(closest):
            for text in match.replies:
                if self.reply_key(text) == tokens:
                    return dataclasses.replace(candidate, text=text)
        return candidate

    def evidence(self, best: Candidate, tokens: list[str], closest: list[Match]) -> Evidence:
        """What the confidence of `best` is computed from (chatbot.decoding.confidence)."""
        top = closest[0] if closest else None
        rival = self._rival(closest)
        similarity = top.similarity if top else 0.0
        typed = words(tokens)
        extra, missing = (unmatched(typed, words(self.tokenizer.tokenize(top.prompt)))
                          if top else (len(typed), 0))
        return Evidence(
            similarity=similarity,
            margin=similarity - (rival.similarity if rival else 0.0),
            logprob=best.logprob / (len(best.tokens) + 1),
            unknown=(sum(t not in self.vocab.index for t in tokens) / len(tokens)
                     if tokens else 1.0),
            known=top is not None and (best.text in top.replies
                                       or any(self.reply_key(r) == tuple(best.tokens)
                                              for r in top.replies)),
            extra=extra, missing=missing,
        )

    @staticmethod
    def _rival(closest: list[Match]) -> Match | None:
        """The closest known prompt after the first that shares none of its replies."""
        if not closest:
            return None
        replies = set(closest[0].replies)
        return next((m for m in closest[1:] if not replies & set(m.replies)), None)

    def ambiguous(self, closest: list[Match]) -> bool:
        """Rasa's ambiguity rule: the closest known prompt is not the prompt itself, and
        another with other replies is within `ambiguity` of it."""
        rival = self._rival(closest)
        return (rival is not None and closest[0].similarity < EXACT
                and closest[0].similarity - rival.similarity < self.decode.ambiguity)

    def nothing_known(self, tokens: list[str]) -> bool:
        """Whether the prompt has words and none of them is in the vocabulary."""
        said = words(tokens)
        return bool(said) and not any(t in self.vocab.index for t in said)

    def reply_key(self, text: str) -> tuple[str, ...]:
        """A known reply as candidates hold it: tokens, cut to max_reply_len (each text
        tokenized once per policy: retrieval, decide and the evidence all ask)."""
        key = self._keys.get(text)
        if key is None:
            key = self._keys[text] = tuple(
                self.tokenizer.tokenize(text)[: self.decode.max_reply_len])
        return key

    def known_replies(self, matches: list[Match]) -> dict[tuple[str, ...], Match]:
        """The distinct replies of `matches` as candidates hold them (tokens, cut to
        max_reply_len), each with the best match that has it (matches come best first)."""
        known: dict[tuple[str, ...], Match] = {}
        for match in matches:
            for text in match.replies:
                known.setdefault(self.reply_key(text), match)
        return known

    def _pool(self, generated: list[Candidate], known: dict[tuple[str, ...], Match],
              scored: dict | None = None) -> dict[tuple[str, ...], tuple[Candidate, float]]:
        """The generated candidates and the `known` replies, each distinct reply once, with the
        similarity of its best known prompt (0 for a reply no known prompt has). With
        `scored` (see _drafts), a known reply not in it could not win and is left out, unless
        it was generated too."""
        # An empty reply is no answer: it competes only when there is nothing else.
        pool = {tuple(c.tokens): (c, 0.0) for c in generated if c.tokens or not known}
        for key, match in known.items():
            if key not in pool and self.vocab.unknown(key):
                continue  # a reply the model cannot write (min_count or max_vocab dropped it)
            if key not in pool and scored is not None and key not in scored:
                continue  # it could not win (see _drafts)
            candidate, similarity = pool.get(key, (None, 0.0))
            if similarity < match.similarity:  # generated too: the source stays "model"
                pool[key] = (dataclasses.replace(candidate, match=match) if candidate else
                             Candidate(self._text(key), list(key), 0.0, 0.0, "memory", match),
                             match.similarity)
        return pool

    def _rank(self, pools: list[dict], prompts: list[list[int]], scored: list[dict]
              ) -> list[list[Candidate]]:
        """Every pool's candidates scored by the model (see the module doc), best first; all
        pools' rows not yet `scored` ({reply tokens: log p}, without MMI) in one batched pass."""
        rows = [(p, key) for p, pool in enumerate(pools) for key in pool if key not in scored[p]]
        logprobs, scores = mmi_scores(self.engine, [prompts[p] for p, _ in rows],
                                      [self.vocab.encode(key) for _, key in rows],
                                      self.vocab.eos_id, self.decode.mmi) if rows else ([], [])
        found = [{key: (logprob, logprob / (len(key) + 1)) for key, logprob in known.items()}
                 for known in scored]  # mmi_scores' score without MMI: per scored token
        for (p, key), logprob, score in zip(rows, logprobs, scores):
            found[p][key] = (float(logprob), float(score))
        return [self._ranked(pool, [found[p][key] for key in pool]) for p, pool in enumerate(pools)]

    def _ranked(self, pool: dict, scores: list[tuple[float, float]]) -> list[Candidate]:
        """A pool's candidates with the model's (log-probability, score) of each, in the
        pool's order, and the retrieval bonus: best first."""
        ranked = [dataclasses.replace(candidate, logprob=logprob,
                                      score=score + self.decode.retrieval_weight * similarity)
                  for (candidate, similarity), (logprob, score) in zip(pool.values(), scores)]
        return sorted(ranked, key=lambda c: c.score, reverse=True)

    def _candidate(self, found) -> Candidate:
        tokens = self.vocab.decode(found.tokens)
        return Candidate(self._text(tokens), tokens, found.logprob, found.score)

    def _text(self, tokens: Sequence[str]) -> str:
        """Generated tokens as text: detokenized, with case where the tokenizer dropped it."""
        tokens = list(tokens)
        return self.tokenizer.detokenize(self.truecase(tokens) if self.truecase else tokens)
