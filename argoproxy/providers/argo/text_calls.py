"""Tool calls an ARGO Claude model wrote into its text, turned into real tool calls (whole answers and streams).

ARGO's legacy gateway (and its OpenAI-compatible endpoint) sometimes hands back a Claude tool call as text:
the Python repr of the tool_use block (`{'id': 'toolu_vrtx_...', 'input': {...}, 'name': 'bash', 'type':
'tool_use', 'cache_control': None}`, several in a row), or the model itself writes a JSON call
(`{"name": ..., "arguments"|"input"|"parameters": {...}}`, maybe in a ```json fence). `TextCallScanner`
finds them in text that arrives in pieces of any size; the rules are in docs/text-tool-calls.md:

* a candidate starts at `{` (or a ``` fence whose first content is `{`) whose first key is one of CALL_KEYS;
  it is held back only while it can still be a call: every top-level key must be a CALL_KEY and a top-level
  `name` must be a declared tool, else the held text goes out as text at once;
* a closed object is parsed as JSON, else as a Python literal (an AST walk over constants, dicts, lists and
  the names True/False/None/true/false/null: never eval), and becomes a call when it names a declared tool
  and carries its arguments as an object; anything else goes out as the text it was;
* a candidate longer than `limit` characters is released as text; the text it held is not scanned again.

Every character is looked at a bounded number of times (regex jumps between the characters that matter), so
the cost is linear in the answer and the memory is bounded by `limit`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Iterable, Union

from argoproxy.providers.argo.convert import new_tool_call_id

CALL_KEYS = frozenset({"id", "name", "type", "input", "arguments", "parameters", "function", "cache_control"})
ARGUMENT_KEYS = ("input", "arguments", "parameters")
CALL_TYPES = frozenset({"tool_use", "function", "tool_call"})
DEFAULT_LIMIT = 1024 * 1024  # characters a held candidate may reach before it is released as text
MAX_START = 64  # characters held before the first key is known (`{`, whitespace, a quoted key, a fence)
MAX_WORD = 256  # a key or tool name longer than this is neither
# Python's AST costs about 1 KB per element: a repr with more structure than this is not parsed as a literal
# (a 1 MB list of 330,000 numbers peaked at 310 MB). A real call's size is in its strings, not its structure.
MAX_LITERAL_ITEMS = 10_000
_TRIGGER = re.compile(r"[{`]")
_IN_OBJECT = re.compile(r"""[{}\[\]"',:]""")
_IN_STRING = {'"': re.compile(r'["\\\n]'), "'": re.compile(r"['\\\n]")}
_FENCE = re.compile(r"```[A-Za-z0-9_+-]{0,20}[ \t]*\n\s*(?=\{)")  # an opening fence whose content starts with {
_FENCE_PREFIX = re.compile(r"`{1,3}|```[A-Za-z0-9_+-]{0,20}[ \t]*(?:\n\s*)?")  # what could still become one
_NOT_START = re.compile(r"\{\s*[^\s\"']")  # a `{` whose first non-space is no quote starts no call
_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LITERAL_NAMES = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}

Piece = Union[str, dict[str, Any]]  # text, or an OpenAI tool call {id, type, function: {name, arguments}}


