"""The terminal REPL: type a prompt, read the reply. Ctrl-C clears the line, Ctrl-D leaves.

Input and output are passed in (as in prompt-toolkit's own tests), so a test drives a real
session through pipe input; `write` receives every line the REPL prints.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.history import History, InMemoryHistory

from chatbot.bot import Bot

HELP = """\
Type a message and press Enter to get a reply.
  /help   show this help
  /quit   leave (Ctrl-D also leaves; Ctrl-C clears the line)"""


def run_repl(
    bot: Bot, *, input=None, output=None, history: History | None = None,
    write: Callable[[str], None] = print, prompt: str = "you> ",
) -> None:
    session: PromptSession[str] = PromptSession(
        history=history or InMemoryHistory(), input=input, output=output
    )
    write("Chatbot ready. /help lists commands, /quit or Ctrl-D leaves.")
    while True:
        try:
            text = session.prompt(prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C: drop the line being typed, ask again
        except EOFError:
            break  # Ctrl-D
        text = text.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/quit", "/exit"):
                break
            if command == "/help":
                write(HELP)
            else:
                write(f"unknown command {command}; /help lists commands")
            continue
        reply = bot.reply(text)
        if reply.unknown:
            write(f"(not in my vocabulary: {', '.join(reply.unknown)})")
        write(f"bot> {reply.text}" if reply.text else "bot> (no reply)")
    write("bye")
