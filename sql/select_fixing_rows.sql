-- Methodology steps 1 and 2a, for many fixing targets at once: the eligible observations of each provider's
-- latest collection in the target's window.
--
-- fix_targets (registered by pipeline.fixing): one row per target (target_id: an index, a date and a rung of
-- the fallback ladder) and per instrument and observed price type it reads, with the target's window shape
-- (fixing_minutes after midnight UTC, window_hours) and filters: sources and segments (varchar[]; null = any).
-- $window_floor, $window_ceiling: the earliest window start and the latest window end of all targets. They
-- bound the scan by constants, so DuckDB skips every row group outside the period: the cost of fixing one
-- day does not grow with the history kept.
--
-- Rows are returned without the observations' long text columns: the input hash and the snapshot ids come
-- from the digests of the collections the rows belong to (select_input_hashes.sql).
with series as (
    -- each (instrument kind, instrument, price type) the targets read, numbered: integer join keys below
    select instrument_kind, instrument, price_type,
           row_number() over (order by instrument_kind, instrument, price_type) as series_id
    from (select distinct instrument_kind, instrument, price_type from fix_targets)
),

shapes as (
    select fixing_minutes, window_hours, row_number() over (order by fixing_minutes, window_hours) as shape_id
    from (select distinct fixing_minutes, window_hours from fix_targets)
),

keyed_targets as (
    select t.target_id, t.fixing_date, t.sources, t.segments, s.series_id, h.shape_id
    from fix_targets as t
    join series as s using (instrument_kind, instrument, price_type)
    join shapes as h using (fixing_minutes, window_hours)
),

in_period as (
    select
        o.rowid as obs_rowid,
        s.series_id,
        o.provider,
        o.source,
        o.segment,
        o.price_type,
        o.region,
        coalesce(o.gpu_count, 1) as gpu_weight,  -- a marketplace offer weighs its GPU count; a row without one, 1
        o.observed_at,
        o.valid_from,
        o.valid_to,
        coalesce(o.usd_per_gpu_hour, o.usd_per_mtok) as usd_price
    from observations as o
    join series as s
        on  o.instrument_kind = s.instrument_kind
        and o.instrument = s.instrument
        and o.price_type = s.price_type
    where o.observed_at > $window_floor
      and o.observed_at <= $window_ceiling
),

candidates as (
    -- The fixing dates D whose window of this shape holds the observation:
    --   D + fixing time - window < observed_at <= D + fixing time
    --   <=> observed_at - fixing time <= D (midnight) < observed_at - fixing time + window.
    -- The first such midnight is the day after the midnight strictly before observed_at - fixing time.
    -- One date for a 24-hour window, three for 72 hours, seven for 168: an equality join follows, never a
    -- scan of every date for every row.
    select
        p.*,
        h.shape_id,
        unnest(range(
            date_trunc('day', p.observed_at - to_minutes(h.fixing_minutes) - interval 1 microsecond) + interval 1 day,
            p.observed_at - to_minutes(h.fixing_minutes) + to_hours(h.window_hours),
            interval 1 day
        ))::date as fixing_date
    from in_period as p
    cross join shapes as h
),

eligible as (
    select
        t.target_id,
        c.obs_rowid,
        c.provider,
        c.source,
        c.segment,
        c.price_type,
        c.region,
        c.gpu_weight,
        c.observed_at,
        c.usd_price
    from candidates as c
    join keyed_targets as t
        on t.fixing_date = c.fixing_date and t.series_id = c.series_id and t.shape_id = c.shape_id
    where (t.sources is null or list_contains(t.sources, c.source))
      -- a provider with no segment never passes a segment filter
      and (t.segments is null or coalesce(list_contains(t.segments, c.segment), false))
      -- price histories: the row counts only on the dates its price held (bounds inclusive, null = open)
      and (c.valid_from is null or c.valid_from <= t.fixing_date)
      and (c.valid_to is null or c.valid_to >= t.fixing_date)
),

latest_collection as (
    -- One provider, one vote, from its newest collection in the window from each source: every row fetched
    -- at the provider's latest observed_at of that source (the pages of a paged API share one fetch time),
    -- over all the target's instruments and price types (both legs of a blended price come from the same
    -- collection). A provider two sources of the index price (its own page and a catalog) still has one vote,
    -- over the rows of both latest collections: which source was fetched last does not matter.
    select target_id, provider, source, max(observed_at) as observed_at
    from eligible
    group by target_id, provider, source
)

select e.*
from eligible as e
semi join latest_collection as l
    on  e.target_id = l.target_id
    and e.provider = l.provider
    and e.source is not distinct from l.source  -- rows of a CSV (tsi fix) may have no source
    and e.observed_at = l.observed_at;
