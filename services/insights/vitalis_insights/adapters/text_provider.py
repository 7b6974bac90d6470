"""Who writes narratives and coach replies: deterministic templates, or an OpenAI-compatible endpoint.

The facts (numbers with their evidence) are always gathered first from the user's data; a provider
only words them. A user's data goes to the model only when they consented to language-model
processing (identity's ``language-model-processing`` consent); otherwise templates write.
:class:`OpenAICompatibleProvider` streams ``/chat/completions`` with ``httpx``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Final, Protocol

import grpc
import httpx

from vitalis.identity.v1 import consent_pb2, consent_service_pb2, consent_service_pb2_grpc
from vitalis_insights.settings import InsightsSettings
from vitalis_runtime.errors import Unavailable
from vitalis_runtime.service_auth import ServiceCredentials

LANGUAGE_MODEL_CONSENT: Final = "language-model-processing"


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


class ConsentChecker(Protocol):
    """Whether a user has consented to language-model processing of their data."""

    async def granted(self, user_id: uuid.UUID) -> bool:
        """True only for a consent currently granted."""
        ...


class GrpcConsentChecker:
    """identity's ConsentService.GetConsent for ``language-model-processing``, acting for the user."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = consent_service_pb2_grpc.ConsentServiceStub(channel)
        self._credentials = credentials

    async def granted(self, user_id: uuid.UUID) -> bool:
        """A consent never given reads as not granted; identity being unreachable is UNAVAILABLE."""
        try:
            consent = await self._stub.GetConsent(
                consent_service_pb2.GetConsentRequest(
                    name=f"users/{user_id}/consents/{LANGUAGE_MODEL_CONSENT}"
                ),
                metadata=self._credentials.metadata(user_id),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    "identity cannot be reached to check consent", reason="DEPENDENCY_UNAVAILABLE"
                ) from error
            return False
        return consent.state == consent_pb2.CONSENT_STATE_GRANTED


class TextProviders:
    """Chooses the writer of a user's texts: the model only with their consent, templates otherwise."""

    def __init__(self, model: TextProvider | None, consents: ConsentChecker | None) -> None:
        self._model = model
        self._consents = consents
        self._templates = TemplateProvider()

    async def for_user(self, user_id: uuid.UUID) -> TextProvider:
        """The model when one is configured and the user's consent can be confirmed, else templates."""
        if self._model is None or self._consents is None:
            return self._templates
        return self._model if await self._consents.granted(user_id) else self._templates


def model_from_settings(settings: InsightsSettings) -> TextProvider | None:
    """The configured OpenAI-compatible endpoint, if ``llm_base_url`` is set."""
    if not settings.llm_base_url:
        return None
    return OpenAICompatibleProvider(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        model=settings.llm_model,
        name=settings.llm_provider_name,
    )
