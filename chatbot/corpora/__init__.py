"""Public corpora as our files: chatterbot-corpus (chatterbot), and the ones users download
(importers: Cornell, DailyDialog, plain turns)."""