class TextCallScanner:
    """Splits one answer's text, fed in pieces, into text and tool calls naming the declared `names`."""

    _replay: str  # held text that turned out not to be a call, scanned again (set by _clear)

    def __init__(self, names: Iterable[str], limit: int = DEFAULT_LIMIT) -> None:
        self.names = frozenset(names)
        self.limit = max(limit, 2 * MAX_START)
        self.calls = 0  # calls found so far
        self._clear()

    @property
    def idle(self) -> bool:
        """Nothing held: text without `{` or a backtick passes straight through."""
        return self._mode == "text"

    def feed(self, text: str) -> list[Piece]:
        """The text and calls that are certain after `text`; what could still be a call is held."""
        out: list[Piece] = []
        stack = [(text, 0)]
        while stack:
            seg, pos = stack.pop()
            while pos < len(seg):
                pos = self._step(seg, pos, out)
                if self._replay:  # a short held prefix that turned out not to be a call is scanned again
                    stack.append((seg, pos))
                    seg, pos, self._replay = self._replay, 0, ""
        return _merged(out)

    def finish(self) -> list[Piece]:
        """The end of the answer: whatever is held was not a complete call and goes out as text."""
        out: list[Piece] = []
        if self._mode != "text":
            self._release(out)
        return _merged(out)

    def _step(self, seg: str, pos: int, out: list[Piece]) -> int:
        if self._mode == "text":
            found = _TRIGGER.search(seg, pos)
            if found is None:
                _text(out, seg[pos:])
                return len(seg)
            _text(out, seg[pos:found.start()])
            pos = found.start()
            if seg[pos] == "`":
                return self._scan_fence(seg, pos, out)
            if _NOT_START.match(seg, pos):  # the common `{` of code and prose, decided without holding it
                _text(out, "{")
                return pos + 1
            self._begin_object()
            return self._scan(seg, pos, out)
        if self._mode == "fence":
            return self._scan_fence(seg, pos, out)
        if self._mode == "object":
            return self._scan(seg, pos, out)
        return self._scan_after(seg, pos, out)

    # ------------------------------------------------------------------ holding and releasing
    def _clear(self) -> None:
        self._mode = "text"  # text | fence (an opening fence, undecided) | object | after (a fenced call done)
        self._held: list[str] = []  # what is held back: the fence opener, then the object(s) so far
        self._size = 0
        self._fence = ""  # the opening fence of the held candidate
        self._pending: list[dict[str, Any]] = []  # calls found inside a fence that has not closed yet
        self._after_calls = 0  # where the text after the pending calls starts in the held text
        self._replay = ""
        self._begin_object(keep_mode=True)

    def _emit(self, out: list[Piece], calls: list[dict[str, Any]]) -> None:
        out.extend(calls)
        self.calls += len(calls)

    def _hold(self, text: str) -> None:
        if text:
            self._held.append(text)
            self._size += len(text)

    def _release(self, out: list[Piece]) -> None:
        """Everything held goes out as text (calls already found in a fence stay calls, after its opener)."""
        held = "".join(self._held)
        if self._pending:
            _text(out, self._fence)
            self._emit(out, self._pending)
            _text(out, held[self._after_calls:])
        else:
            _text(out, held)
        self._clear()

    def _reject(self, out: list[Piece]) -> None:
        """Not a call. Before its first key was known (a short prefix): the trigger character goes out and the
        rest is scanned again (at most 2 * MAX_START characters, so still linear). After: all of it is text."""
        if self._keys or self._pending:
            self._release(out)
            return
        held = "".join(self._held)
        _text(out, held[0])
        self._clear()
        self._replay = held[1:]

    # ------------------------------------------------------------------ fences
    def _scan_fence(self, seg: str, pos: int, out: list[Piece]) -> int:
        """At a backtick (or with an opening fence held): decided on the next MAX_START characters, the same
        however the text was split. An opening ``` fence whose content starts with `{` is held with the object."""
        held = "".join(self._held)
        probe = held + seg[pos:pos + MAX_START + 1]
        opened = _FENCE.match(probe)
        if opened:
            self._fence = opened.group()
            self._held, self._size = [self._fence], len(self._fence)
            self._begin_object()
            return pos + opened.end() - len(held)
        if len(probe) - len(held) == len(seg) - pos and len(probe) <= MAX_START and _FENCE_PREFIX.fullmatch(probe):
            self._mode = "fence"  # the text so far could still open a fence: wait for more
            self._hold(seg[pos:])
            return len(seg)
        _text(out, probe[0])  # not a fence around a call: the backtick is text, the rest is scanned again
        self._clear()
        if held:
            self._replay = held[1:]
            return pos
        return pos + 1

    def _scan_after(self, seg: str, pos: int, out: list[Piece]) -> int:
        """After a fenced call: whitespace, then the closing fence (calls taken, fence gone) or another call."""
        char = seg[pos]
        tail = "".join(self._held)[self._after_calls:].lstrip()
        if char == "{" and not tail:
            self._begin_object()
            return self._scan(seg, pos, out)
        if (char in " \t\r\n" and not tail) or "```".startswith(tail + char):
            if self._size - self._after_calls > MAX_START:
                self._release(out)
                return pos
            self._hold(char)
            if tail + char == "```":
                self._emit(out, self._pending)
                self._clear()
            return pos + 1
        self._release(out)
        return pos

    # ------------------------------------------------------------------ objects
    def _begin_object(self, keep_mode: bool = False) -> None:
        if not keep_mode:
            self._mode = "object"
        self._object_at = self._size  # where the current object starts in the held text
        self._depth = 0
        self._quote = ""  # inside a string: its quote character
        self._escaped = False  # the string's next character is escaped (a backslash ended the last piece)
        self._expect_key = False  # the next top-level string is a key
        self._keys = 0
        self._key = ""  # the top-level key whose value comes next
        self._capture: list[str] | None = None  # a top-level key, or the value of name/type, being read
        self._capture_len = 0
        self._newlines: list[int] = []  # raw newlines inside strings (offsets in the object): literal repair
        self._items = 0  # structural characters outside strings: the size of a literal's AST

    def _scan(self, seg: str, pos: int, out: list[Piece]) -> int:
        """Advance over the object from `pos`: to the end of `seg`, or to the character that decides it."""
        start = pos
        # Never look further than the candidate may grow: MAX_START before its first key, `limit` after.
        budget = (MAX_START if self._keys == 0 else self.limit) - (self._size - self._object_at) + 1
        size = min(len(seg), pos + max(budget, 1))
        verdict = ""  # "" (go on) | "closed" | "reject"
        while pos < size and not verdict:
            if self._keys and size < len(seg):  # the first key is known: the larger budget applies
                size = min(len(seg), start + self.limit - (self._size - self._object_at) + 1)
            if self._quote:
                pos, verdict = self._in_string(seg, pos, start, size)
                continue
            found = _IN_OBJECT.search(seg, pos, size)
            if found is None:
                if self._keys == 0 and not seg[pos:size].isspace():
                    verdict = "reject"
                pos = size
                break
            at = found.start()
            if self._keys == 0 and at > pos and not seg[pos:at].isspace():
                pos, verdict = at + 1, "reject"  # only whitespace comes before the first key
                break
            pos = at + 1
            verdict = self._structure(seg[at])
        self._hold(seg[start:pos])
        if verdict == "reject" or (self._keys == 0 and self._size - self._object_at > MAX_START):
            self._reject(out)
        elif self._size - self._object_at > self.limit:
            self._release(out)  # too large to be taken: text, and not scanned again
        elif verdict == "closed":
            self._closed(out)
        return pos

    def _structure(self, char: str) -> str:
        """One structural character outside strings: the verdict so far."""
        self._items += 1
        if char in "\"'":
            self._quote = char
            if self._depth == 1 and (self._expect_key or self._key in ("name", "type")):
                self._capture, self._capture_len = [], 0
            elif self._keys == 0:
                return "reject"
            return ""
        if char in "{[":
            if self._depth == 0:
                self._expect_key = True
            elif self._keys == 0:
                return "reject"
            self._depth += 1
            return ""
        if char in "}]":
            self._depth -= 1
            if self._depth == 0:
                return "closed"
            return "reject" if self._keys == 0 else ""
        if self._depth == 1 and char == ",":
            self._expect_key, self._key = True, ""
        elif self._keys == 0:
            return "reject"
        return ""

    def _in_string(self, seg: str, pos: int, start: int, size: int) -> tuple[int, str]:
        """Advance inside a string, up to `size`; returns (position, verdict)."""
        if self._escaped:
            self._escaped = False
            self._capture_text(seg[pos])
            return pos + 1, ""
        found = _IN_STRING[self._quote].search(seg, pos, size)
        if found is None:
            self._capture_text(seg[pos:size])
            return size, ""
        at = found.start()
        self._capture_text(seg[pos:at])
        char = seg[at]
        if char == "\\":
            self._escaped = True
            self._capture_text(char)
            return at + 1, ""
        if char == "\n":
            self._newlines.append(self._size - self._object_at + at - start)
            self._capture_text(char)
            return at + 1, ""
        self._quote = ""
        return at + 1, "" if self._string_closed() else "reject"

    def _capture_text(self, piece: str) -> None:
        if self._capture is not None and piece:
            self._capture_len += len(piece)
            if self._capture_len <= MAX_WORD:  # longer: neither a key nor a tool name; the check fails
                self._capture.append(piece)

    def _string_closed(self) -> bool:
        """A top-level string ended: False when it rules the candidate out (unknown key, undeclared name)."""
        if self._capture is None:
            return True
        word = "".join(self._capture) if self._capture_len <= MAX_WORD else "\x00"
        self._capture = None
        if self._expect_key:
            self._expect_key = False
            self._keys += 1
            self._key = word
            return word in CALL_KEYS
        key, self._key = self._key, ""
        if key == "name":
            return word in self.names
        return word in CALL_TYPES

    def _closed(self, out: list[Piece]) -> None:
        """The object closed: a call, or text."""
        held = "".join(self._held)
        call = _call_of(_parse(held[self._object_at:], self._newlines, self._items), self.names)
        if call is None:
            self._release(out)
        elif not self._fence:
            self._emit(out, [call])
            self._clear()
        else:  # inside a fence: taken once the fence closes (or, if it does not, after its opener)
            self._pending.append(call)
            self._mode = "after"
            self._after_calls = self._size


