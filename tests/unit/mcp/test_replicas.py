"""What a supervisor hears from the other replicas (argoproxy/mcp/replicas.py): a cancellation, a session's end or
a client's response acted on; its own word, garbage and oversized messages not."""

import json

from argoproxy.mcp.replicas import MAX_MESSAGE, Replicas


class Told:
    def __init__(self):
        self.heard = []

    def cancelled(self, session, request_id):
        self.heard.append(("cancel", session, request_id))
        return True

    def ended(self, session):
        self.heard.append(("ended", session))

    def replied(self, session, message):
        self.heard.append(("reply", session, message))
        return True


def test_another_replicas_word_is_acted_on_and_nothing_else():
    told = Told()
    replicas = Replicas("", told)
    replicas.heard(json.dumps({"cancel": "s1", "id": 7, "from": "elsewhere"}))
    replicas.heard(json.dumps({"ended": "s2", "from": "elsewhere"}).encode())
    replicas.heard(json.dumps({"reply": "s4", "message": {"id": "a", "result": {}}, "from": "elsewhere"}))
    replicas.heard(json.dumps({"cancel": "s3", "id": 1, "from": replicas.me}))  # said here: done here already
    for garbage in ("not json", "[1]", json.dumps({"cancel": 5}), json.dumps({"reply": "s4", "message": "x"}),
                    "x" * (MAX_MESSAGE + 1), None):
        replicas.heard(garbage)
    assert told.heard == [("cancel", "s1", 7), ("ended", "s2"), ("reply", "s4", {"id": "a", "result": {}})]
    assert not replicas.tell({"cancel": "s1", "id": 7})  # no Redis: nobody to tell
