"""Stage 05: which models are fine-tuned, on which QA sets, and the fine-tuning itself."""
