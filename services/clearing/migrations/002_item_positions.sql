-- Where in its input each item's record was read (topic, partition, offset): a daily report
-- covers only items that precede its day's cut (the day's watermarks), so an item decided
-- before a day whose watermark it lies past is reported after that day, as on replay.
-- Items from before this migration have none and count as preceding every cut.
ALTER TABLE items ADD COLUMN input_topic text;
ALTER TABLE items ADD COLUMN input_partition integer;
ALTER TABLE items ADD COLUMN input_offset bigint;
