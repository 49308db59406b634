"""The embedded stack for one machine: Kafka (Tansu), Redis, CouchDB
(pouchdb-server) and Docker, the registry-free runtime image, and Gleaner's own
components, all started as detached processes by ``deploy.stack.up``.

``deploy/setup.sh`` installs the system packages they need on a fresh machine.
"""
