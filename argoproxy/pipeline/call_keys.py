"""Which tool call a streamed fragment adds to.

OpenAI's chunks give each tool call an `index`: its first fragment carries the call's `id` and name, later ones
add to its arguments by the same index. Some servers number every call 0, or leave the index out, and send each
call whole in a chunk of its own (Ollama: ollama/ollama#15457, #7881). Read by index alone, their parallel calls
were one call whose arguments were two JSON objects end to end (`{"city": "Paris"}{"city": "Tokyo"}`), which
Codex and Claude Code cannot parse and a strict server refuses when the history comes back. A fragment that
brings a function name and an id other than the one its index already has therefore begins a new call, and the
index's later fragments go to that call. The name is needed too: some servers change the id within one call
(Poolside sends one id with the name and another on every argument fragment; mlx-openai-server made a new one
per fragment), and a fragment that only adds arguments continues its call whatever its id.

Some servers also repeat a call's id and name on every fragment (llama-cpp-python, on a forced tool call). The
OpenAI SDK's stream helper and LangChain add fragments' strings together, so the name became
`get_weatherget_weather...`: `repeats` tells such a fragment, and the chat door relays it without them.
"""

from __future__ import annotations

from typing import Any

AGAIN = 1 << 20  # keys of calls that reuse an index already in use: after every index a server gives, in order


class CallKeys:
    """One choice's tool calls in a stream: the key of each fragment's call (an int; sorted, they are in the
    order the calls began)."""

    __slots__ = ("ids", "moved", "again", "wire", "free", "heads")

    def __init__(self) -> None:
        self.ids: dict[int, Any] = {}  # key -> the call's id (None until a fragment gives one)
        self.moved: dict[int, int] = {}  # index -> the key of the latest call begun at it, when not the index
        self.again = AGAIN
        self.wire: dict[int, int] = {}  # key -> the index a relayed chunk gives its call
        self.free = 0  # the lowest index no call was given
        self.heads: dict[int, tuple[Any, Any]] = {}  # key -> the id and name of the call's first fragment

    def key(self, position: int, fragment: dict[str, Any]) -> int:
        """The key of the call `fragment` (at `position` in its chunk's list) adds to."""
        index = fragment.get("index", position)  # no index: the position is the only identity there is
        key = self.moved.get(index, index)
        call_id = fragment.get("id")
        if key not in self.ids:
            self.ids[key] = call_id
        elif call_id and call_id != self.ids[key]:
            function = fragment.get("function")
            if self.ids[key] is None:  # the id came after the call's first fragment
                self.ids[key] = call_id
            elif isinstance(function, dict) and function.get("name"):
                key = self.moved[index] = self.again
                self.again += 1
                self.ids[key] = call_id
        return key

    def repeats(self, key: int, fragment: dict[str, Any]) -> bool:
        """Does this fragment of call `key` repeat the id and the name its first fragment gave (and give no
        other)? The first fragment of a call never does."""
        function = fragment.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        call_id = fragment.get("id")
        head = self.heads.get(key)
        known_id, known_name = head or (None, None)
        if head is None or (call_id and not known_id) or (name and not known_name):
            # the call's first fragment, or the first to give its id or name: those come once, here
            self.heads[key] = (known_id or call_id, known_name or name)
            return False
        gives = call_id is not None or name is not None
        return gives and call_id in (None, known_id) and name in (None, known_name)

    def index(self, key: int) -> int:
        """The index a relayed chunk gives the call `key` names: the server's own until a call is begun again at
        an index in use; from then on each new call the next index no call was given (a server index seen
        later may be one given already; a client may use indexes as list positions)."""
        given = self.wire.get(key)
        if given is None:
            moved = key >= AGAIN or self.again > AGAIN
            given = self.wire[key] = self.free if moved else key
            self.free = max(self.free, given + 1)
        return given
