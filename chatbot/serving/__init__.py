"""`chatbot serve`: the HTTP app (app), the OpenAI protocol (completions), its limits,
the guard middleware, the batcher, the streaming replies and the chat page (web/)."""
