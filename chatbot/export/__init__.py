"""`chatbot export`: a run as a TensorFlow SavedModel (saved_model), with decoding as a
graph (graph) and the word tokenizer as core string ops (text_ops)."""
