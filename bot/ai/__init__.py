"""AI assist: the model client, classification, summaries, regenerate, drafting, PII masking, knowledge base, tone, prompts."""