def _text(out: list[Piece], text: str) -> None:
    if text:
        out.append(text)


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Adjacent text pieces joined (once, at the end: += on a growing string is quadratic)."""
    merged: list[Piece] = []
    run: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            run.append(piece)
            continue
        if run:
            merged.append("".join(run))
            run = []
        merged.append(piece)
    if run:
        merged.append("".join(run))
    return merged


# ---------------------------------------------------------------------- parsing a closed candidate


def _parse(text: str, newlines: list[int], items: int) -> Any:
    """A closed candidate as JSON, else as a Python literal (raw newlines inside its strings escaped)."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    if items > MAX_LITERAL_ITEMS:
        return None
    if newlines:
        pieces, last = [], 0
        for at in newlines:
            pieces.append(text[last:at])
            pieces.append("\\n")
            last = at + 1
        pieces.append(text[last:])
        text = "".join(pieces)
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


def _literal(node: ast.AST) -> Any:
    """ast.literal_eval's subset (plus JSON's true/false/null), so a call written half in JSON still parses."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_literal(key): _literal(value) for key, value in zip(node.keys, node.values) if key is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)):
        number = node.operand.value
        assert isinstance(number, (int, float))
        return -number if isinstance(node.op, ast.USub) else number
    raise ValueError("not a literal")


def _call_of(value: Any, names: frozenset[str]) -> dict[str, Any] | None:
    """An OpenAI tool call for a parsed candidate that names a declared tool, else None."""
    if not isinstance(value, dict) or not set(value) <= CALL_KEYS:
        return None
    if value.get("type", "tool_use") not in CALL_TYPES:
        return None
    body = value
    if isinstance(value.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        body = value["function"]
    name = body.get("name")
    key = next((k for k in ARGUMENT_KEYS if k in body), None)
    if not isinstance(name, str) or name not in names or key is None:
        return None
    arguments = _arguments(body[key])
    if arguments is None:
        return None
    call_id = value.get("id")
    if not (isinstance(call_id, str) and _CALL_ID.fullmatch(call_id)):
        call_id = new_tool_call_id()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _arguments(value: Any) -> str | None:
    """Arguments as OpenAI's JSON string: an object, or a string holding one."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return value if isinstance(parsed, dict) else None
    if not isinstance(value, dict):
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return None


def could_hold_call(text: str) -> bool:
    """False when `text` has neither `{` nor a backtick: nothing in it can start a call."""
    return "{" in text or "`" in text
