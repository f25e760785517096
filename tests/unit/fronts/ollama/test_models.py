"""The proxy's model list as Ollama's show (argoproxy/fronts/ollama/models.py)."""

from __future__ import annotations


def test_show_gives_the_context_length_the_upstream_lists():
    """Where clients read it: num_ctx in parameters (Continue), <architecture>.context_length (VS Code)."""
    from argoproxy.fronts.ollama.models import show
    for entry, context in (({"id": "v", "max_model_len": 32768}, 32768),
                           ({"id": "l", "meta": {"n_ctx_train": 131072, "n_vocab": 5}}, 131072),
                           ({"id": "s", "meta": {"n_ctx": 8192, "n_ctx_train": 131072}}, 8192),  # as served
                           ({"id": "o", "context_length": 200000}, 200000),
                           ({"id": "x", "max_model_len": "big", "meta": [1]}, None),
                           ({"id": "y", "context_window": True}, None)):
        shown = show(entry)
        info = shown["model_info"]
        if context is None:
            assert shown["parameters"] == "" and ".context_length" not in info
        else:
            assert shown["parameters"] == f"num_ctx {context}"
            assert info[info["general.architecture"] + ".context_length"] == context


def test_show_says_vision_for_a_model_listed_with_image_input():
    from argoproxy.fronts.ollama.models import show
    seeing = {"id": "g", "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]}}
    assert show(seeing)["capabilities"] == ["completion", "tools", "vision"]
    assert show({"id": "t", "architecture": {"input_modalities": ["text"]}})["capabilities"] == ["completion", "tools"]
    assert show({"id": "j", "architecture": "llama"})["capabilities"] == ["completion", "tools"]
