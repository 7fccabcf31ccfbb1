-- The input hash of each target in hash_targets (target_id), over every provider considered, included or
-- not (an exclusion is a decision the inputs determine), from the digests made at load
-- (observation_digests, migration 007; README "Methodology", step 9): the sha256 of the digests of the
-- target's rows (each digest names its snapshot, provider, instrument, price type and validity and covers
-- the group's rows), sorted in byte order and joined by line feeds.
-- Also each provider's snapshot_id (the least of its collection's bodies: several only for a paged API).
--
-- fixing_rows, screened_values and fix_targets: one pass of select_fixing_rows.sql,
-- select_screened_provider_values.sql and its targets. A fixing takes a provider's latest collection
-- (provider, source, fetch time) whole within the target's series, filters and validity, so the digests
-- matching those are exactly its rows. n_hashed and n_rows let the caller check that: a difference means
-- observations loaded without digests, and no hash is given for them.
with collections as (
    -- a provider value says its one collection (the usual case); the rows say them where there are several
    select s.target_id, s.provider, s.collection_source as source, s.collection_observed_at as observed_at,
           s.n_observations as n_rows
    from screened_values as s
    semi join hash_targets as h using (target_id)
    where s.one_collection
    union all
    select r.target_id, r.provider, r.source, r.observed_at, count(*) as n_rows
    from fixing_rows as r
    semi join hash_targets as h using (target_id)
    semi join (select target_id, provider from screened_values where not one_collection) as m using (target_id, provider)
    group by r.target_id, r.provider, r.source, r.observed_at
),

wanted as materialized (
    -- each collection with the series, filters and date of its target (materialized: the join on the digests
    -- below is then on the collection and the series together, a few digests each)
    select c.target_id, c.provider, c.source, c.observed_at, t.instrument_kind, t.instrument, t.price_type,
           t.sources, t.segments, t.fixing_date
    from collections as c
    join fix_targets as t using (target_id)
),

digests as materialized (
    select w.target_id, w.provider, d.snapshot_id, d.n_rows, d.digest_sha256
    from wanted as w
    join observation_digests as d
        on  d.provider = w.provider
        and coalesce(d.source, chr(0)) = coalesce(w.source, chr(0))  -- rows of a CSV (tsi fix) may have no source
        and d.observed_at = w.observed_at
        and d.instrument_kind = w.instrument_kind
        and d.instrument = w.instrument
        and d.price_type = w.price_type
    -- the filters of select_fixing_rows.sql (eligible), applied to the digest's group
    where (w.sources is null or list_contains(w.sources, d.source))
      and (w.segments is null or coalesce(list_contains(w.segments, d.segment), false))
      and (d.valid_from is null or d.valid_from <= w.fixing_date)
      and (d.valid_to is null or d.valid_to >= w.fixing_date)
),

targets as (
    select target_id, sum(n_rows) as n_hashed,
           sha256(array_to_string(list_sort(list(digest_sha256)), chr(10))) as input_hash
    from digests
    group by target_id
),

providers as (
    select target_id, provider, min(snapshot_id) as snapshot_id
    from digests
    group by target_id, provider
),

row_counts as (
    select target_id, sum(n_rows) as n_rows
    from collections
    group by target_id
)

select p.target_id, p.provider, p.snapshot_id, t.input_hash, t.n_hashed, n.n_rows
from row_counts as n
left join targets as t using (target_id)
left join providers as p using (target_id);
