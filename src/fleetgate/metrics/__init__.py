"""Prometheus metrics of the service (the only package that imports prometheus_client).

:class:`ServiceMetrics` holds the counters and histograms that the composition root
feeds through the small wrappers of :mod:`fleetgate.metrics.instruments`, and the gauges
it reads when scraped (the fleet from the database, the pool, the live-feed watchers).
"""
