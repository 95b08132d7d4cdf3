"""Importers of public open data (LA 311 CSV exports, Open311 GeoReport v2 JSON) into
events of the contract. Conversion only: sinks (Kafka, JSON Lines) live in
:mod:`streams.sources.importers.sinks`."""
