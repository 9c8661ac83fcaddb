// The interactive API reference: Swagger UI (shipped by the fastapi-offline package and
// served by this server) over this server's OpenAPI document. A file of its own, not an
// inline script, so the page keeps the explorer's Content-Security-Policy.
"use strict";

window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // no badge fetched from elsewhere
  presets: [SwaggerUIBundle.presets.apis],
});
