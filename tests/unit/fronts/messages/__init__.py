"""The Anthropic Messages door's unit tests (argoproxy/fronts/messages/), a module per part of the door."""
