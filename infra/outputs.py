"""The stack outputs the program exports, each with its meaning: the README's outputs table comes
from these descriptions (``infra/config_docs.py``), and ``tests/test_config_docs.py`` checks that
every output a plan exports is declared here."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class StackOutputs(BaseModel):
    """What ``pulumi stack output`` shows for a stack of this program."""

    loadBalancerIp: str = Field(description="the load balancer's static IPv4 address: point the domains' DNS A "
                                            "records at it.")
    requiredApis: list[str] = Field(description="the APIs the stack's resources need (`SERVICE.googleapis.com`), "
                                                "to enable once per project before the first `up`.")
    serviceUrls: Optional[dict[str, dict[str, str]]] = Field(
        default=None, description="Cloud Run: service -> region -> its run.app URL (off unless `defaultUri` "
                                  "keeps it on; then reachable from the VPC only).")
    sessionStoreHost: Optional[str] = Field(default=None, description="with a store: the Memorystore instance's "
                                                                      "private address.")
    sessionStoreSecret: Optional[str] = Field(default=None, description="with a store: the Secret Manager secret "
                                                                        "holding its connection URL.")
    gkeCluster: Optional[str] = Field(default=None, description="GKE: the cluster's name.")
    meshServiceHosts: Optional[dict[str, str]] = Field(
        default=None, description="GKE: mesh service -> its in-cluster host (`NAME.NAMESPACE.svc.cluster.local`).")
    serviceAccess: Optional[dict[str, str]] = Field(
        default=None, description="Cloud Run: service -> who may call it (its `access` mode, members and clients).")
    serviceDeploys: Optional[dict[str, str]] = Field(
        default=None, description="Cloud Run: service -> what a deploy does to its live sessions (ends them, drains "
                                  "them on the previous generation, or none to end).")
    meshServiceDeploys: Optional[dict[str, str]] = Field(
        default=None, description="GKE: mesh service -> what a deploy does to its live sessions (ends them, drains "
                                  "them on the terminating pods, or none to end).")
    monitoringDashboard: Optional[str] = Field(
        default=None, description="with `monitoring` on: the Cloud Monitoring dashboard's id (open it from Monitoring > "
                                  "Dashboards).")
    monitoringAlerts: Optional[dict[str, list[str]]] = Field(
        default=None, description="with `monitoring` on: what each alert policy watches (service, pinning proxy or "
                                  "store) and when it fires; README \"Operating it\" says what to do.")
    meshServiceAccess: Optional[dict[str, str]] = Field(
        default=None, description="GKE: mesh service -> who may call it (its `access` mode, members and `jwt` issuer).")
