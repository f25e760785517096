"""The meter: what a request may cost at most and what an answer cost, in tokens and dollars, for every door and
backend, read once per call; every record of a call reads it and nothing else (docs/reservations.md).

- the worst case (worst.py: `Asked`, read lazily, once): the request's text (tokens.py, and the chat template
  around it, template_overhead.py), its images, audio and files (media.py) by the rules of the model's family
  (families.py: each maker's published rule, with its source), each inline part measured as its format's decoder
  finds it, never by its header (sizes.py: Pillow's pictures.py, pypdf's pdfs.py, sounds.py, zipfile's zips.py;
  their CPU bounded, deadline.py), and the most each of its answers may generate, times the answers it asks
  for. Key limits and team keys reserve it, the fair queue weighs a request by it, a trace records it; in
  dollars (dollars.py) at the prices of the deployments that may serve it (argoproxy/spend/ finds them);
- the answer's reading (used.py: `Used`): its tokens and its cost, read once as the call ends (the answer side,
  pipeline/answers.py); the usage rows, /metrics, the status page and the trace take it as it is.

Nothing here reads a request that no limit, budget, queue or trace needs: an unread `Asked` costs one object.
The rest of the product imports the meter by its face (the names below, each read from its module on first use:
argoproxy/room_face.py), never a module inside.

May import: the shared modules, config, spend.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argoproxy.meter.dollars import most_nanos as most_nanos
    from argoproxy.meter.media import media_tokens as media_tokens
    from argoproxy.meter.template_overhead import estimated_prompt as estimated_prompt
    from argoproxy.meter.tokens import count_request_tokens as count_request_tokens
    from argoproxy.meter.tokens import count_text as count_text
    from argoproxy.meter.tokens import count_texts as count_texts
    from argoproxy.meter.tokens import count_tool_calls as count_tool_calls
    from argoproxy.meter.tokens import encoding as token_encoding
    from argoproxy.meter.tokens import usage as usage_block
    from argoproxy.meter.used import Used as Used
    from argoproxy.meter.used import counted as counted
    from argoproxy.meter.worst import ARGO as ARGO
    from argoproxy.meter.worst import DASHSCOPE as DASHSCOPE
    from argoproxy.meter.worst import NOTHING as NOTHING
    from argoproxy.meter.worst import OPENAI as OPENAI
    from argoproxy.meter.worst import Asked as Asked
    from argoproxy.meter.worst import Reading as Reading
    from argoproxy.meter.worst import Spelled as Spelled
    from argoproxy.meter.worst import Worst as Worst
    from argoproxy.meter.worst import shape_of as shape_of
    from argoproxy.meter.worst import supplied as supplied
    from argoproxy.meter.worst import worst_of as worst_of
else:
    from argoproxy.room_face import lazy_face

    __getattr__ = lazy_face(__name__, {
        "most_nanos": "dollars", "media_tokens": "media", "estimated_prompt": "template_overhead",
        "count_request_tokens": "tokens", "count_text": "tokens", "count_texts": "tokens",
        "count_tool_calls": "tokens", "token_encoding": "tokens:encoding", "usage_block": "tokens:usage",
        "Used": "used", "counted": "used", "ARGO": "worst", "DASHSCOPE": "worst", "NOTHING": "worst",
        "OPENAI": "worst", "Asked": "worst", "Reading": "worst", "Spelled": "worst", "Worst": "worst",
        "shape_of": "worst", "supplied": "worst", "worst_of": "worst"})

__all__ = ["most_nanos", "media_tokens", "estimated_prompt", "count_request_tokens", "count_text", "count_texts",
           "count_tool_calls", "token_encoding", "usage_block", "Used", "counted", "ARGO", "DASHSCOPE", "NOTHING",
           "OPENAI", "Asked", "Reading", "Spelled", "Worst", "shape_of", "supplied", "worst_of"]
