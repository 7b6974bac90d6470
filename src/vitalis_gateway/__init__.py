"""The Vitalis gateway: Envoy configuration, OpenAPI document and docs page from one source.

``gateway/gateway.yaml`` plus the contracts' descriptor set go in; for each target (``local``,
``kubernetes``) come out ``envoy.yaml``, ``openapi.json``, ``docs.html`` and the descriptor set the
JSON transcoder reads. ``python -m vitalis_gateway render`` is the command; the functions below
are the API the platform runner and the end-to-end tests use.
"""

from vitalis_gateway.artifacts import GatewayFiles, render_gateway_files
from vitalis_gateway.docs import render_docs_page
from vitalis_gateway.envoy_config import render_envoy_config
from vitalis_gateway.envoy_process import EnvoyError, envoy_binary, running_envoy, validate_config
from vitalis_gateway.openapi import render_openapi
from vitalis_gateway.plan import GatewayPlan, plan_gateway
from vitalis_gateway.source import GatewaySource, load_source

__all__ = [
    "EnvoyError",
    "GatewayFiles",
    "GatewayPlan",
    "GatewaySource",
    "envoy_binary",
    "load_source",
    "plan_gateway",
    "render_docs_page",
    "render_envoy_config",
    "render_gateway_files",
    "render_openapi",
    "running_envoy",
    "validate_config",
]
