"""What a model reads before it replies: the prompt and, with `context_turns` N > 1, the turns
of the conversation before it, in one token sequence that every architecture takes as its
prompt (the shared example format; chatbot.training.batches and chatbot.decoding.bot both build it
here):

    N = 1:  how are you ?
    N = 3:  i have a dog . <TURN> what is its name ? <TURN> rex .

The prompt keeps its first max_len tokens, as a single-turn model reads it. The whole sequence
holds at most N * max_len tokens, separators included: earlier turns join newest first while
they fit, and the oldest one that does not fit whole keeps its end (the words nearest the
prompt). So a context model's prompt is never longer than N * max_len, and N = 1 reads exactly
what a single-turn model reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatbot.text.vocab import TURN
from chatbot.text.words import TextTokenizer


def prompt_budget(max_len: int, context_turns: int) -> int:
    """The most tokens a prompt with its context can hold."""
    return max_len * context_turns


def context_key(turns: Sequence[str], context_turns: int) -> str:
    """The text retrieval compares (chatbot.data.memory): the prompt, or for a context model
    its last `context_turns` turns joined by " | ", as the memory of its training pairs holds
    them."""
    return " | ".join(turns[-context_turns:])


def longest_sequence(max_len: int, context_turns: int) -> int:
    """The longest training sequence: <SOS>, the prompt with its context, <SEP>, the reply."""
    return prompt_budget(max_len, context_turns) + max_len + 2


def context_tokens(turns: Sequence[str], tokenizer: TextTokenizer, max_len: int,
                   context_turns: int) -> tuple[list[str], bool]:
    """The tokens the model reads for a conversation's `turns` (oldest first, the prompt
    last), and whether an earlier turn was cut or left out to fit the budget (turns beyond
    the N - 1 before the prompt are never read, and do not count as cut)."""
    if not turns:
        return [], False
    tokens = tokenizer.tokenize(turns[-1])[:max_len]
    room = prompt_budget(max_len, context_turns) - len(tokens)
    earlier = list(turns[:-1])[-(context_turns - 1):] if context_turns > 1 else []
    cut = False
    for turn in reversed(earlier):  # newest first
        words = tokenizer.tokenize(turn)
        if not words:
            continue
        room -= 1  # its <TURN>
        if room <= 0:
            cut = True
            break
        if len(words) > room:
            words, cut = words[-room:], True
        tokens = [*words, TURN, *tokens]
        room -= len(words)
    return tokens, cut
