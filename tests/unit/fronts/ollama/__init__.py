"""The Ollama door's unit tests (argoproxy/fronts/ollama/), a module per part of the door."""
