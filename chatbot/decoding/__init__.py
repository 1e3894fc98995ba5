"""From a prompt to a reply: the settings (settings), the samplers, the memory of known
replies (retrieval), spelling, ranking (rerank), and Bot, which loads a run and replies."""
