-- One provider, one vote (methodology v1, steps 1-2), for every index of one fixing date at once.
--
-- fix_targets: a table registered by the caller, one row per index: index_id, instrument_kind, instrument,
-- price_type, sources (varchar[]), window_start (exclusive), window_end (inclusive; the fixing time),
-- fixing_date (for observations valid over a stated interval of dates).
--
-- A provider's value is the median of its eligible prices in its latest collection in the window. The median
-- is exact: the middle value, or half the sum of the two middle values on an even count (no float).
with eligible as (
    select
        t.index_id,
        o.provider,
        o.snapshot_id,
        o.observed_at,
        o.row_key,
        coalesce(o.usd_per_gpu_hour, o.usd_per_mtok) as usd_price
    from fix_targets as t
    join observations as o
        on  o.instrument_kind = t.instrument_kind
        and o.instrument = t.instrument
        and o.price_type = t.price_type
        and list_contains(t.sources, o.source)
    where o.observed_at > t.window_start
      and o.observed_at <= t.window_end
      and (o.valid_from is null or o.valid_from <= t.fixing_date)
      and (o.valid_to is null or o.valid_to >= t.fixing_date)
),

latest_collection as (
    -- the provider's newest collection in the window: every body fetched at that time (the pages of a paged
    -- API share one fetch time), so one provider gives one vote from one moment
    select index_id, provider, max(observed_at) as observed_at
    from eligible
    group by index_id, provider
),

ranked as (
    select
        e.*,
        row_number() over (partition by e.index_id, e.provider order by e.usd_price, e.snapshot_id, e.row_key)
            as price_rank,
        count(*) over (partition by e.index_id, e.provider) as n_observations
    from eligible as e
    semi join latest_collection as l
        on e.index_id = l.index_id and e.provider = l.provider and e.observed_at = l.observed_at
)

select
    index_id,
    provider,
    min(snapshot_id) as snapshot_id,  -- one of the collection's bodies (all of them when a paged API)
    any_value(n_observations) as n_observations,
    (
        max(usd_price) filter (where price_rank = (n_observations + 1) // 2)
        + max(usd_price) filter (where price_rank = n_observations // 2 + 1)
    ) * 0.5 as provider_value,
    -- sha256 over the provider's observations, sorted; the index's input hash is built from these
    sha256(string_agg(snapshot_id || '|' || row_key || '|' || usd_price::varchar, chr(10) order by snapshot_id, row_key))
        as observations_sha256
from ranked
group by index_id, provider
order by index_id, provider;
