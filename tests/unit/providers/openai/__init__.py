"""Unit tests of argoproxy/providers/openai/."""
