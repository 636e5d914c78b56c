"""The one error the LLM factory raises: an endpoint that cannot be built or reached (an operator problem)."""

from __future__ import annotations


class LLMError(RuntimeError):
    """The LLM endpoint cannot be configured, loaded or reached; the message says what to do."""
