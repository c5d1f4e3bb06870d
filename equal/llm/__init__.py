"""LLM extraction engine: backends, prompts, parsing, cache and cost ledger."""
