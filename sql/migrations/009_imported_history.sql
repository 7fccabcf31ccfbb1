-- Imported history (tsi import): bodies that were not fetched by a collection but come from a folder of dated
-- public records, each with the time its manifest gives (raw_snapshots.fetched_at), never the time of the
-- import.
--
-- A standing price list (a LiteLLM map, an OpenRouter model list, a SkyPilot catalog) is an offer that holds
-- between two snapshots, though nobody observed it on the days in between. An imported snapshot therefore
-- counts, by date instead of by the fixing's window, from the first fixing date whose fixing time is at or
-- after its fetch time through valid_until: the day before the next imported snapshot of the same series
-- (source, provider, url), and at most valid_days days (the import's parameter). A source that dates its own
-- prices (llm-prices' price_history) keeps each row's own interval, cut at valid_until. The rule is applied
-- once, when the import records the snapshot, through the columns below; no observation is ever repeated.
alter table raw_snapshots add column imported_at timestamp;  -- null: collected live
alter table raw_snapshots add column valid_days integer;     -- the import's N
alter table raw_snapshots add column valid_until date;       -- the last fixing date the snapshot may count for

-- Copied onto the snapshot's observations at load and onto their digests: a digest with valid_until counts
-- by date (sql/select_fixing_digests.sql), and its hash names valid_until (README "Methodology", step 9).
alter table observations add column valid_until date;
alter table observation_digests add column valid_until date;

-- A fixing that read an imported body is a backfill: computed after the fact, not live at its fixing time.
alter table fixings add column backfill boolean;
-- Per constituent, the collection it was valued from and the last date that collection may count for
-- (imported standing lists; null for a live collection, which counts in its window).
alter table fixing_constituents add column observed_at timestamp;
alter table fixing_constituents add column valid_until date;
