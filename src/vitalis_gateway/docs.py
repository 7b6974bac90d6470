"""The ``/docs`` page: Swagger UI (from a CDN) reading the gateway's ``/openapi.json``."""

from __future__ import annotations

from html import escape

SWAGGER_UI_VERSION = "5"
_CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"


def render_docs_page(*, title: str = "Vitalis API", openapi_url: str = "/openapi.json") -> str:
    """A self-contained HTML page that renders the OpenAPI document served at ``openapi_url``."""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)}</title>
  <link rel="stylesheet" href="{_CDN}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{_CDN}/swagger-ui-bundle.js" crossorigin="anonymous"></script>
  <script>
    window.addEventListener("load", () => {{
      window.ui = SwaggerUIBundle({{
        url: {escape(openapi_url)!r},
        dom_id: "#swagger-ui",
        deepLinking: true,
        persistAuthorization: true,
        withCredentials: true,
      }});
    }});
  </script>
</body>
</html>
"""
