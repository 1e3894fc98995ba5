"""Text as tokens: the word tokenizer (words), sentencepiece pieces (subword), the choice between
them (tokenizer), the vocabulary of indices (vocab), and the turns a model reads (context)."""
