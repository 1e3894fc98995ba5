"""The terminal REPL: type a prompt, read the reply. Ctrl-C clears the line, Ctrl-D leaves.

The REPL carries the conversation: a model trained with --context-turns N reads the last N
turns before each reply (chatbot.text.context); /reset starts a new conversation, /history shows
what the model reads, /save FILE appends the conversation to a chat JSONL file.

Input and output are passed in (as in prompt-toolkit's own tests), so a test drives a real
session through pipe input; `write` receives every line the REPL prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatbot.data.dialogue import Message, to_json_line
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.settings import SETTING_NAMES
from chatbot.errors import ChatbotError
from chatbot.explain import explain

if TYPE_CHECKING:
    from prompt_toolkit.history import History

HELP = f"""\
Type a message and press Enter to get a reply.
  /set NAME VALUE   change decoding, e.g. /set beam 5, /set temperature 0.7, /set top_p 0.9
                    settings: {', '.join(SETTING_NAMES)}
  /show             current decoding settings
  /nbest N          show the N best candidates with their log-probabilities (beam search)
  /why              where the last reply came from (the model, a known reply, a taught one,
                    or the fallback: the bot does not know), its confidence and the
                    candidates' scores
  /teach REPLY      say REPLY to the last prompt from now on (and to prompts like it);
                    saved in the run's taught.jsonl
  /forget           forget what was taught for the last prompt (or that its reply was
                    taught for)
  /attention [FILE] save a heatmap of the last reply's attention, or a grid of every layer's
                    and head's self-attention for a transformer (default attention.png)
  /neighbours WORD  the words the model learned to use most like WORD: the nearest ones
                    by its word vectors (chatbot embeddings), by cosine similarity
  /history          the conversation so far, and the turns the model reads of it
  /reset            start a new conversation
  /save FILE        append the conversation to FILE as a line of chat JSONL
  /help             this help
  /quit             leave (Ctrl-D also leaves; Ctrl-C clears the line)"""


def printable(token: str) -> str:
    """A token safe to echo to a terminal: control characters and escapes shown as \\x1b etc."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in token)


def corrections(reply: Reply) -> str:
    """The speller's corrections of a reply's prompt: "'waht' as 'what', 'nmae' as 'name'"."""
    return ", ".join(f"{printable(typed)!r} as {read!r}" for typed, read in reply.corrected)


def _utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8: a terminal's undecodable bytes arrive as lone
    surrogates, which cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe(bot: Bot) -> str:
    d = bot.decode
    detail = {
        "beam": f"width {d.beam_width}, length_penalty {d.length_penalty}, nbest {d.nbest}",
        "random": f"temperature {d.temperature}",
        "top_k": f"k {d.top_k}, temperature {d.temperature}",
        "top_p": f"p {d.top_p}, temperature {d.temperature}",
    }.get(d.strategy, "")
    return (f"strategy {d.strategy}{' (' + detail + ')' if detail else ''}; "
            f"min_len {d.min_len}, max_len {d.max_reply_len}, no_repeat_ngram "
            f"{d.no_repeat_ngram}, loop_guard {d.loop_guard}, allow_unk "
            f"{'on' if d.allow_unk else 'off'}, seed {d.seed}; "
            f"mmi {d.mmi}, retrieval {'on' if d.retrieval else 'off'} (k {d.retrieval_k}, "
            f"similarity {d.retrieval_min_similarity}, weight {d.retrieval_weight}); fallback "
            f"{'on' if d.fallback else 'off'} (min_confidence {d.min_confidence}, ambiguity "
            f"{d.ambiguity}); context "
            f"{bot.context_turns} turn{'s' if bot.context_turns > 1 else ''}"
            + ("" if d.context else " (off)") + f"; spelling {'on' if d.spelling else 'off'}")


