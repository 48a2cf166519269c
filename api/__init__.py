"""The HTTP API: native and OpenAI-compatible routes, auth and limits, live events."""
