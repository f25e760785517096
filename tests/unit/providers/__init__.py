"""The backends' unit tests, one package per provider as argoproxy/providers/ has one package per provider."""
