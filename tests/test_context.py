"""Context: a model trained with --context-turns N reads the last N turns of a conversation
(chatbot.text.context), in training, in `Bot.reply(messages)`, in the REPL and in `chatbot eval`."""

from __future__ import annotations

import json

import pytest

from chatbot.cli import main
from chatbot.data.pairs import read_pairs
from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.text.context import context_key, context_tokens, longest_sequence
from chatbot.text.vocab import SPECIALS, TURN, Vocabulary
from chatbot.text.words import Tokenizer
from tests.conftest import shared, tiny_config

TOKENIZER = Tokenizer()

# The right reply needs the turn before the prompt: "rex." alone does not say which animal.
ANIMALS = ("dog", "cat", "bird", "fish", "horse", "rabbit")
NAMES = ("rex", "max", "bella", "luna", "milo", "coco", "toby", "nala")


def conversation(animal: str, name: str) -> dict:
    turns = [("user", f"i have a {animal}."), ("assistant", f"what is your {animal} called?"),
             ("user", f"{name}."), ("assistant", f"{name} is a good name for a {animal}.")]
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def write_conversations(path, pairs) -> None:
    path.write_text("".join(json.dumps(conversation(a, n)) + "\n" for a, n in pairs),
                    encoding="utf-8")


def test_one_turn_reads_exactly_what_a_single_turn_model_reads():
    turns = ["i have a dog.", "what is it called?", "rex, and " + "very " * 30 + "good."]
    tokens, cut = context_tokens(turns, TOKENIZER, 10, 1)
    assert tokens == TOKENIZER.tokenize(turns[-1])[:10] and not cut


def test_earlier_turns_join_newest_first_within_the_budget():
    turns = ["a b c d e f", "g h", "i j k"]
    tokens, cut = context_tokens(turns, TOKENIZER, 4, 3)  # at most 12 tokens
    # The prompt whole (3), then "g h" (2 + <TURN>), then the end of the oldest turn that
    # fits the 12 - 3 - 3 - 1 = 5 tokens left: "b c d e f".
    assert tokens == ["b", "c", "d", "e", "f", TURN, "g", "h", TURN, "i", "j", "k"]
    assert cut
    assert len(tokens) <= 12 == longest_sequence(4, 3) - 4 - 2


def test_turns_beyond_the_setting_are_not_read_and_not_counted_as_cut():
    tokens, cut = context_tokens(["one", "two", "three"], TOKENIZER, 10, 2)
    assert tokens == ["two", TURN, "three"] and not cut
    assert context_key(["one", "two", "three"], 2) == "two | three"
    assert context_key(["one", "two", "three"], 1) == "three"


def test_a_context_vocabulary_reserves_the_turn_separator_and_decoding_hides_it():
    vocab = Vocabulary.build([["a", TURN, "b"]], reserved=(TURN,))
    assert vocab.tokens[: len(SPECIALS) + 1] == [*SPECIALS, TURN]
    assert vocab.decode([vocab.index["a"], vocab.turn_id, vocab.index["b"]]) == ["a", "b"]
    assert Vocabulary.build([["a"]]).turn_id is None


def test_conversation_pairs_carry_their_context(tmp_path):
    path = tmp_path / "c.jsonl"
    write_conversations(path, [("dog", "rex")])
    pairs = read_pairs(path).pairs
    assert [(p.context, p.prompt, p.reply) for p in pairs] == [
        ((), "i have a dog.", "what is your dog called?"),
        (("i have a dog.", "what is your dog called?"), "rex.",
         "rex is a good name for a dog."),
    ]


def test_a_single_turn_vocabulary_cannot_train_with_context(tmp_path, tiny_run, capsys):
    data = tmp_path / "c.jsonl"
    write_conversations(data, [("dog", "rex")])
    status = main(["train", "--init-from", str(tiny_run), "--data", str(data), "--out",
                   str(tmp_path / "tuned"), "--context-turns", "2", "--epochs", "1"])
    assert status == 1
    assert "needs a vocabulary with the turn separator <TURN>" in capsys.readouterr().err


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    """An lstm trained with --context-turns 2 on every (animal, name) conversation."""
    from chatbot.training.train import train

    def build(root):
        root.mkdir()
        write_conversations(root / "pets.jsonl", [(a, n) for a in ANIMALS for n in NAMES])
        config = tiny_config(epochs=100)  # the model alone answers them all from epoch 80
        config.data.context_turns = 2
        config.train.batch_size = 8
        config.train.learning_rate = 5e-3
        # docs: chatbot train --data data/dailydialog.jsonl --out models/daily --context-turns 3
        train(root / "pets.jsonl", root / "run", config, log=lambda _: None, verbose=0)

    root = shared(tmp_path_factory, "context", {"pets": build})["pets"]
    return root / "run", root / "pets.jsonl"


