"""Unit tests of argoproxy/providers/dashscope/."""
