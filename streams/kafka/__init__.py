"""The Kafka layer: thin typed wrappers over confluent-kafka, apart from the application."""
