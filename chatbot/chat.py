"""The terminal REPL: type a prompt, read the reply. Ctrl-C clears the line, Ctrl-D leaves.

Input and output are passed in (as in prompt-toolkit's own tests), so a test drives a real
session through pipe input; `write` receives every line the REPL prints.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.history import History, InMemoryHistory

from chatbot.bot import SETTING_NAMES, Bot, Reply
from chatbot.errors import ChatbotError

HELP = f"""\
Type a message and press Enter to get a reply.
  /set NAME VALUE   change decoding, e.g. /set beam 5, /set temperature 0.7, /set top_p 0.9
                    settings: {', '.join(SETTING_NAMES)}
  /show             current decoding settings
  /nbest N          show the N best candidates with their log-probabilities (beam search)
  /attention [FILE] save a heatmap of the last reply's attention (default attention.png)
  /help             this help
  /quit             leave (Ctrl-D also leaves; Ctrl-C clears the line)"""


def printable(token: str) -> str:
    """A token safe to echo to a terminal: control characters and escapes shown as \\x1b etc."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in token)


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
            f"{d.no_repeat_ngram}, allow_unk {'on' if d.allow_unk else 'off'}, seed {d.seed}")


class Repl:
    def __init__(self, bot: Bot, write: Callable[[str], None]):
        self.bot, self.write = bot, write
        self.last: tuple[str, Reply] | None = None
        self.commands = {"/help": self.help, "/set": self.set, "/show": self.show,
                         "/nbest": self.nbest, "/attention": self.attention}

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
        reply = self.bot.reply(text)
        self.last = (text, reply)
        if reply.unknown:
            self.write(f"(not in my vocabulary: {', '.join(map(printable, reply.unknown))})")
        self.write(f"bot> {reply.text}" if reply.text else "bot> (no reply)")
        if len(reply.candidates) > 1:
            for rank, c in enumerate(reply.candidates, start=1):
                self.write(f"  {rank}. {c.text}  (log-prob {c.logprob:.2f}, score {c.score:.2f})")

    def help(self) -> None:
        self.write(HELP)

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

    def attention(self, path: str = "attention.png") -> None:
        if self.last is None:
            self.write("no reply yet: say something first")
            return
        from chatbot.plot import plot_attention  # matplotlib loads only when asked for

        prompt, reply = self.last
        amap = self.bot.attention(prompt, reply.tokens)
        self.write(f"saved {plot_attention(amap.weights, amap.prompt, amap.reply, path)}")


def run_repl(
    bot: Bot, *, input=None, output=None, history: History | None = None,
    write: Callable[[str], None] = print, prompt: str = "you> ",
) -> None:
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
