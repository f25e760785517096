"""cot_proxy: an OpenAI-compatible gateway (Flask + requests + Gunicorn) in front of OpenAI-style, ARGO and DashScope backends.

The modules at the top are the shared ones every folder may use (errors.py, jsonfast.py, key_files.py, turns.py,
per_process.py, private_names.py, redaction.py, room_face.py, shared_cells.py, stop_signals.py) and the command
lines (cli.py, firstrun.py), which may import every folder. The shared modules:
May import: the shared modules.
"""

__version__ = "1.0.0"
