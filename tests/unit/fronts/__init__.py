"""The API doors' unit tests, one package per door as argoproxy/fronts/ has one package per door."""
