"""SessionStore: Memorystore for Redis holding MCP session metadata, reachable only privately.

The store is what lets any replica serve a plain POST of a session and lets a restarted replica
lose nothing. Its settings follow Memorystore's documentation:
- AUTH on (https://cloud.google.com/memorystore/docs/redis/about-redis-auth);
- in-transit TLS ``SERVER_AUTHENTICATION``, settable only at creation; clients must trust
  ``server_ca_certs``, which rotate every 180 days
  (https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption);
- ``PRIVATE_SERVICE_ACCESS`` connect mode, which needs the reserved range and service networking
  connection that :class:`~mcp_affinity.network.Network` creates
  (https://cloud.google.com/memorystore/docs/redis/networking).

The connection URL ``rediss://:AUTH@HOST:PORT`` exists only as a Pulumi secret and as a Secret
Manager secret version; consumers are granted ``roles/secretmanager.secretAccessor`` on it.
"""

from __future__ import annotations

from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field

from ._args import Args, Prefix, Region, StrInput

Day = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
SnapshotPeriod = Literal["ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"]


class MaintenanceWindowArgs(Args):
    """A weekly maintenance window: ``day`` and start ``hour`` (0-23, UTC); it lasts one hour."""

    day: Day
    hour: int = Field(ge=0, le=23)


class SessionStoreArgs(Args):
    """Arguments of :class:`SessionStore`.

    - ``tier``: ``BASIC`` (one node) or ``STANDARD_HA`` (replicated, automatic failover); there is
      no in-place change between tiers.
    - ``memory_size_gb``: capacity in GiB (1 to 300).
    - ``read_replicas``: 0 to 5 read replicas, STANDARD_HA only, needs 5 GiB or more.
    - ``rdb_snapshot_period``: RDB persistence period, or None for no persistence.
    - ``deletion_protection``: refuse deletion in Google Cloud and protect the resources in Pulumi.
    """

    prefix: Prefix
    region: Region
    network_id: StrInput
    project: Optional[str] = None
    tier: Literal["BASIC", "STANDARD_HA"] = "BASIC"
    memory_size_gb: int = Field(default=1, ge=1, le=300)
    redis_version: str = Field(default="REDIS_7_2", pattern=r"^REDIS_\d+(_\d+)?$")
    read_replicas: int = Field(default=0, ge=0, le=5)
    rdb_snapshot_period: Optional[SnapshotPeriod] = None
    maintenance_window: Optional[MaintenanceWindowArgs] = None
    deletion_protection: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    private_services_connection: Optional[pulumi.Resource] = None

    def model_post_init(self, _context: object) -> None:
        if self.read_replicas and self.tier != "STANDARD_HA":
            raise ValueError("read_replicas needs tier STANDARD_HA")
        if self.read_replicas and self.memory_size_gb < 5:
            raise ValueError("read_replicas needs memory_size_gb of 5 or more")


class SessionStoreRef(Args):
    """How a consumer reaches a session store: the Secret Manager secret holding the URL
    (``projects/P/secrets/S``), the version to read and the server CA certificate (PEM).

    Built by :meth:`SessionStore.ref`, or by hand for a store of another stack.
    """

    secret_id: StrInput
    secret_version: StrInput
    ca_certificate: StrInput


class SessionStore(pulumi.ComponentResource):
    """Memorystore for Redis with AUTH, TLS and private services access, plus its URL secret.

    Outputs: ``host`` (private IP), ``port`` (6378 with TLS), ``ca_certificate`` (PEM of the
    current server CA), ``connection_url`` (Pulumi secret), ``secret_id`` (Secret Manager secret
    id) and ``secret_version`` (its version number, a string).
    """

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    ca_certificate: pulumi.Output[str]
    connection_url: pulumi.Output[str]
    secret_id: pulumi.Output[str]
    secret_version: pulumi.Output[str]

    def __init__(self, name: str, args: SessionStoreArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:SessionStore", name, None, opts)
        protect = args.deletion_protection
        depends = [args.private_services_connection] if args.private_services_connection else []
        instance = gcp.redis.Instance(
            name,
            opts=pulumi.ResourceOptions(parent=self, protect=protect, depends_on=depends,
                                        additional_secret_outputs=["authString"]),
            **_instance_args(args),
        )
        self.host = instance.host
        self.port = instance.port
        self.ca_certificate = instance.server_ca_certs.apply(lambda certs: certs[0].cert if certs else "")
        self.connection_url = pulumi.Output.secret(
            pulumi.Output.format("rediss://:{0}@{1}:{2}", instance.auth_string, instance.host, instance.port)
        )
        secret = gcp.secretmanager.Secret(
            f"{name}-url",
            secret_id=f"{args.prefix}-session-store-url",
            project=args.project,
            replication={"auto": {}},
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        version = gcp.secretmanager.SecretVersion(
            f"{name}-url",
            secret=secret.id,
            secret_data=self.connection_url,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secret_id = secret.secret_id
        self._secret_resource_id = secret.id
        self.secret_version = version.version
        self.register_outputs({
            "host": self.host,
            "port": self.port,
            "ca_certificate": self.ca_certificate,
            "connection_url": self.connection_url,
            "secret_id": self.secret_id,
            "secret_version": self.secret_version,
        })

    def ref(self) -> "SessionStoreRef":
        """What a consumer needs to read the store: secret, version and CA certificate."""
        return SessionStoreRef(secret_id=self._secret_resource_id, secret_version=self.secret_version,
                               ca_certificate=self.ca_certificate)


def _instance_args(args: SessionStoreArgs) -> dict:
    window = args.maintenance_window
    return dict(
        name=f"{args.prefix}-sessions",
        project=args.project,
        region=args.region,
        tier=args.tier,
        memory_size_gb=args.memory_size_gb,
        redis_version=args.redis_version,
        authorized_network=args.network_id,
        connect_mode="PRIVATE_SERVICE_ACCESS",
        auth_enabled=True,
        transit_encryption_mode="SERVER_AUTHENTICATION",
        read_replicas_mode="READ_REPLICAS_ENABLED" if args.read_replicas else "READ_REPLICAS_DISABLED",
        replica_count=args.read_replicas or None,
        persistence_config=(
            {"persistence_mode": "RDB", "rdb_snapshot_period": args.rdb_snapshot_period}
            if args.rdb_snapshot_period else {"persistence_mode": "DISABLED"}
        ),
        maintenance_policy=(
            {"weekly_maintenance_windows": [{"day": window.day, "start_time": {"hours": window.hour, "minutes": 0}}]}
            if window else None
        ),
        deletion_protection=args.deletion_protection,
        labels=args.labels,
    )
