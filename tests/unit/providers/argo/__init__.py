"""Unit tests of argoproxy/providers/argo/."""
