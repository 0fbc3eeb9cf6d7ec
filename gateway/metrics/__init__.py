"""Every Prometheus metric of the gateway, defined in one place (``registry.GatewayMetrics``)."""
