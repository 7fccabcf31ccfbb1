-- Methodology steps 1 and 2a, for many fixing targets at once, over the digests of the observations
-- (observation_digests, migration 007: a snapshot's rows of one provider, instrument, price type and
-- validity, with their exact statistics): the digests of each provider's latest collection in each target's
-- window. A digest's rows are taken or left together, so these are exactly the groups of rows the target
-- reads; select_fixing_rows.sql reads the rows themselves only where a provider's value needs them.
--
-- fix_targets (registered by pipeline.fixing): one row per target (target_id: an index, a date and a rung of
-- the fallback ladder) and per instrument and observed price type it reads, with the target's window shape
-- (fixing_minutes after midnight UTC, window_hours) and filters: sources and segments (varchar[]; null = any).
-- fix_target_params: one row per target with its index's parameters.
-- $window_floor, $window_ceiling: the earliest window start and the latest window end of all targets. They
-- bound the scan by constants, so DuckDB skips every row group outside the period: the cost of fixing one
-- day does not grow with the history kept.
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
    -- collected digests: those fetched inside the period's windows
    select d.*, s.series_id
    from observation_digests as d
    join series as s
        on  d.instrument_kind = s.instrument_kind
        and d.instrument = s.instrument
        and d.price_type = s.price_type
    where d.valid_until is null
      and d.observed_at > $window_floor
      and d.observed_at <= $window_ceiling
),

dated_in_period as (
    -- imported digests (tsi import, migration 009), which count by date: from their first fixing date to
    -- their last, cut to the period's dates. The first is the row's own valid_from where the source dates its
    -- prices (llm-prices), else the first date whose fixing time is at or after the fetch; the last is the
    -- row's own valid_to, at most valid_until (the next snapshot of the series, at most the import's N days).
    select d.*, s.series_id, least(coalesce(d.valid_to, d.valid_until), d.valid_until) as last_date
    from observation_digests as d
    join series as s
        on  d.instrument_kind = s.instrument_kind
        and d.instrument = s.instrument
        and d.price_type = s.price_type
    where d.valid_until is not null
      and d.valid_until >= $window_floor::date
      and coalesce(d.valid_from, d.observed_at::date) <= $window_ceiling::date
),

candidates as (
    -- The fixing dates D whose window of this shape holds the digest's fetch time:
    --   D + fixing time - window < observed_at <= D + fixing time
    --   <=> observed_at - fixing time <= D (midnight) < observed_at - fixing time + window.
    -- The first such midnight is the day after the midnight strictly before observed_at - fixing time.
    -- One date for a 24-hour window, three for 72 hours, seven for 168: an equality join follows, never a
    -- scan of every date for every digest.
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
    union all by name
    -- an imported digest: every date from its first to its last inside the period, in every window shape
    -- (it counts by date, whatever the window)
    select
        p.* exclude (last_date),
        h.shape_id,
        unnest(range(
            greatest(
                coalesce(p.valid_from::timestamp,
                         date_trunc('day', p.observed_at - to_minutes(h.fixing_minutes) - interval 1 microsecond)
                         + interval 1 day),
                $window_floor::date::timestamp),
            least(p.last_date, $window_ceiling::date)::timestamp + interval 1 day,
            interval 1 day
        ))::date as fixing_date
    from dated_in_period as p
    cross join shapes as h
),

eligible as (
    select t.target_id, c.* exclude (series_id, shape_id, fixing_date)
    from candidates as c
    join keyed_targets as t
        on t.fixing_date = c.fixing_date and t.series_id = c.series_id and t.shape_id = c.shape_id
    where (t.sources is null or list_contains(t.sources, c.source))
      -- a provider with no segment never passes a segment filter
      and (t.segments is null or coalesce(list_contains(t.segments, c.segment), false))
      -- price histories: the rows count only on the dates their price held (bounds inclusive, null = open)
      and (c.valid_from is null or c.valid_from <= t.fixing_date)
      and (c.valid_to is null or c.valid_to >= t.fixing_date)
),

latest_collection as (
    -- One provider, one vote, from its newest collection in the window from each source: every digest
    -- fetched at the provider's latest observed_at of that source (the pages of a paged API share one fetch
    -- time), over all the target's instruments and price types (both legs of a blended price come from the
    -- same collection). A provider two sources of the index price (its own page and a catalog) still has one
    -- vote, over the rows of both latest collections: which source was fetched last does not matter.
    select target_id, provider, coalesce(source, chr(0)) as source_key, max(observed_at) as observed_at
    from eligible
    group by target_id, provider, coalesce(source, chr(0))  -- rows of a CSV (tsi fix) may have no source
)

select
    e.*,
    -- the rule that values the provider's leg (select_provider_values.sql): a marketplace's offers collapse
    -- to their GPU-weighted median if the index says so, else the index's provider_value rule
    case
        when e.segment = 'marketplace' and p.marketplace_value = 'gpu_weighted_median' then 'gpu_weighted_median'
        else p.provider_value
    end as value_rule
from eligible as e
semi join latest_collection as l
    on  e.target_id = l.target_id
    and e.provider = l.provider
    and coalesce(e.source, chr(0)) = l.source_key
    and e.observed_at = l.observed_at
join fix_target_params as p on p.target_id = e.target_id;
