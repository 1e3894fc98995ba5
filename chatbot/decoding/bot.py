"""Load a run directory and reply to text: the API behind `chat`, `reply` and your own scripts.

    from chatbot.decoding.bot import Bot
    bot = Bot.load("models/default")
    print(bot.reply("hello").text)
    bot.set("beam", "5")              # decoding settings can change at any time
    print(bot.reply("hello").candidates)
    reply = bot.reply("whats ur name")
    reply.confidence, reply.source    # how likely it is right (0 to 1); model, memory, taught
                                      # or fallback (the bot said it does not know)
    bot.teach("whats ur name", "I'm chatbot.")   # said from now on, saved in the run
    bot.forget("whats ur name")
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
from chatbot.data.taught import TAUGHT, Taught
from chatbot.decoding.confidence import CALIBRATION, UNCALIBRATED, Calibration, Evidence
from chatbot.decoding.fallback import DEFAULT, Fallback
from chatbot.decoding.policy import Candidate, ReplyPolicy
from chatbot.decoding.samplers import Sampler, get_sampler
from chatbot.decoding.settings import DecodeConfig, check_decode, parse_setting
from chatbot.decoding.spelling import Speller
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS, arch_module
from chatbot.models.base import Engine, Weights, check_weights
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import CONFIG, MEMORY, MODEL, VOCAB, check_run_dir
from chatbot.text.context import context_tokens, prompt_budget
from chatbot.text.tokenizer import load_tokenizer
from chatbot.text.truecase import Truecaser
from chatbot.text.vocab import EOS, SEP, SOS, TURN, Vocabulary
from chatbot.text.words import TextTokenizer, Tokenizer, clip

# What a bot answers: a prompt, or a conversation whose last turn is the user's (Message
# objects, {"role", "content"} dicts as chat JSONL holds them, or the turns' texts in order).
Prompt = str | Sequence[Message | dict | str]


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
    confidence: float = 0.0  # how likely the reply is right, 0 to 1 (chatbot.decoding.confidence)
    evidence: Evidence | None = None  # what the confidence of the model's best came from

    @property
    def source(self) -> str:
        """model, memory (a known reply), taught, or fallback (the bot does not know)."""
        return self.candidates[0].source if self.candidates else "model"

    @property
    def match(self) -> Match | None:
        """The known (or taught) prompt whose reply was said, if one was."""
        return self.candidates[0].match if self.candidates else None


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
                 memory: Memory | None = None, tokenizer: TextTokenizer | None = None,
                 taught: Taught | None = None, calibration: Calibration = UNCALIBRATED,
                 fallback: Fallback = DEFAULT):
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
        self.taught = taught if taught is not None else Taught(None, memory)  # not saved
        self.calibration = calibration
        self.fallback = fallback
        self.run_dir: Path | None = None  # where Bot.load read it from
        # A lower-casing tokenizer's words, written with the case of the known replies. (At
        # load, not lazily: serving copies the bot for every request.)
        self.truecase = (Truecaser.learn(r for replies in memory.replies for r in replies)
                         if memory is not None and isinstance(tokenizer, Tokenizer)
                         and tokenizer.lowercase else None)
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
            bot = cls(config, vocab, read_keras_weights(run_dir / MODEL), memory, tokenizer,
                      Taught.load(run_dir / TAUGHT, memory),
                      Calibration.load(run_dir / CALIBRATION), Fallback.load(run_dir))
        except ChatbotError as exc:
            raise ChatbotError(f"{run_dir}: {exc}") from None
        bot.run_dir = run_dir
        return bot

    def use_weights(self, weights: Weights) -> None:
        """Replies from now on with other weights of the same model (while training, each
        epoch's); everything else the bot learned at load (case, spelling) is kept."""
        check_weights(self.config.model, self.vocab, weights)
        self.engine = arch_module(self.config.model.arch).Engine(weights, self.config.model,
                                                                 self.vocab)

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
        Which candidates compete, and which wins, is the reply policy's
        (chatbot.decoding.policy)."""
        turns = [self.clip(self.turns(p)) for p in prompts]
        read = [self._read(t) for t in turns]
        tokenized = [toks for toks, _ in read]
        rows = [i for i, toks in enumerate(tokenized) if toks]
        prompts = {i: self.vocab.encode(tokenized[i]) for i in rows}
        policy = self.policy()
        closest = {i: policy.closest(turns[i]) for i in rows}
        matches = {i: policy.matches(turns[i], closest[i]) for i in rows}
        known = {i: policy.known_replies(matches[i]) for i in rows if matches[i]}
        candidates = policy.candidates(rows, prompts, known)
        replies = []
        for i, toks in enumerate(tokenized):
            cands, evidence, confidence = policy.decide(turns[i], toks, candidates.get(i, []),
                                                        closest.get(i, []))
            best = cands[0] if cands else Candidate("", [], 0.0, 0.0)
            replies.append(Reply(best.text, best.tokens, self.vocab.unknown(toks), cands,
                                 matches.get(i, []), toks, read[i][1], confidence, evidence))
        return replies

    # -- teaching ---------------------------------------------------------------------------

    def teach(self, prompt: str, reply: str) -> None:
        """From now on, `reply` is said to `prompt` and to prompts closer to it than to any
        known one (its typing variants); saved in the run's taught.jsonl when the bot was
        loaded from a run, and folded into its next training (chatbot.data.taught)."""
        self.taught.add(prompt, reply)

    def forget(self, prompt: str) -> int:
        """Drops what was taught for `prompt`; how many pairs were dropped (0 or 1)."""
        return self.taught.forget(prompt)

    def reply_all(self, prompts: Sequence[Prompt], batch_size: int = 256) -> list[Reply]:
        """reply_batch over many prompts, `batch_size` at a time (each batch's engine work is
        one padded pass)."""
        replies: list[Reply] = []
        for start in range(0, len(prompts), batch_size):
            replies += self.reply_batch(list(prompts[start: start + batch_size]))
        return replies

    def policy(self) -> ReplyPolicy:
        """The reply policy under the current settings (chatbot.decoding.policy)."""
        return ReplyPolicy(self.engine, self.vocab, self.tokenizer, self.memory, self.decode,
                           self._sampler, self.context_turns, self.config.data.context_turns,
                           self.taught, self.calibration, self.fallback,
                           self.truecase if self.decode.truecase else None)

    def matches(self, turns: Sequence[str]) -> list[Match]:
        """The known prompts whose replies join the candidates for a prompt's `turns` (oldest
        first), best first; [] when retrieval does not apply to the current settings."""
        return self.policy().matches(self.clip(turns))

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
