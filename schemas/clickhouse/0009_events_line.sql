-- The position of an archived event inside its Kafka message: `line` of a batch message
-- (NDJSON, many events per message), 0 for a one-event message and for events that did
-- not come from Kafka; the same meaning as `dead_letters.line`. A replay from the archive
-- reads the events of one message in this order (streams.replay.sources.ARCHIVE_ORDER:
-- ingested_at, kafka_partition, kafka_offset, line, ...), the order the live worker saw
-- them in, so its lateness tracker sees what the live one saw. Rows archived before this
-- migration have line 0 (their events of one message tie-break by case and event id).
ALTER TABLE events ADD COLUMN IF NOT EXISTS line UInt32 DEFAULT 0;
