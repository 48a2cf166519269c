"""The OpenAI-compatible protocol of the emulator, under ``/v1``.

``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses``
and ``GET /v1/models`` (``/v1/models/{id}``), as OpenAI, vLLM, Ollama, llama.cpp's server
and gateways speak them: deterministic answers (``emulator.openai.answer``), usage counted
in words (``emulator.openai.messages``), validation that names the field, faults and
framing variations on demand (``emulator.faults``, ``emulator.openai.sse``).
"""
