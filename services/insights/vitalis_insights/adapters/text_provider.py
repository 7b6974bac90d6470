"""Who writes narratives and coach replies: deterministic templates, or an OpenAI-compatible endpoint.

The facts (numbers with their evidence) are always gathered first from the user's data; a provider
only words them. :class:`OpenAICompatibleProvider` streams ``/chat/completions`` with ``httpx``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol

import httpx

from vitalis_insights.settings import InsightsSettings
from vitalis_runtime.errors import Unavailable


class TextProvider(Protocol):
    """Writes a text from instructions and a prompt, streamed in fragments."""

    name: str
    model: str

    def stream(self, instructions: str, prompt: str, fallback: str) -> AsyncIterator[str]:
        """Fragments of the text; ``fallback`` is the deterministic template text."""
        ...


class TemplateProvider:
    """The built-in deterministic texts: the template text itself, a line at a time."""

    name = "template"
    model = ""

    async def stream(self, instructions: str, prompt: str, fallback: str) -> AsyncIterator[str]:  # noqa: ARG002
        """The template text, in fragments (templates need no instructions or prompt)."""
        for line in fallback.splitlines(keepends=True):
            yield line


class OpenAICompatibleProvider:
    """Any endpoint speaking OpenAI's chat completions with server-sent events."""

    def __init__(
        self, *, base_url: str, api_key: str | None, model: str, name: str, timeout: float = 60.0
    ) -> None:
        self.name = name
        self.model = model
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout

    async def stream(self, instructions: str, prompt: str, fallback: str) -> AsyncIterator[str]:  # noqa: ARG002
        """Stream the model's answer; UNAVAILABLE when the endpoint cannot be reached or refuses."""
        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = {
            "model": self.model,
            "stream": True,
            "messages": [{"role": "system", "content": instructions}, {"role": "user", "content": prompt}],
        }
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout) as client,
                client.stream(
                    "POST", f"{self._base_url}/chat/completions", json=body, headers=headers
                ) as response,
            ):
                if response.status_code != 200:
                    raise Unavailable(
                        f"the language-model provider answered HTTP {response.status_code}",
                        reason="PROVIDER_ERROR",
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    choices = json.loads(data).get("choices") or [{}]
                    fragment = (choices[0].get("delta") or {}).get("content")
                    if fragment:
                        yield fragment
        except httpx.HTTPError as error:
            raise Unavailable(
                f"the language-model provider cannot be reached: {error}", reason="PROVIDER_UNAVAILABLE"
            ) from error


def provider_from_settings(settings: InsightsSettings) -> TextProvider:
    """The configured provider: an OpenAI-compatible endpoint when ``llm_base_url`` is set, else templates."""
    if settings.llm_base_url:
        return OpenAICompatibleProvider(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            model=settings.llm_model,
            name=settings.llm_provider_name,
        )
    return TemplateProvider()
