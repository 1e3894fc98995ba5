"""Load a run directory and reply to text: the API behind `chat`, `reply` and your own scripts.

    from chatbot.decoding.bot import Bot
    bot = Bot.load("models/default")
    print(bot.reply("hello").text)
    bot.set("beam", "5")              # decoding settings can change at any time
    print(bot.reply("hello").candidates)
    bot.reply([{"role": "user", "content": "I have a dog."},      # a conversation: a model
               {"role": "assistant", "content": "What is its name?"},  # trained with
               {"role": "user", "content": "Rex."}])                  # --context-turns N > 1
                                                                      # reads its last N turns

Decoding runs in NumPy from the saved weights, so loading takes well under a second and needs
no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatbot.config import RunConfig
from chatbot.data.dialogue import Message, parse_messages
from chatbot.data.memory import Match, Memory
from chatbot.decoding.rerank import mmi_scores, reply_scores
from chatbot.decoding.samplers import GreedySampler, Sampler, get_sampler
from chatbot.decoding.settings import DecodeConfig, check_decode, parse_setting
from chatbot.decoding.spelling import Speller
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS, arch_module
from chatbot.models.base import Engine, Weights, check_weights
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import CONFIG, MEMORY, MODEL, VOCAB, check_run_dir
from chatbot.text.context import context_key, context_tokens, prompt_budget
from chatbot.text.tokenizer import load_tokenizer
from chatbot.text.vocab import EOS, SEP, SOS, TURN, Vocabulary
from chatbot.text.words import TextTokenizer, Tokenizer, clip

RERANKED = ("greedy", "beam")  # the strategies whose candidates the memory may join
# What a bot answers: a prompt, or a conversation whose last turn is the user's (Message
# objects, {"role", "content"} dicts as chat JSONL holds them, or the turns' texts in order).
Prompt = str | Sequence[Message | dict | str]


@dataclass(frozen=True)
class Candidate:
    text: str
    tokens: list[str]
    logprob: float  # sum of the log-probabilities of the reply's tokens and its <EOS>
    score: float  # what candidates are ranked by (see Bot.reply_batch)
    source: str = "model"  # "model": generated; "memory": the reply of a similar known prompt
    match: Match | None = None  # the known prompt whose reply this is, and its similarity


@dataclass(frozen=True)
class Reply:
    text: str  # the best reply, detokenized
    tokens: list[str]  # its tokens
    unknown: list[str]  # prompt tokens not in the vocabulary (read as <UNK>); only words can
    # be: every piece of a sentencepiece model, bytes included, is in its run's vocabulary
    candidates: list[Candidate]  # best first; more than one with beam search and nbest > 1,
    # or when the memory added known replies
    matches: list[Match] = dataclasses.field(default_factory=list)  # similar known prompts
    read: list[str] = dataclasses.field(default_factory=list)  # the tokens the model read:
    # the prompt, with its context for a context model (chatbot.text.context)
    corrected: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # unknown
    # words read as the known word one typo away, (typed, read as): the `spelling` setting

    @property
    def source(self) -> str:
        return self.candidates[0].source if self.candidates else "model"


@dataclass(frozen=True)
class AttentionMap:
    """Where a model looked while it wrote a reply (`Bot.attention`); every row sums to 1.

    The decoder's attention over the prompt (arch attention): `weights` is (len(reply),
    len(prompt)), a row per reply token and the final <EOS>, a column per prompt token.
    Self-attention (arch transformer): `weights` is (layers, heads, len(tokens), len(tokens)),
    every head's softmax(QKᵀ/√d_k) over the sequence the model read, a row per query position
    and a column per key position; causal, so above the diagonal it is 0.
    """

    prompt: list[str]  # prompt tokens
    reply: list[str]  # reply tokens and <EOS>
    weights: np.ndarray
    tokens: list[str] = dataclasses.field(default_factory=list)  # self-attention only:
    # `<SOS> prompt <SEP> reply`, the labels of both axes (the last reply token's row predicted
    # <EOS>); [] for the decoder's attention


class Bot:
    def __init__(self, config: RunConfig, vocab: Vocabulary, weights: Weights,
                 memory: Memory | None = None, tokenizer: TextTokenizer | None = None):
        if config.model.arch not in ARCHS:
            raise ChatbotError(
                f"config.json names the architecture {config.model.arch!r}, which this chatbot "
                f"does not know ({', '.join(ARCHS)}); upgrade the chatbot package or retrain"
            )
        # Files from different runs are refused here with a message; past this check an
        # error is a bug, and shows as one.
        check_weights(config.model, vocab, weights)
        # None: the word tokenizer (a sentencepiece one comes from the run directory).
        tokenizer = tokenizer or load_tokenizer(config.text)
        missing = vocab.unknown(getattr(tokenizer, "pieces", ()))
        if missing:
            raise ChatbotError(
                f"vocab.json lacks {len(missing)} pieces of the sentencepiece model (such as "
                f"{missing[0]!r}): the files are from different runs; retrain the model")
        if config.data.context_turns > 1 and vocab.turn_id is None:
            raise ChatbotError(f"config.json reads {config.data.context_turns} turns, but "
                               f"vocab.json has no {TURN}: the files are from different runs; "
                               "retrain the model")
        self.config = config
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.engine: Engine = arch_module(config.model.arch).Engine(weights, config.model, vocab)
        self.memory = memory  # the training pairs, for retrieval; None: generation only
        self.longest = max(map(len, vocab.tokens))  # characters of the longest token (clip)
        # Only words can be unknown: a sentencepiece model spells any typo with its pieces.
        self.speller = Speller(vocab.tokens) if isinstance(tokenizer, Tokenizer) else None
        self.decode = dataclasses.replace(config.decode)
        self._sampler = make_sampler(self.decode)

    @classmethod
    def load(cls, run_dir: str | Path) -> Bot:
        run_dir = check_run_dir(run_dir)
        config = RunConfig.load(run_dir / CONFIG)
        vocab = Vocabulary.load(run_dir / VOCAB)
        tokenizer = load_tokenizer(config.text, run_dir)
        # Runs trained before the memory existed have none: they reply by generation alone.
        memory = Memory.load(run_dir / MEMORY) if (run_dir / MEMORY).exists() else None
        try:
            return cls(config, vocab, read_keras_weights(run_dir / MODEL), memory, tokenizer)
        except ChatbotError as exc:
            raise ChatbotError(f"{run_dir}: {exc}") from None

    # -- decoding settings ------------------------------------------------------------------

    def configure(self, **changes) -> None:
        """Changes decoding settings (DecodeConfig field names); invalid values change nothing."""
        decode = dataclasses.replace(self.decode, **changes)
        self._sampler = make_sampler(decode)  # raises ChatbotError before anything changes
        self.decode = decode

    def set(self, name: str, value: str) -> None:
        """`/set NAME VALUE` from the REPL: parses text, then configure()."""
        self.configure(**parse_setting(name, value, self.decode))

    # -- replies ----------------------------------------------------------------------------

    def reply(self, prompt: Prompt) -> Reply:
        """The reply to a prompt, or to a conversation's last user turn (see `Prompt`)."""
        return self.reply_batch([prompt])[0]

    def reply_batch(self, prompts: Sequence[Prompt]) -> list[Reply]:
        """Replies to many prompts (or conversations) at once; an empty prompt gets an empty
        reply. A model trained with --context-turns N reads a conversation's last N turns
        (chatbot.text.context), unless the `context` setting is off; others read its last turn.

        The sampler proposes candidates (one, or beam search's n-best). With `retrieval` on
        and a greedy or beam strategy (sampling asks for variety), the replies of the known
        prompts most similar to the prompt join them (chatbot.data.memory); with `mmi` > 0,
        or whenever known replies joined, the model scores every candidate as a whole
        (chatbot.decoding.rerank):

            score = mean log p(reply | prompt) - mmi * mean log p(reply | empty prompt)
                    + retrieval_weight * similarity of the most similar known prompt
                      whose reply it is (0 for a reply of none)

        and the best is the reply. Otherwise candidates keep the sampler's order and scores.
        With greedy search and no MMI, candidates that could not be the best are not scored,
        and the search is skipped for a prompt when one of its known replies is what it would
        write, or when a known reply already beats anything it could write (see _drafts): the
        replies are the same, and the candidates are those that could have won.
        """
        turns = [self.clip(self.turns(p)) for p in prompts]
        read = [self._read(t) for t in turns]
        tokenized = [toks for toks, _ in read]
        rows = [i for i, toks in enumerate(tokenized) if toks]
        prompts = {i: self.vocab.encode(tokenized[i]) for i in rows}
        matches = {i: self.matches(turns[i]) for i in rows}
        known = {i: self.known_replies(matches[i]) for i in rows if matches[i]}
        candidates = self._generate(rows, prompts, known)
        replies = []
        for i, toks in enumerate(tokenized):
            cands = candidates.get(i, [])
            best = cands[0] if cands else Candidate("", [], 0.0, 0.0)
            replies.append(Reply(best.text, best.tokens, self.vocab.unknown(toks), cands,
                                 matches.get(i, []), toks, read[i][1]))
        return replies

    def _generate(self, rows: list[int], prompts: dict[int, list[int]],
                  known: dict[int, dict]) -> dict[int, list[Candidate]]:
        """Each row's candidates: the sampler's (or the known reply it would write), then, with
        known replies or MMI, the pool ranked by the model's scores (see reply_batch)."""
        scored: dict[int, dict] = {}  # row -> {reply tokens: log p(reply | prompt)}
        generated: dict[int, list[Candidate]] = {}
        if known and not self.decode.mmi and isinstance(self._sampler, GreedySampler):
            scored, generated = self._drafts(rows, prompts, known)
        searched = [i for i in rows if i not in generated]
        found = self._sampler(
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
                                          never=self._sampler.never(self.vocab))
            for (i, key), reply, logprob, hit in zip(batch, ids, logprobs.tolist(),
                                                     hits.tolist()):
                scored[i][key] = logprob
                score = logprob / (len(key) + 1) + weight * known[i][key].similarity
                best[i] = max(best.get(i, -np.inf), score)  # (as _rank and _ranked score it)
                if hit == len(reply) + 1 and self._sampler.writes(reply, self.vocab):
                    generated[i] = [Candidate(self.tokenizer.detokenize(list(key)), list(key),
                                              logprob, logprob)]
        # A known reply max_len tokens long may be what a search writes, stopped by max_len
        # before its <EOS>, which hits cannot tell: such a row is searched, so that its reply
        # keeps its source.
        capped = {i for i, keys in scored.items() if any(len(key) >= self._sampler.max_len
                                                         for key in keys)}
        generated |= {i: [] for i, score in best.items()
                      if score > 0 and i not in generated and i not in capped}
        return scored, generated

    def matches(self, turns: Sequence[str]) -> list[Match]:
        """The known prompts whose replies join the candidates for a prompt's `turns` (oldest
        first), best first; [] when retrieval does not apply to the current settings."""
        # Sampling asks for variety: a known reply with its bonus would win nearly every time.
        if not (self.decode.retrieval and self.memory) or self.decode.strategy not in RERANKED:
            return []
        if self.context_turns != self.config.data.context_turns:
            return []  # context off: the memory's keys hold turns the bot is not reading
        return self.memory.search(context_key(self.clip(turns), self.context_turns),
                                  self.decode.retrieval_k, self.decode.retrieval_min_similarity)

    def known_replies(self, matches: list[Match]) -> dict[tuple[str, ...], Match]:
        """The distinct replies of `matches` as candidates hold them (tokens, cut to
        max_reply_len), each with the best match that has it (matches come best first)."""
        known: dict[tuple[str, ...], Match] = {}
        for match in matches:
            for text in match.replies:
                known.setdefault(tuple(self.tokenizer.tokenize(text)[: self.decode.max_reply_len]),
                                 match)
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
                             Candidate(self.tokenizer.detokenize(list(key)), list(key), 0.0, 0.0,
                                       "memory", match), match.similarity)
        return pool

    def _rank(self, pools: list[dict], prompts: list[list[int]], scored: list[dict]
              ) -> list[list[Candidate]]:
        """Every pool's candidates scored by the model (see reply_batch), best first; all
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

    @property
    def context_turns(self) -> int:
        """The turns the model reads before a reply: its training setting, or 1 with the
        `context` setting off."""
        return self.config.data.context_turns if self.decode.context else 1

    def turns(self, prompt: Prompt) -> list[str]:
        """A prompt's turns, oldest first, system turns left out; ChatbotError if the last
        turn is not the user's or a message is malformed."""
        if isinstance(prompt, str):
            return [prompt]
        if not prompt:
            raise ChatbotError("a conversation needs at least one user message")
        if all(isinstance(m, str) for m in prompt):
            return list(prompt)
        # Message objects are taken as they are (the REPL's may hold what a terminal could not
        # decode); dicts, as chat JSONL holds them, are checked as the loader checks them.
        messages = (list(prompt) if all(isinstance(m, Message) for m in prompt)
                    else parse_messages(list(prompt)))
        if isinstance(messages, str):
            raise ChatbotError(f"bad conversation: {messages}")
        said = [m for m in messages if m.role != "system"]
        if not said or said[-1].role != "user":
            raise ChatbotError("the last message of a conversation to reply to must be the "
                               "user's")
        return [m.content for m in said]

    def prompt_tokens(self, prompt: Prompt) -> list[str]:
        """The tokens the model reads for a prompt, as in training: truncated to max_len, and
        for a context model joined with the turns before it (chatbot.text.context)."""
        return self._read(self.clip(self.turns(prompt)))[0]

    def clip(self, turns: Sequence[str]) -> list[str]:
        """The turns the model may read, each cut to what its tokens can come from
        (chatbot.text.words.clip): the prompt's first max_len tokens, the end of the turns before it
        that fit the context budget. Every later step (spelling, retrieval, the model) works
        on these, so a reply's cost is bounded whatever was typed or pasted."""
        max_len, n = self.config.data.max_len, self.context_turns
        if not turns:
            return []
        earlier = [clip(t, prompt_budget(max_len, n), self.longest, end=True)
                   for t in turns[-n:-1]] if n > 1 else []
        return [*earlier, clip(turns[-1], max_len, self.longest)]

    def _read(self, turns: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """prompt_tokens of `turns`, and the unknown words the speller corrected in them."""
        tokens = context_tokens(turns, self.tokenizer, self.config.data.max_len,
                                self.context_turns)[0]
        if self.speller is None or not self.decode.spelling:
            return tokens, []
        return self.speller.correct(tokens)

    def attention(self, text: str, reply_tokens: Sequence[str]) -> AttentionMap:
        """Where the model looked while it wrote `reply_tokens` for `text`: each reply token
        (and the final <EOS>) over the prompt, or, for a model that reads the whole sequence
        at once (the transformer), every layer's and head's self-attention (see AttentionMap)."""
        prompt = self.prompt_tokens(text)
        if not prompt:
            raise ChatbotError("attention needs a non-empty prompt")
        found = self.engine.attention(self.vocab.encode(prompt), self.vocab.encode(reply_tokens))
        if found is None:
            raise ChatbotError(
                f"this model ({self.config.model.arch}) has no attention; train one with "
                "'chatbot train --arch attention' or '--arch transformer'"
            )
        prompt = prompt[len(prompt) - found.kept:]  # as the engine read it
        reply = [*reply_tokens, EOS]
        if not found.over_sequence:
            return AttentionMap(list(prompt), reply, found.weights)
        tokens = [SOS, *prompt, SEP, *reply_tokens][: found.weights.shape[-1]]
        return AttentionMap(prompt, reply, found.weights, tokens)

    def _candidate(self, found) -> Candidate:
        tokens = self.vocab.decode(found.tokens)
        return Candidate(self.tokenizer.detokenize(tokens), tokens, found.logprob, found.score)


def make_sampler(decode: DecodeConfig) -> Sampler:
    """The sampler a DecodeConfig describes; ChatbotError if a setting is out of its range
    (chatbot.decoding.settings: the reranking settings included)."""
    check_decode(decode)
    common = dict(max_len=decode.max_reply_len, min_len=decode.min_len,
                  allow_unk=decode.allow_unk, no_repeat_ngram=decode.no_repeat_ngram,
                  loop_guard=decode.loop_guard,
                  temperature=decode.temperature, seed=decode.seed)
    extra = {
        "beam": dict(width=decode.beam_width, length_penalty=decode.length_penalty),
        "top_k": dict(k=decode.top_k),
        "top_p": dict(p=decode.top_p),
    }.get(decode.strategy, {})
    return get_sampler(decode.strategy, **common, **extra)