class Repl:
    def __init__(self, bot: Bot, write: Callable[[str], None]):
        self.bot, self.write = bot, write
        self.last: tuple[list[Message], Reply] | None = None
        self.messages: list[Message] = []  # the conversation so far
        self.commands = {"/help": self.help, "/set": self.set, "/show": self.show,
                         "/nbest": self.nbest, "/why": self.why, "/attention": self.attention,
                         "/history": self.history, "/reset": self.reset, "/save": self.save,
                         "/teach": self.teach, "/forget": self.forget,
                         "/neighbours": self.neighbours}
        self._embeddings = None  # chatbot.embeddings.Embeddings, read at the first /neighbours

    def handle(self, text: str) -> bool:
        """Handles one input line; False means leave."""
        text = text.strip()
        if not text:
            return True
        if not text.startswith("/"):
            self.answer(text)
            return True
        command, *args = text.split()
        command = command.lower()
        if command in ("/quit", "/exit"):
            return False
        if command not in self.commands:
            self.write(f"unknown command {command}; /help lists commands")
            return True
        try:
            self.commands[command](*args)
        except TypeError:
            self.write(f"wrong arguments for {command}; /help shows its usage")
        except ChatbotError as exc:
            self.write(f"error: {exc}")
        return True

    def answer(self, text: str) -> None:
        asked = [*self.messages, Message("user", " ".join(text.split()))]
        reply = self.bot.reply(asked)
        self.last = (asked, reply)
        # A turn the bot could not answer stays out: the next prompt starts from the last reply.
        if reply.text:
            self.messages = [*asked, Message("assistant", reply.text)]
        if reply.corrected:
            self.write(f"(read {corrections(reply)})")
        if reply.unknown:
            self.write(f"(not in my vocabulary: {', '.join(map(printable, reply.unknown))})")
        # A known or taught reply is said as written: its line breaks are kept, anything else
        # a terminal would act on is shown escaped.
        shown = "\n".join(map(printable, reply.text.split("\n")))
        self.write(f"bot> {shown}" if reply.text else "bot> (no reply)")
        if self.bot.decode.nbest > 1:
            for rank, c in enumerate(reply.candidates[: self.bot.decode.nbest], start=1):
                self.write(f"  {rank}. {c.text}  (log-prob {c.logprob:.2f}, score {c.score:.2f})")

    def help(self) -> None:
        self.write(HELP)

    def history(self) -> None:
        if not self.messages:
            self.write("no conversation yet: say something first")
            return
        for m in self.messages:
            self.write(f"{'you' if m.role == 'user' else 'bot'}> {m.content}")
        turns = self.bot.context_turns
        self.write("the model reads each prompt alone (trained with --context-turns 1, or "
                   "'/set context off'); it read for its last reply:" if turns == 1 else
                   f"the model reads the last {turns} turns before each reply; it read for "
                   "its last reply:")
        if self.last is not None:
            self.write("  " + " ".join(map(printable, self.last[1].read)))

    def reset(self) -> None:
        self.messages, self.last = [], None
        self.write("new conversation")

    def save(self, path: str) -> None:
        if not self.messages:
            self.write("nothing to save yet: say something first")
            return
        try:
            with open(path, "a", encoding="utf-8", newline="\n") as f:
                f.write(to_json_line(self.messages) + "\n")
        except OSError as exc:
            raise ChatbotError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self.write(f"appended {len(self.messages)} turns to {path}")

    def show(self) -> None:
        self.write(describe(self.bot))

    def set(self, name: str, *value: str) -> None:
        if not value:
            raise TypeError
        self.bot.set(name, " ".join(value))
        self.write(describe(self.bot))

    def nbest(self, n: str) -> None:
        self.bot.set("nbest", n)
        self.write(describe(self.bot))

    def why(self) -> None:
        if self.last is None:
            self.write("no reply yet: say something first")
            return
        for line in explain(self.last[1], self.bot, self.last[0]):
            self.write(line)

    def teach(self, *reply: str) -> None:
        if not reply:
            raise TypeError
        prompt = self._last_prompt("nothing to teach for yet: type a prompt first")
        if prompt is None:
            return
        said = " ".join(reply)
        if not _utf8(said):
            raise ChatbotError("the reply is not valid UTF-8 (what the terminal sent could not "
                               "be decoded); type it again")
        self.bot.teach(prompt, said)
        where = self.bot.taught.path
        self.write(f'taught: "{printable(prompt)}" -> "{printable(said)}" '
                   + (f"(saved in {where})" if where is not None else "(this session only)"))

    def forget(self) -> None:
        prompt = self._last_prompt("nothing to forget yet: type a prompt first")
        if prompt is None:
            return
        said = self.last[1]
        if said.source == "taught":  # (taught for a prompt like it, perhaps not as typed)
            prompt = said.match.prompt
        if self.bot.forget(prompt):
            self.write(f'forgot what was taught for "{printable(prompt)}"')
        else:
            self.write(f'nothing was taught for "{printable(prompt)}"')

    def _last_prompt(self, nothing: str) -> str | None:
        """The last prompt typed, for /teach and /forget; None, having said so (`nothing`
        before any), when there is none or it cannot be saved (a terminal's bytes that are not
        UTF-8)."""
        if self.last is None:
            self.write(nothing)
            return None
        prompt = self.last[0][-1].content
        if not _utf8(prompt):
            self.write("the last prompt is not valid UTF-8 (what the terminal sent could not be "
                       "decoded), so it cannot be taught for; type it again")
            return None
        return prompt

    def attention(self, path: str = "attention.png") -> None:
        if self.last is None:
            self.write("no reply yet: say something first")
            return
        from chatbot.plot import plot_attention_map  # matplotlib loads only when asked for

        prompt, reply = self.last
        amap = self.bot.attention(prompt, reply.tokens)
        self.write(f"saved {plot_attention_map(amap, path)}")

    def neighbours(self, *words: str) -> None:
        if not words:
            raise TypeError
        from chatbot.embeddings import Embeddings, neighbour_lines

        if self._embeddings is None:
            if self.bot.run_dir is None:
                self.write("this bot was not loaded from a run directory, so there is no "
                           "model.keras to read its embeddings from")
                return
            self._embeddings = Embeddings.load(self.bot.run_dir)
        for line in neighbour_lines(self._embeddings, " ".join(words)):
            self.write(printable(line))


def run_repl(
    bot: Bot, *, input=None, output=None, history: History | None = None,
    write: Callable[[str], None] = print, prompt: str = "you> ",
) -> None:
    # Imported here: `chatbot reply` uses this module's helpers and needs no terminal UI.
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    session: PromptSession[str] = PromptSession(
        history=history or InMemoryHistory(), input=input, output=output
    )
    repl = Repl(bot, write)
    write("Chatbot ready. /help lists commands, /quit or Ctrl-D leaves.")
    while True:
        try:
            text = session.prompt(prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C: drop the line being typed, ask again
        except EOFError:
            break  # Ctrl-D
        try:
            if not repl.handle(text):
                break
        except KeyboardInterrupt:
            write("(interrupted)")  # Ctrl-C during a long decode stops it, not the session
    write("bye")
