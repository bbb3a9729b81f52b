"""What a user can call: chat completions, responses, embeddings, the model catalogue,
structured outputs and raw responses."""
