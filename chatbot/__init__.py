"""chatbot: a Keras sequence-to-sequence chatbot trained on your own prompt<TAB>reply pairs.

This package deliberately imports nothing heavy here: `chatbot --help`, `chatbot data check`
and `chatbot chat` (which decodes with NumPy) start without loading TensorFlow.
"""

__version__ = "0.1.0"
