"""Serving: the one door (door.py: a Request in, an Answer out), build_proxy that assembles everything behind it,
the thin WSGI layer (every request to the door, Flask's dispatch passed by), and Gunicorn's options, master hooks and own errors.

Rule: the only folder that wires the others together; nothing outside it imports from it except the command
lines (argoproxy/cli.py, argoproxy/firstrun.py, argoproxy/launch/; they hand teamkeys/cli.py its settings reader).

May import: every folder but the command lines.
"""
