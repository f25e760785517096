"""Observers: what is recorded about requests once they are answered (metrics, JSONL journals, the DEBUG line,
the body taps journals read) and the pages that show it (/health, /ui, /metrics: own_pages.py answers the proxy's
own routes, handed values, not the call); traces are tracing's (argoproxy/tracing/).

Rule: an observer reads a finished call's frozen records (pipeline/call_records.py), never the live call; it never
changes an answer and never breaks one.

May import: the shared modules, config, spend, meter, upstream, edge, pipeline, teamkeys, admission, requestlog.
"""
