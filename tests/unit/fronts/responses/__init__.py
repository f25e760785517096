"""The OpenAI Responses door's unit tests (argoproxy/fronts/responses/), a module per part of the door."""
