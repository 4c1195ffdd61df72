"""Documentation pages behind the platform facts this package encodes.

Every docstring or message that relies on a platform fact cites one of these, so a reader can
re-check the fact where Google, Istio or the MCP specification state it.
"""

CLOUD_RUN_SESSION_AFFINITY = "https://cloud.google.com/run/docs/configuring/session-affinity"
CLOUD_RUN_REQUEST_TIMEOUT = "https://cloud.google.com/run/docs/configuring/request-timeout"
CLOUD_RUN_INGRESS = "https://cloud.google.com/run/docs/securing/ingress"
CLOUD_RUN_CONCURRENCY = "https://cloud.google.com/run/docs/about-concurrency"
CLOUD_RUN_DIRECT_VPC = "https://cloud.google.com/run/docs/configuring/networking-best-practices"
CLOUD_RUN_LOCATIONS = "https://cloud.google.com/run/docs/locations"
SERVERLESS_NEG = "https://cloud.google.com/load-balancing/docs/negs/serverless-neg-concepts"
BACKEND_SERVICE_API = "https://cloud.google.com/compute/docs/reference/rest/v1/backendServices"
MANAGED_CERTIFICATES = "https://cloud.google.com/load-balancing/docs/ssl-certificates/google-managed-certs"
MEMORYSTORE_TLS = "https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption"
MEMORYSTORE_AUTH = "https://cloud.google.com/memorystore/docs/redis/about-redis-auth"
MEMORYSTORE_NETWORKING = "https://cloud.google.com/memorystore/docs/redis/networking"
PRIVATE_SERVICES_ACCESS = "https://cloud.google.com/vpc/docs/configure-private-services-access"
MCP_TRANSPORTS = "https://modelcontextprotocol.io/specification/2025-11-25/basic/transports"
MCP_2026_CHANGELOG = "https://modelcontextprotocol.io/specification/2026-07-28/changelog"
MCP_CONSISTENT_HASHING = "https://github.com/modelcontextprotocol/modelcontextprotocol/pull/325"
ISTIO_DESTINATION_RULE = "https://istio.io/latest/docs/reference/config/networking/destination-rule/"
ISTIO_VIRTUAL_SERVICE = "https://istio.io/latest/docs/reference/config/networking/virtual-service/"
CLOUD_RUN_ENV_VARS = "https://cloud.google.com/run/docs/configuring/services/environment-variables"
CLOUD_RUN_CPU = "https://cloud.google.com/run/docs/configuring/services/cpu"
CLOUD_RUN_MEMORY = "https://cloud.google.com/run/docs/configuring/services/memory-limits"
URL_MAP_API = "https://cloud.google.com/compute/docs/reference/rest/v1/urlMaps"
