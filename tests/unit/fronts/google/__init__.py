"""The Google GenAI door's unit tests (argoproxy/fronts/google/), a module per part of the door."""