@pytest.mark.slow
def test_a_context_model_answers_from_the_turn_before_the_prompt(context_run):
    out, data = context_run
    bot = Bot.load(out)
    bot.configure(retrieval=False)  # the model alone: the memory would know these by heart
    pairs = [p for p in read_pairs(data).pairs if p.context]
    asked = [[*p.context, p.prompt] for p in pairs]
    right = sum(r.text == p.reply for r, p in zip(bot.reply_batch(asked), pairs))
    assert right / len(pairs) >= 0.9
    # Without the turn before it, "rex." has len(ANIMALS) replies and can get at most one.
    bot.configure(context=False)
    right = sum(r.text == p.reply for r, p in zip(bot.reply_batch(asked), pairs))
    assert right / len(pairs) <= 1 / len(ANIMALS)


@pytest.mark.slow
def test_eval_reports_the_model_with_and_without_its_context(context_run, tmp_path, capsys):
    out, data = context_run
    report = tmp_path / "eval.json"
    # docs: chatbot eval --model models/daily --data data/dailydialog.jsonl
    assert main(["eval", "--model", str(out), "--data", str(data), "--retrieval", "off",
                 "-o", str(report)]) == 0
    context = json.loads(report.read_text())["context"]
    assert context["with_context"]["answer_rate"] >= 0.9
    # Without context: each "i have a X." right, and each name right for one animal at most.
    assert context["without_context"]["answer_rate"] <= (len(ANIMALS) + len(NAMES)) / (
        len(ANIMALS) + len(ANIMALS) * len(NAMES))
    assert "without context" in capsys.readouterr().out


@pytest.mark.slow
def test_messages_dicts_and_turn_texts_get_the_same_reply(context_run):
    out, _ = context_run
    bot = Bot.load(out)
    bot.configure(retrieval=False)
    messages = conversation("cat", "luna")["messages"][:3]
    assert bot.reply(messages).text == "luna is a good name for a cat."
    assert bot.reply([m["content"] for m in messages]).text == bot.reply(messages).text
    with pytest.raises(ChatbotError, match="last message .* must be the user's"):
        bot.reply(conversation("cat", "luna")["messages"])
    with pytest.raises(ChatbotError, match="role 'robot'"):
        bot.reply([{"role": "robot", "content": "hi"}])


@pytest.mark.slow
def test_reply_answers_conversations_on_stdin(context_run, monkeypatch, capsys):
    import io

    out, _ = context_run
    lines = [json.dumps({"messages": conversation(a, n)["messages"][:3]})
             for a, n in (("dog", "rex"), ("fish", "coco"))]
    stdin = "\n".join([lines[0], "{not json", lines[1]]) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    # docs: chatbot reply --model models/daily --conversation < conversations.jsonl
    status = main(["reply", "--model", str(out), "--conversation", "--retrieval", "off"])
    captured = capsys.readouterr()
    assert status == 1 and "stdin:2: bad JSON" in captured.err
    assert captured.out.splitlines() == ["rex is a good name for a dog.", "",
                                         "coco is a good name for a fish."]


@pytest.mark.slow
def test_the_repl_carries_the_conversation_and_saves_it(context_run, tmp_path):
    from chatbot.chat import Repl

    out, _ = context_run
    bot = Bot.load(out)
    bot.configure(retrieval=False)
    said: list[str] = []
    # docs: chatbot chat --model models/daily
    repl = Repl(bot, said.append)
    repl.handle("i have a horse.")
    assert said[-1] == "bot> what is your horse called?"
    repl.handle("toby.")
    assert said[-1] == "bot> toby is a good name for a horse."
    repl.handle("/history")
    assert "  what is your horse called ? <TURN> toby ." in said
    saved = tmp_path / "talk.jsonl"
    repl.handle(f"/save {saved}")
    (line,) = saved.read_text(encoding="utf-8").splitlines()
    assert [m["role"] for m in json.loads(line)["messages"]] == ["user", "assistant"] * 2
    repl.handle("/reset")
    repl.handle("toby.")  # a new conversation: the horse is forgotten
    assert [m.content for m in repl.messages][:1] == ["toby."]
    assert len(repl.messages) == 2
    repl.handle("/set context off")
    assert said[-1].endswith("context 1 turn (off); spelling on")
    repl.handle("i have a fish.")
    repl.handle("/history")
    assert said[-1] == "  i have a fish ."  # what it read then, the prompt alone
