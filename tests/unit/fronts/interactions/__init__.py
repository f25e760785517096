"""The Interactions door's unit tests (argoproxy/fronts/interactions/), a module per part of the door."""
