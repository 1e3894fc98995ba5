"""Dialogue data: pairs read and checked from TSV (pairs), chat JSONL conversations (dialogue),
and the typing noise (noise) and variants (variants) of prompts."""
