-- One provider, one vote (methodology v1, steps 1-2), for every index of one fixing date at once.
--
-- fix_targets: a table registered by the caller, one row per index: index_id, instrument_kind, instrument,
-- price_type, sources (varchar[]), window_start (exclusive), window_end (inclusive; the fixing time).
--
-- A provider's value is the median of its eligible prices in its latest snapshot in the window. The median
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
),

latest_snapshot as (
    -- the newest snapshot per provider; ties on time broken by id so that the choice is deterministic
    select index_id, provider, snapshot_id
    from (
        select distinct index_id, provider, snapshot_id, observed_at from eligible
    )
    qualify row_number() over (partition by index_id, provider order by observed_at desc, snapshot_id desc) = 1
),

ranked as (
    select
        e.*,
        row_number() over (partition by e.index_id, e.provider order by e.usd_price, e.row_key) as price_rank,
        count(*) over (partition by e.index_id, e.provider) as n_observations
    from eligible as e
    semi join latest_snapshot as l
        on e.index_id = l.index_id and e.provider = l.provider and e.snapshot_id = l.snapshot_id
)

select
    index_id,
    provider,
    any_value(snapshot_id) as snapshot_id,
    any_value(n_observations) as n_observations,
    (
        max(usd_price) filter (where price_rank = (n_observations + 1) // 2)
        + max(usd_price) filter (where price_rank = n_observations // 2 + 1)
    ) * 0.5 as provider_value,
    -- sha256 over the provider's observations, sorted; the index's input hash is built from these
    sha256(string_agg(snapshot_id || '|' || row_key || '|' || usd_price::varchar, chr(10) order by row_key))
        as observations_sha256
from ranked
group by index_id, provider
order by index_id, provider;
