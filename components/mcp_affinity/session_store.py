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

from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field, model_validator

from .naming import REDIS_INSTANCE, SECRET, PhysicalName, physical_name
from .network import NetworkRef
from .settings import Faults, Int, Model, Region, Settings, StrInput, takes_settings
from .wire import REDIS, SECRET_MANAGER_SECRET

Day = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
SnapshotPeriod = Literal["ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"]
RedisVersion = Literal["REDIS_6_X", "REDIS_7_0", "REDIS_7_2"]


class MaintenanceWindowArgs(Model):
    """A weekly maintenance window of one hour."""

    day: Day = Field(description="the day the window starts: `MONDAY` ... `SUNDAY`.")
    hour: Int = Field(ge=0, le=23, description="start hour, 0 to 23, UTC.")


class SessionStoreArgs(Settings):
    """Settings of :class:`SessionStore`.

    Source: https://cloud.google.com/memorystore/docs/redis/reference/rest/v1/projects.locations.instances
    """

    region: Optional[Region] = Field(
        default=None,
        description="where the instance lives; None takes the network's first region.")
    tier: Literal["BASIC", "STANDARD_HA"] = Field(
        default="BASIC",
        description="`BASIC` (one node) or `STANDARD_HA` (replicated, automatic failover); there is no in-place "
                    "change between tiers.")
    memory_size_gb: Int = Field(default=1, ge=1, le=300, description="capacity in GiB (1 to 300).")
    redis_version: RedisVersion = Field(default="REDIS_7_2", description="the Redis version of the instance.")
    read_replicas: Int = Field(
        default=0, ge=0, le=5,
        description="0 to 5 read replicas, STANDARD_HA only, needs 5 GiB or more.")
    rdb_snapshot_period: Optional[SnapshotPeriod] = Field(
        default=None,
        description="RDB persistence period, or None for no persistence.")
    maintenance_window: Optional[MaintenanceWindowArgs] = Field(
        default=None,
        description="a weekly window of one hour, or unset for Google's choice.")

    @model_validator(mode="after")
    def _replicas(self) -> "SessionStoreArgs":
        faults = Faults("SessionStoreArgs")
        if self.read_replicas and self.tier != "STANDARD_HA":
            faults.add("readReplicas", "readReplicas needs tier STANDARD_HA")
        if self.read_replicas and self.memory_size_gb < 5:
            faults.add("readReplicas", "readReplicas needs memorySizeGb of 5 or more")
        faults.raise_if_any()
        return self

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: the Redis instance and the Secret Manager secret holding its URL."""
        return {
            "instance": physical_name(REDIS_INSTANCE, REDIS, self.prefix, name),
            "secret": physical_name(SECRET, SECRET_MANAGER_SECRET, self.prefix, name, "url"),
        }


@dataclass(frozen=True)
class SessionStoreRef:
    """How a consumer reaches a store: the Secret Manager secret holding the URL
    (``projects/P/secrets/S``), the version to read, the server CA certificate (PEM) and the URL
    itself (a Pulumi secret; None for a store of another stack, read through the secret only).

    Built by :meth:`SessionStore.ref`, or by hand for a store of another stack.
    """

    secret_id: StrInput
    secret_version: StrInput
    ca_certificate: StrInput
    connection_url: StrInput = None


class SessionStore(pulumi.ComponentResource):
    """Memorystore for Redis with AUTH, TLS and private services access, plus its URL secret.

    Context: ``network`` (:class:`~mcp_affinity.network.NetworkRef`; the instance waits for its
    ``private_services_network_id``).

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

    @takes_settings
    def __init__(self, name: str, args: SessionStoreArgs, *, network: NetworkRef,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:SessionStore", name, None, opts)
        names = args.names(name)
        protect = args.deletion_protection
        region = args.region or network.regions[0]
        instance = gcp.redis.Instance(
            name,
            opts=pulumi.ResourceOptions(parent=self, protect=protect, additional_secret_outputs=["authString"]),
            **_instance_args(args, names["instance"].value, region, network.private_services_network_id),
        )
        self.host = instance.host
        self.port = instance.port
        self.ca_certificate = instance.server_ca_certs.apply(lambda certs: certs[0].cert if certs else "")
        self.connection_url = pulumi.Output.secret(
            pulumi.Output.format("rediss://:{0}@{1}:{2}", instance.auth_string, instance.host, instance.port)
        )
        secret = gcp.secretmanager.Secret(
            f"{name}-url",
            secret_id=names["secret"].value,
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
        self.secret_id = secret.id
        self.secret_version = version.version
        self.register_outputs({
            "host": self.host,
            "port": self.port,
            "ca_certificate": self.ca_certificate,
            "connection_url": self.connection_url,
            "secret_id": self.secret_id,
            "secret_version": self.secret_version,
        })

    def ref(self) -> SessionStoreRef:
        """What a consumer needs to read the store: secret, version, CA certificate and URL."""
        return SessionStoreRef(self.secret_id, self.secret_version, self.ca_certificate, self.connection_url)


def _instance_args(args: SessionStoreArgs, instance_name: str, region: str, network_id) -> dict:
    window = args.maintenance_window
    return dict(
        name=instance_name,
        project=args.project,
        region=region,
        tier=args.tier,
        memory_size_gb=args.memory_size_gb,
        redis_version=args.redis_version,
        authorized_network=network_id,
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
